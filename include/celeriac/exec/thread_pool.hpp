// ThreadPool (alias ThreadPoolExecutor): Python's
// concurrent.futures.ThreadPoolExecutor in C++, built for speed: per-worker
// work-stealing deques, an allocation-free injection ring for submissions from
// outside the pool, the task and its future in one allocation, and workers
// that spin briefly, then sleep on a futex (no CPU when idle).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <ranges>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "celeriac/error.hpp"
#include "celeriac/exec/detail/future_task.hpp"
#include "celeriac/exec/detail/inject_ring.hpp"
#include "celeriac/exec/detail/task.hpp"
#include "celeriac/exec/detail/work_deque.hpp"
#include "celeriac/exec/map_results.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::exec {

class ThreadPool;

namespace detail {

/// One worker thread's state. The WaitHelper lets a task blocked on a future
/// run other queued tasks of its pool (no deadlock on a 1-thread pool).
struct alignas(64) Worker final : futures::detail::WaitHelper {
  Worker(ThreadPool* p, unsigned i) : pool(p), index(i), rng(0x9E3779B97F4A7C15ull * (i + 1)) {}
  bool help_once() noexcept override;

  WorkDeque<Task*> deque;
  ThreadPool* pool;
  unsigned index;
  std::uint64_t rng;
  std::thread thread;
  std::atomic<std::uint32_t> wake_word{0};
  bool in_idle = false;  // guarded by the pool's idle mutex
};

/// The worker the current thread is, or null.
inline thread_local constinit Worker* tl_worker = nullptr;

}  // namespace detail

/// A pool of threads that runs callables; `submit` returns a Future.
///
/// Thread-safe: any thread may post, submit, map or shut down. A task that
/// blocks on a future (of this pool or any other) runs other queued tasks
/// meanwhile, so nested submit-and-wait never deadlocks the pool.
class ThreadPool {
 public:
  /// The default number of workers: std::thread::hardware_concurrency(), at least 1.
  static std::size_t default_max_workers() noexcept;

  /// Starts `max_workers` threads; each runs `initializer` once before any
  /// task. If an initializer throws, the pool is broken (Python's
  /// BrokenThreadPool): pending futures fail and submit() throws
  /// BrokenExecutor. std::invalid_argument if max_workers is 0.
  explicit ThreadPool(std::size_t max_workers = default_max_workers(),
                      std::function<void()> initializer = {});
  /// shutdown(wait=true): runs every task already submitted, then joins.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Runs `fn()` on the pool, fire-and-forget. An exception escaping `fn` is
  /// reported on stderr. BrokenExecutor after shutdown or when broken.
  template <class F>
  void post(F&& fn);

  /// Schedules `fn(args...)` (arguments are copied or moved in) and returns a
  /// Future of its result. BrokenExecutor after shutdown or when broken.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args)
      -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>>;

  /// Python's Executor.map: submits fn(x) for every x in `items` now (in
  /// chunks of `chunksize` items per task) and returns a range that yields
  /// the results lazily, in input order; iterating blocks for each result
  /// and rethrows a call's exception when its element is reached.
  /// Destroying the range cancels the calls not started yet.
  template <class F, std::ranges::input_range Range>
  auto map(F&& fn, Range&& items, std::size_t chunksize = 1);
  /// As map(), but iteration throws TimeoutError when a result is not ready
  /// `timeout` after this call.
  template <class F, std::ranges::input_range Range, class Rep, class Period>
  auto map(F&& fn, Range&& items, std::chrono::duration<Rep, Period> timeout,
           std::size_t chunksize = 1);

  /// Stops accepting work. With `cancel_futures`, tasks submitted from
  /// outside the pool that have not started are cancelled (their futures
  /// report cancelled()); otherwise every queued task still runs. With `wait`,
  /// returns when all workers have finished. Calling it again is harmless.
  /// InvalidStateError for wait=true from one of the pool's own threads.
  void shutdown(bool wait = true, bool cancel_futures = false);

  /// Number of worker threads.
  std::size_t max_workers() const noexcept { return workers_.size(); }
  /// Whether shutdown() was called (or the pool broke).
  bool is_shutdown() const noexcept { return (gate_.load(std::memory_order_acquire) & 3) != 0; }
  /// Whether an initializer failed.
  bool broken() const noexcept { return broken_.load(std::memory_order_acquire); }
  /// Whether the calling thread is one of this pool's workers.
  bool running_in_this_thread() const noexcept {
    return detail::tl_worker != nullptr && detail::tl_worker->pool == this;
  }
  /// The calling worker's index in [0, max_workers()), or -1 off the pool.
  int worker_index() const noexcept {
    return running_in_this_thread() ? static_cast<int>(detail::tl_worker->index) : -1;
  }
  /// Workers that are asleep or looking for work right now (a hint).
  std::size_t idle_workers() const noexcept {
    return static_cast<std::size_t>(sleeping_.load(std::memory_order_relaxed) +
                                    spinning_.load(std::memory_order_relaxed));
  }

  // ---- for TaskGroup and the parallel algorithms -------------------------

  /// Queues a heap task: on the current worker's deque when called on this
  /// pool, else through the injection queue (BrokenExecutor when closed).
  void spawn(detail::Task* t) {
    if (detail::Worker* w = detail::tl_worker; w != nullptr && w->pool == this) {
      w->deque.push(t);
      notify();
      return;
    }
    inject(t);
  }
  /// On one of this pool's workers: runs one queued task; false if none.
  bool help_one() noexcept {
    detail::Worker* w = detail::tl_worker;
    return w != nullptr && w->pool == this && run_one(w, nullptr);
  }

