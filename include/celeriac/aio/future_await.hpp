// Bridges between the event loop and the rest of celeriac: co_await a
// celeriac::Future on the loop without blocking it, to_thread(),
// run_in_executor(), and EventLoop::spawn_threadsafe() (a task started from
// any thread, observed through a Future).
#pragma once

#include <atomic>
#include <coroutine>
#include <functional>
#include <mutex>
#include <type_traits>
#include <utility>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::aio {

namespace detail {

/// Shared between an awaiting coroutine and the future's done-callback,
/// which may run on any thread.
struct FutureLink {
  std::atomic<int> refs{2};
  std::mutex mu;                 // guards loop (the loop may close meanwhile)
  EventLoop* loop = nullptr;     // null once the awaiter is gone
  Suspension* waiter = nullptr;  // loop thread only
  bool* holds_clock = nullptr;   // loop thread only
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};

struct FutureLinkRef {
  FutureLink* link;
  explicit FutureLinkRef(FutureLink* l) noexcept : link(l) {}
  FutureLinkRef(FutureLinkRef&& o) noexcept : link(std::exchange(o.link, nullptr)) {}
  FutureLinkRef(const FutureLinkRef&) = delete;
  ~FutureLinkRef() {
    if (link) link->release();
  }
};

}  // namespace detail

/// co_await of a celeriac::Future<T>: the task sleeps until the future is
/// done (the loop keeps running) and gets its value or exception. Cancelling
/// the awaiting task stops the wait; with `cancel_future` it also cancels the
/// future if its work has not started (to_thread, run_in_executor).
template <class T>
class FutureAwaiter : private Suspension {
 public:
  /// Awaits `f`; with `cancel_future`, cancelling the awaiting task also
  /// cancels `f` if its work has not started.
  explicit FutureAwaiter(Future<T> f, bool cancel_future = false) noexcept
      : fut_(std::move(f)), cancel_future_(cancel_future) {}
  /// Moves the (not yet suspended) awaiter.
  FutureAwaiter(FutureAwaiter&& o) noexcept
      : Suspension(), fut_(std::move(o.fut_)), cancel_future_(o.cancel_future_) {}
  ~FutureAwaiter() { detach(); }

  bool await_ready() const {
    if (!fut_.valid()) throw InvalidStateError("aio: awaiting an invalid Future");
    return fut_.done();
  }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    auto* link = new detail::FutureLink();
    link->loop = &loop();
    link->waiter = this;
    link->holds_clock = &holds_clock_;
    link_ = link;
    loop().hold_clock();
    holds_clock_ = true;
    // Runs on the completing thread (or here, if already done).
    fut_.add_done_callback([ref = detail::FutureLinkRef(link)]() mutable {
      detail::FutureLink* l = ref.link;
      std::lock_guard<std::mutex> g(l->mu);
      if (!l->loop) return;
      l->refs.fetch_add(1, std::memory_order_relaxed);  // the posted callback's
      l->loop->call_soon_threadsafe([r = detail::FutureLinkRef(l)]() mutable {
        detail::FutureLink* lk = r.link;
        if (Suspension* s = lk->waiter) {
          lk->waiter = nullptr;
          if (*lk->holds_clock) {
            *lk->holds_clock = false;
            s->loop().release_clock();
          }
          s->wake();
        }
      });
    });
    return true;
  }
  T await_resume() {
    end();
    detach();
    if constexpr (std::is_void_v<T>) {
      fut_.result();
    } else {
      return std::move(fut_).result();
    }
  }

 private:
  static bool on_cancel(Suspension& s) noexcept {
    auto& self = static_cast<FutureAwaiter&>(s);
    self.detach();
    if (self.cancel_future_) self.fut_.cancel();
    return true;
  }
  void detach() noexcept {
    if (holds_clock_) {
      holds_clock_ = false;
      loop().release_clock();
    }
    if (detail::FutureLink* l = std::exchange(link_, nullptr)) {
      l->waiter = nullptr;
      {
        std::lock_guard<std::mutex> g(l->mu);
        l->loop = nullptr;
      }
      l->release();
    }
  }
  Future<T> fut_;
  detail::FutureLink* link_ = nullptr;
  bool cancel_future_;
  bool holds_clock_ = false;
};

}  // namespace celeriac::aio

