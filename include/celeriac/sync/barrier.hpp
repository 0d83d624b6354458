// Barrier: a meeting point for a fixed number of threads (Python's threading.Barrier).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>

#include "celeriac/sync/detail/deadline.hpp"

namespace celeriac::sync {

/// Lets `parties` threads wait for each other: each calls wait(), and once
/// the last one arrives all of them continue together. Reusable: the next
/// round starts when every thread of the previous one has left wait().
///
/// As Python's threading.Barrier: the optional action runs in the last
/// thread to arrive before any thread is released; if it throws, the barrier
/// breaks and the exception propagates from that thread's wait(). A broken
/// barrier (abort(), an action that threw, or a wait that timed out) makes
/// every waiting and later wait() throw BrokenBarrierError until reset().
/// Not copyable or movable.
class Barrier {
 public:
  /// Runs once per round, in the last arriving thread, with the barrier's
  /// lock held: it must not call this barrier.
  using Action = std::function<void()>;

  /// A barrier for `parties` threads (std::invalid_argument if 0).
  explicit Barrier(std::size_t parties, Action action = {});
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  ~Barrier() = default;

  /// Blocks until `parties` threads are waiting, then releases them all.
  /// Returns this thread's arrival index, 0 (first) to parties()-1 (last),
  /// distinct within a round. BrokenBarrierError if the barrier is or
  /// becomes broken.
  std::size_t wait();

  /// As wait(), waiting at most `timeout`. On timeout this thread breaks
  /// the barrier (releasing the others with BrokenBarrierError) and throws
  /// BrokenBarrierError itself, as Python does.
  template <class Rep, class Period>
  std::size_t wait_for(std::chrono::duration<Rep, Period> timeout) {
    return wait_until_(detail::deadline_after(timeout));
  }

  /// As wait_for(), with an absolute deadline on any clock.
  template <class Clock, class Duration>
  std::size_t wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    return wait_until_(detail::to_deadline(deadline));
  }

  /// Returns the barrier to its initial, unbroken state. Threads waiting now
  /// get BrokenBarrierError.
  void reset();

  /// Breaks the barrier: waiting and later wait() calls throw
  /// BrokenBarrierError until reset(). Use it to free threads on failure.
  void abort();

  /// The number of threads needed to pass the barrier.
  std::size_t parties() const noexcept { return parties_; }

  /// The number of threads waiting in the current round now.
  std::size_t n_waiting() const;

  /// Whether the barrier is broken.
  bool broken() const;

 private:
  enum class State { kFilling, kDraining, kResetting, kBroken };

  std::size_t wait_until_(detail::Deadline deadline);
  void enter_(std::unique_lock<std::mutex>& lock);
  void release_();
  void await_release_(std::unique_lock<std::mutex>& lock, detail::Deadline deadline);
  void exit_();
  void break_();

  const std::size_t parties_;
  const Action action_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  State state_ = State::kFilling;
  std::size_t count_ = 0;  // threads inside wait() this round
};

}  // namespace celeriac::sync
