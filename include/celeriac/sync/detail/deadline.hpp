// Deadlines on the steady clock, shared by every timed wait of the sync layer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <type_traits>

namespace celeriac::sync::detail {

using SteadyClock = std::chrono::steady_clock;
using Deadline = SteadyClock::time_point;

/// Wait forever.
inline constexpr Deadline kNoDeadline = Deadline::max();
/// Do not wait at all (the *_nowait and try_* forms).
inline constexpr Deadline kNoWait = Deadline::min();

/// The steady-clock deadline `timeout` from now, saturating at kNoDeadline
/// instead of overflowing (duration::max() means "no limit").
template <class Rep, class Period>
Deadline deadline_after(std::chrono::duration<Rep, Period> timeout) {
  const auto now = SteadyClock::now();
  if (timeout <= timeout.zero()) return now;
  const std::chrono::duration<double, std::nano> wanted(timeout);
  const std::chrono::duration<double, std::nano> room(Deadline::max() - now);
  if (wanted >= room) return kNoDeadline;
  return now + std::chrono::ceil<SteadyClock::duration>(timeout);
}

/// `time` converted to the steady clock (time points of other clocks are
/// re-expressed as "that long from now").
template <class Clock, class Duration>
Deadline to_deadline(std::chrono::time_point<Clock, Duration> time) {
  if constexpr (std::is_same_v<Clock, SteadyClock>) {
    return std::chrono::time_point_cast<SteadyClock::duration>(time);
  } else {
    return deadline_after(time - Clock::now());
  }
}

/// cv.wait(lock, ready) bounded by `deadline`; returns ready() at the end.
/// kNoWait only evaluates ready(); kNoDeadline waits without a limit.
template <class Ready>
bool wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Deadline deadline,
                Ready ready) {
  if (deadline == kNoWait) return ready();
  if (deadline == kNoDeadline) {
    cv.wait(lock, ready);
    return true;
  }
  return cv.wait_until(lock, deadline, ready);
}

}  // namespace celeriac::sync::detail