namespace celeriac {
/// `co_await future` inside an aio task (found by argument-dependent lookup).
template <class T>
aio::FutureAwaiter<T> operator co_await(Future<T> f) noexcept {
  return aio::FutureAwaiter<T>(std::move(f));
}
}  // namespace celeriac

namespace celeriac::aio {

namespace detail {

/// The default executor of to_thread(): an exec::ThreadPool of
/// min(32, cores + 4) threads (Python's ThreadPoolExecutor default), made on
/// first use and shut down at exit. One executor for the whole library.
exec::ThreadPool& default_executor();

template <class R, class F>
Future<R> submit_to(auto& executor, F fn) {
  auto state = futures::detail::make_state<R>();
  Future<R> fut(state);
  executor.post([state, f = std::move(fn)]() mutable {
    if (!state->set_running_or_notify_cancel()) return;
    futures::detail::fulfil(*state, f);
  });
  return fut;
}

}  // namespace detail

/// Runs fn(args...) on any celeriac::Executor and returns an awaitable of its
/// result (loop.run_in_executor). Cancelling the awaiting task stops waiting
/// and cancels the call if it has not started.
template <Executor E, class F, class... Args>
auto run_in_executor(E& executor, F fn, Args... args) {
  using R = std::invoke_result_t<F&, Args&...>;
  auto call = [f = std::move(fn), ... a = std::move(args)]() mutable -> R {
    return std::invoke(f, a...);
  };
  return FutureAwaiter<R>(detail::submit_to<R>(executor, std::move(call)), true);
}

/// Runs fn(args...) on the library's default exec::ThreadPool
/// (asyncio.to_thread; see detail::default_executor()).
template <class F, class... Args>
auto to_thread(F fn, Args... args) {
  return run_in_executor(detail::default_executor(), std::move(fn), std::move(args)...);
}

namespace detail {

/// Breaks the promise if the task never got to finish (loop closed).
template <class T>
struct StateGuard {
  explicit StateGuard(futures::detail::StatePtr<T> s) noexcept : state(std::move(s)) {}
  StateGuard(StateGuard&& o) noexcept : state(std::move(o.state)) {}
  StateGuard(const StateGuard&) = delete;
  futures::detail::StatePtr<T> state;
  ~StateGuard() {
    if (state)
      state->try_set_exception(std::make_exception_ptr(
          BrokenPromise("aio: the event loop closed before the task finished")));
  }
};

template <class T>
Task<void> complete_future(Task<T> task, futures::detail::StatePtr<T> state) {
  StateGuard<T> guard(state);
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      state->try_set_value();
    } else {
      state->try_set_value(co_await std::move(task));
    }
  } catch (const CancelledError&) {
    if (!state->cancel()) state->try_set_exception(std::current_exception());
  } catch (...) {
    state->try_set_exception(std::current_exception());
  }
}

struct TaskCanceller {
  TaskCore* core;
  explicit TaskCanceller(TaskCore* c) noexcept : core(c) {}
  TaskCanceller(TaskCanceller&& o) noexcept : core(std::exchange(o.core, nullptr)) {}
  TaskCanceller(const TaskCanceller&) = delete;
  ~TaskCanceller() {
    if (core) core->release();
  }
  void operator()() {
    if (core) core->cancel();
  }
};

}  // namespace detail

template <class T>
Future<T> EventLoop::spawn_threadsafe(Task<T> task) {
  auto state = futures::detail::make_state<T>();
  Future<T> fut(state);
  call_soon_threadsafe([this, guard = detail::StateGuard<T>(state), t = std::move(task)]() mutable {
    auto st = std::move(guard.state);
    if (st->done()) return;  // cancelled before it started
    auto h = spawn(detail::complete_future(std::move(t), st));
    detail::TaskCore* core = h.core();
    core->add_ref();
    // Cancelling the Future (from any thread) cancels the task.
    st->on_done(
        [this, c = detail::TaskCanceller(core)]() mutable { call_soon_threadsafe(std::move(c)); });
  });
  return fut;
}

/// asyncio.run_coroutine_threadsafe(task, loop).
template <class T>
Future<T> run_coroutine_threadsafe(Task<T> task, EventLoop& loop) {
  return loop.spawn_threadsafe(std::move(task));
}

}  // namespace celeriac::aio
