// Event: a flag that threads can wait for (Python's threading.Event).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "celeriac/sync/detail/deadline.hpp"
#include "celeriac/sync/detail/futex.hpp"

namespace celeriac::sync {

/// A boolean flag, initially false, that threads wait on until another thread
/// sets it. As in Python, set() wakes every thread waiting at that moment,
/// even if clear() follows at once. Waiting costs no CPU (a futex); is_set()
/// is one atomic load. Not copyable or movable.
class Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Sets the flag and wakes every waiting thread. Writes made before set()
  /// are visible to threads that see the flag set.
  void set() noexcept {
    std::uint32_t old_word = word_.load(std::memory_order_relaxed);
    std::uint32_t new_word = 0;
    do {
      new_word = is_set_word(old_word) ? old_word : ((old_word & ~kWaiters) + kGeneration) | kSet;
    } while (!word_.compare_exchange_weak(old_word, new_word, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
    if (!is_set_word(old_word) && (old_word & kWaiters)) detail::futex_wake_all(word_);
  }

  /// Resets the flag to false; later wait() calls block until set() again.
  void clear() noexcept { word_.fetch_and(~kSet, std::memory_order_acq_rel); }

  /// Whether the flag is set.
  bool is_set() const noexcept { return is_set_word(word_.load(std::memory_order_acquire)); }

  /// Blocks until the flag is set (returns at once if it already is).
  void wait() noexcept { wait_impl(detail::kNoDeadline); }

  /// Blocks until the flag is set or `timeout` passes. Returns true if the
  /// flag was set (or set() was called during the wait), false on timeout.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) noexcept {
    return wait_impl(detail::deadline_after(timeout));
  }

  /// As wait_for(), with an absolute deadline on any clock.
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) noexcept {
    return wait_impl(detail::to_deadline(deadline));
  }

 private:
  // word_: bit 0 the flag, bit 1 "someone sleeps on the futex", bits 2..31 a
  // generation counted up by each set() so a sleeper woken after a quick
  // set()+clear() still sees that it was signalled.
  static constexpr std::uint32_t kSet = 1;
  static constexpr std::uint32_t kWaiters = 2;
  static constexpr std::uint32_t kGeneration = 4;

  static bool is_set_word(std::uint32_t word) noexcept { return (word & kSet) != 0; }
  static bool signalled(std::uint32_t word, std::uint32_t generation) noexcept {
    return is_set_word(word) || (word & ~(kSet | kWaiters)) != generation;
  }

  bool wait_impl(detail::Deadline deadline) noexcept {
    std::uint32_t word = word_.load(std::memory_order_acquire);
    const std::uint32_t generation = word & ~(kSet | kWaiters);
    while (!signalled(word, generation)) {
      if (!(word & kWaiters) &&
          !word_.compare_exchange_weak(word, word | kWaiters, std::memory_order_acquire)) {
        continue;  // word changed: re-check it
      }
      if (!sleep(word | kWaiters, deadline))
        return signalled(word_.load(std::memory_order_acquire), generation);
      word = word_.load(std::memory_order_acquire);
    }
    return true;
  }

  // Parks on the futex while it holds `expected`; false once the deadline passed.
  bool sleep(std::uint32_t expected, detail::Deadline deadline) noexcept {
    if (deadline == detail::kNoDeadline) {
      detail::futex_wait(word_, expected);
      return true;
    }
    const auto left = deadline - detail::SteadyClock::now();
    if (left <= left.zero()) return false;
    detail::futex_wait(word_, expected, left);
    return true;
  }

  std::atomic<std::uint32_t> word_{0};
};

}  // namespace celeriac::sync
