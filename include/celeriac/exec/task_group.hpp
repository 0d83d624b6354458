// TaskGroup: cheap fork-join on a ThreadPool (as oneTBB's task_group). run()
// spawns a child task onto the calling worker's own deque; wait() runs queued
// tasks (its own children first) until every child has finished.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "celeriac/error.hpp"
#include "celeriac/exec/detail/task.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/sync/detail/futex.hpp"

namespace celeriac::exec {

class TaskGroup;

namespace detail {
template <class F>
struct GroupTask;
}

/// A set of child tasks on a ThreadPool that the creator waits for.
///
/// The first exception thrown by a child cancels the children that have not
/// started and is rethrown by wait(). run() may be called from any thread,
/// including from the group's own children. Waiting on a worker of the pool
/// runs other tasks meanwhile; waiting elsewhere sleeps.
class TaskGroup {
 public:
  /// A group whose children run on `pool`.
  explicit TaskGroup(ThreadPool& pool) noexcept : pool_(pool) {}
  /// Cancels the children not started yet and waits for the others;
  /// an exception they threw is dropped (call wait() to see it).
  ~TaskGroup() {
    if (pending()) {
      cancel();
      wait_impl(nullptr);
    }
  }
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  /// Spawns `fn()` as a child task. BrokenExecutor when called from outside
  /// the pool after shutdown.
  template <class F>
  void run(F&& fn);

  /// Blocks until every child has finished; rethrows the first exception a
  /// child threw (CancelledError if children were cancelled by shutdown).
  /// The group can be reused afterwards.
  void wait() {
    wait_impl(nullptr);
    rethrow_and_reset();
  }
  /// As wait(), giving up after `timeout`: returns false if children are
  /// still running (the group must then be waited for again).
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
    if (!wait_impl(&deadline)) return false;
    rethrow_and_reset();
    return true;
  }

  /// Children that have not started yet will be skipped.
  void cancel() noexcept { cancelled_.store(true, std::memory_order_relaxed); }
  /// Whether cancel() was called.
  bool is_cancelled() const noexcept { return cancelled_.load(std::memory_order_relaxed); }
  /// Children not finished yet.
  std::uint32_t pending() const noexcept {
    return pending_.load(std::memory_order_acquire) & kCountMask;
  }
  /// The pool the children run on.
  ThreadPool& pool() const noexcept { return pool_; }

 private:
  template <class F>
  friend struct detail::GroupTask;
  static constexpr std::uint32_t kSleepBit = 1u << 31;
  static constexpr std::uint32_t kCountMask = kSleepBit - 1;

  void capture(std::exception_ptr e) noexcept {
    if (!has_error_.exchange(true, std::memory_order_acq_rel)) error_ = std::move(e);
    cancel();
  }
  // The last touch of the group by a child: after it the group may be gone.
  void finish_one() noexcept {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == (kSleepBit | 1))
      sync::detail::futex_wake_all(pending_);
  }

  void rethrow_and_reset() {
    cancelled_.store(false, std::memory_order_relaxed);
    if (has_error_.load(std::memory_order_acquire)) {
      std::exception_ptr e = std::move(error_);
      error_ = nullptr;
      has_error_.store(false, std::memory_order_relaxed);
      std::rethrow_exception(e);
    }
  }

  bool wait_impl(const std::chrono::steady_clock::time_point* deadline) noexcept {
    const bool on_pool = pool_.running_in_this_thread();
    for (;;) {
      std::uint32_t v = pending_.load(std::memory_order_acquire);
      if ((v & kCountMask) == 0) break;
      if (on_pool) {
        if (pool_.help_one()) continue;
        bool progressed = false;
        for (int i = 0; i < 256 && !progressed; ++i) {
          sync::detail::cpu_relax();
          if ((pending_.load(std::memory_order_acquire) & kCountMask) == 0 || pool_.help_one())
            progressed = true;
        }
        if (progressed) continue;
      }
      std::chrono::nanoseconds sleep(-1);
      if (deadline) {
        auto left = *deadline - std::chrono::steady_clock::now();
        if (left <= decltype(left)::zero()) return false;
        sleep = std::chrono::duration_cast<std::chrono::nanoseconds>(left);
      }
      // On the pool, look for stealable work now and then while sleeping.
      if (on_pool && (sleep.count() < 0 || sleep > std::chrono::microseconds(200)))
        sleep = std::chrono::microseconds(200);
      if (!(v & kSleepBit) &&
          !pending_.compare_exchange_weak(v, v | kSleepBit, std::memory_order_acq_rel))
        continue;
      sync::detail::futex_wait(pending_, v | kSleepBit, sleep);
    }
    pending_.fetch_and(kCountMask, std::memory_order_relaxed);
    return true;
  }

  ThreadPool& pool_;
  std::atomic<std::uint32_t> pending_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> has_error_{false};
  std::exception_ptr error_;
};

namespace detail {

template <class F>
struct GroupTask final : Task {
  template <class G>
  GroupTask(TaskGroup* g, G&& f) : Task(&invoke), group(g), fn(std::forward<G>(f)) {}
  TaskGroup* group;
  F fn;

  static void invoke(Task* t, TaskOp op, const std::exception_ptr* e) noexcept {
    auto* self = static_cast<GroupTask*>(t);
    TaskGroup* g = self->group;
    if (op == TaskOp::kRun) {
      if (!g->is_cancelled()) {
        try {
          self->fn();
        } catch (...) {
          g->capture(std::current_exception());
        }
      }
    } else if (op == TaskOp::kCancel) {
      g->capture(std::make_exception_ptr(CancelledError("task group child cancelled by shutdown")));
    } else {
      g->capture(*e);
    }
    delete_block_object(self);
    g->finish_one();
  }
};

}  // namespace detail

template <class F>
void TaskGroup::run(F&& fn) {
  using T = detail::GroupTask<std::decay_t<F>>;
  T* t = detail::new_block_object<T>(this, std::forward<F>(fn));
  pending_.fetch_add(1, std::memory_order_relaxed);
  try {
    pool_.spawn(t);
  } catch (...) {
    pending_.fetch_sub(1, std::memory_order_relaxed);
    detail::delete_block_object(t);
    throw;
  }
}

}  // namespace celeriac::exec
