// Semaphore and BoundedSemaphore (Python's threading.Semaphore/BoundedSemaphore).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

#include "celeriac/sync/detail/deadline.hpp"

namespace celeriac::sync {

/// A counter of permits: acquire() takes one, blocking while there is none;
/// release() gives permits back. Not copyable or movable.
class Semaphore {
 public:
  /// A semaphore holding `value` permits (Python's default: 1).
  /// std::invalid_argument if `value` is negative.
  explicit Semaphore(std::ptrdiff_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() = default;

  /// Takes one permit, blocking until one is available.
  void acquire();

  /// Takes one permit if one is available now; false otherwise.
  bool try_acquire();

  /// Takes one permit, waiting at most `timeout`; false on timeout.
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> timeout) {
    return acquire_until_(detail::deadline_after(timeout));
  }

  /// Takes one permit, waiting until `deadline` (any clock); false on timeout.
  template <class Clock, class Duration>
  bool try_acquire_until(std::chrono::time_point<Clock, Duration> deadline) {
    return acquire_until_(detail::to_deadline(deadline));
  }

  /// Gives back `n` permits, waking up to `n` waiting threads.
  /// std::invalid_argument if n < 1; InvalidStateError if the count would pass
  /// the bound (a BoundedSemaphore's initial value), leaving it unchanged.
  void release(std::ptrdiff_t n = 1);

  /// Permits available now (a snapshot: other threads may change it).
  std::ptrdiff_t value() const;

 protected:
  /// A semaphore whose count may never exceed `bound`; `kind` names the class
  /// in error messages.
  Semaphore(std::ptrdiff_t value, std::ptrdiff_t bound, const char* kind);

  /// The largest count release() allows.
  std::ptrdiff_t bound() const noexcept { return bound_; }

 private:
  bool acquire_until_(detail::Deadline deadline);

  const std::ptrdiff_t bound_;
  const char* const kind_;
  mutable std::mutex mutex_;
  std::condition_variable available_;
  std::ptrdiff_t value_;
};

/// A Semaphore that refuses to be released past its initial value: such a
/// release() throws InvalidStateError, catching code that releases more than
/// it acquired (Python raises ValueError there).
class BoundedSemaphore : public Semaphore {
 public:
  /// A semaphore with `value` permits, which is also its bound.
  explicit BoundedSemaphore(std::ptrdiff_t value = 1);

  /// The bound: the initial value.
  using Semaphore::bound;
};

}  // namespace celeriac::sync