 private:
  friend struct detail::Worker;
  static constexpr std::uint64_t kShutdownBit = 1;
  static constexpr std::uint64_t kBrokenBit = 2;
  static constexpr std::uint64_t kClosedMask = 3;
  static constexpr std::uint64_t kInFlight = 4;  // one submitter inside the gate

  // Outside submitters hold the gate while they enqueue, so that workers
  // never exit with a task on its way in.
  struct GateGuard {
    ThreadPool* pool;
    explicit GateGuard(ThreadPool* p) : pool(p) {
      const std::uint64_t g = p->gate_.fetch_add(kInFlight, std::memory_order_seq_cst);
      if (g & kClosedMask) {
        p->leave_gate();
        p->throw_closed();
      }
    }
    ~GateGuard() { pool->leave_gate(); }
  };

  void leave_gate() noexcept {
    const std::uint64_t g = gate_.fetch_sub(kInFlight, std::memory_order_seq_cst) - kInFlight;
    if ((g & kClosedMask) != 0 && g < kInFlight) wake_all();
  }
  void check_open_local() const {
    if (gate_.load(std::memory_order_acquire) & kClosedMask) throw_closed();
  }
  [[noreturn]] void throw_closed() const;

  /// Wakes a sleeping worker unless one is already looking for work.
  void notify() noexcept {
    sync::detail::seq_cst_fence();
    if (sleeping_.load(std::memory_order_relaxed) != 0 &&
        spinning_.load(std::memory_order_relaxed) == 0)
      wake_one();
  }

  void inject(detail::Task* t) {
    {
      GateGuard gate(this);
      if (overflow_size_.load(std::memory_order_relaxed) != 0 || !ring_.try_push_task(t))
        overflow_push(t);
    }
    notify();
  }

  template <class Fn>
  void post_outside(Fn&& fn) {
    {
      GateGuard gate(this);
      if constexpr (detail::fits_in_slot<Fn>) {
        if (overflow_size_.load(std::memory_order_relaxed) == 0 &&
            ring_.try_emplace<Fn>(std::move(fn))) {
          // queued in place
        } else {
          overflow_push(detail::new_block_object<detail::PostTask<Fn>>(std::move(fn)));
        }
      } else {
        auto* t = detail::new_block_object<detail::PostTask<Fn>>(std::move(fn));
        if (overflow_size_.load(std::memory_order_relaxed) != 0 || !ring_.try_push_task(t))
          overflow_push(t);
      }
    }
    notify();
  }

  void worker_main(detail::Worker* w);
  bool run_one(detail::Worker* w, bool* spinning) noexcept;
  bool has_work() const noexcept;
  bool sleep(detail::Worker* w) noexcept;
  void wake_one() noexcept;
  void wake_all() noexcept;
  void overflow_push(detail::Task* t) noexcept;
  void drain(detail::TaskOp op, const std::exception_ptr* e) noexcept;
  void mark_broken(std::exception_ptr cause) noexcept;

  std::function<void()> initializer_;
  std::vector<std::unique_ptr<detail::Worker>> workers_;
  detail::InjectRing ring_;

  alignas(64) std::atomic<std::uint64_t> gate_{0};
  alignas(64) std::atomic<int> sleeping_{0};
  alignas(64) std::atomic<int> spinning_{0};
  alignas(64) std::atomic<bool> broken_{false};
  std::exception_ptr broken_error_;  // set before broken_, under broken_mu_
  std::mutex broken_mu_;

  alignas(64) std::atomic<std::size_t> overflow_size_{0};
  std::mutex overflow_mu_;
  detail::Task* overflow_head_ = nullptr;
  detail::Task* overflow_tail_ = nullptr;

  std::mutex idle_mu_;
  std::vector<detail::Worker*> idle_list_;

  std::mutex join_mu_;
};

/// Python's name for it.
using ThreadPoolExecutor = ThreadPool;

// ---- templates -------------------------------------------------------------

template <class F>
void ThreadPool::post(F&& fn) {
  using Fn = std::decay_t<F>;
  if (detail::Worker* w = detail::tl_worker; w != nullptr && w->pool == this) {
    check_open_local();
    w->deque.push(detail::new_block_object<detail::PostTask<Fn>>(std::forward<F>(fn)));
    notify();
    return;
  }
  Fn local(std::forward<F>(fn));
  post_outside(std::move(local));
}

template <class F, class... Args>
auto ThreadPool::submit(F&& fn, Args&&... args)
    -> Future<std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>> {
  using R = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;
  auto call = [f = std::decay_t<F>(std::forward<F>(fn)),
               ... a = std::decay_t<Args>(std::forward<Args>(args))]() mutable -> R {
    return std::invoke(std::move(f), std::move(a)...);
  };
  using Task = detail::FutureTask<R, decltype(call)>;
  Task* task = Task::create(std::move(call));
  task->add_ref();
  Future<R> future{futures::detail::StatePtr<R>(task)};
  try {
    if (detail::Worker* w = detail::tl_worker; w != nullptr && w->pool == this) {
      check_open_local();
      w->deque.push(task);
      notify();
    } else {
      inject(task);
    }
  } catch (...) {
    task->release();  // the queue's reference
    throw;
  }
  return future;
}

template <class F, std::ranges::input_range Range>
auto ThreadPool::map(F&& fn, Range&& items, std::size_t chunksize) {
  return detail::submit_map(*this, std::forward<F>(fn), std::forward<Range>(items), chunksize,
                            std::nullopt);
}

template <class F, std::ranges::input_range Range, class Rep, class Period>
auto ThreadPool::map(F&& fn, Range&& items, std::chrono::duration<Rep, Period> timeout,
                     std::size_t chunksize) {
  return detail::submit_map(
      *this, std::forward<F>(fn), std::forward<Range>(items), chunksize,
      std::optional(std::chrono::steady_clock::now() +
                    std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)));
}

}  // namespace celeriac::exec
