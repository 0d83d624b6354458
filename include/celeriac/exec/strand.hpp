// Strand<E>: runs the callables given to it one at a time, in the order
// given, on any executor (as Asio's strand). Work on one strand needs no lock.
#pragma once

#include <atomic>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "celeriac/exec/detail/future_task.hpp"
#include "celeriac/exec/detail/task.hpp"
#include "celeriac/exec/detail/unique_function.hpp"
#include "celeriac/futures/executor.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::exec {

namespace detail {
/// The strand whose callables the current thread is running, or null.
inline thread_local const void* tl_current_strand = nullptr;
}  // namespace detail

/// Serialises callables on an executor: never two at once, always in the
/// order posted (from one thread; posts from several threads interleave in
/// the order their post() calls took the strand's lock). Copies share one
/// queue. The executor must outlive every copy with work pending.
template <Executor E>
class Strand {
 public:
  /// A strand running its callables on `executor` (which must outlive it).
  explicit Strand(E& executor) : impl_(std::make_shared<Impl>(executor)) {}

  /// Queues `fn()`; it runs after every callable posted before it. An
  /// exception escaping `fn` is reported on stderr. If the strand had to be
  /// scheduled and the executor refused (e.g. BrokenExecutor after shutdown),
  /// the queued callables are dropped and the executor's error is rethrown.
  template <class F>
  void post(F&& fn) {
    impl_->post(detail::UniqueFunction(std::forward<F>(fn)));
  }

  /// Queues `fn(args...)` and returns a Future of its result.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args) {
    using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
    auto state = futures::detail::make_state<R>();
    Future<R> future(state);
    post([state, f = std::decay_t<F>(std::forward<F>(fn)),
          ... a = std::decay_t<Args>(std::forward<Args>(args))]() mutable {
      if (detail::start_running(*state))
        futures::detail::fulfil(*state, std::move(f), std::move(a)...);
    });
    return future;
  }

  /// Whether the calling thread is running a callable of this strand.
  bool running_in_this_thread() const noexcept { return detail::tl_current_strand == impl_.get(); }
  /// The executor the strand runs on.
  E& executor() const noexcept { return impl_->ex; }

 private:
  struct Impl : std::enable_shared_from_this<Impl> {
    explicit Impl(E& e) : ex(e) {}
    E& ex;
    std::mutex mu;
    std::deque<detail::UniqueFunction> queue;
    bool scheduled = false;

    void post(detail::UniqueFunction fn) {
      {
        std::lock_guard lock(mu);
        queue.push_back(std::move(fn));
        if (scheduled) return;
        scheduled = true;
      }
      try {
        schedule();
      } catch (...) {
        std::lock_guard lock(mu);
        scheduled = false;
        queue.clear();  // the executor is gone: nothing queued here can run
        throw;
      }
    }

    void schedule() {
      ex.post([self = this->shared_from_this()] { self->drain(); });
    }

    // Runs a batch, then yields the thread to other work by rescheduling.
    void drain() {
      const void* outer = detail::tl_current_strand;
      detail::tl_current_strand = this;
      for (int n = 0; n < 64; ++n) {
        detail::UniqueFunction fn;
        {
          std::lock_guard lock(mu);
          if (queue.empty()) {
            scheduled = false;
            detail::tl_current_strand = outer;
            return;
          }
          fn = std::move(queue.front());
          queue.pop_front();
        }
        try {
          fn();
        } catch (...) {
          detail::report_escaped_exception("a Strand");
        }
      }
      detail::tl_current_strand = outer;
      try {
        schedule();
      } catch (...) {
        drain();  // the executor refuses work now: finish here
      }
    }
  };

  std::shared_ptr<Impl> impl_;
};

}  // namespace celeriac::exec
