// sleep / sleep_until / yield_now: asyncio.sleep on the loop's timer heap.
#pragma once

#include <coroutine>

#include "celeriac/aio/event_loop.hpp"

namespace celeriac::aio {

/// The awaitable of sleep() and sleep_until(). Cancellation removes the
/// timer and resumes the task with CancelledError.
class SleepAwaiter : private Suspension, private detail::TimerNode {
 public:
  /// Either a delay (relative to the loop time when awaited) or a deadline.
  SleepAwaiter(Duration delay, bool absolute, TimePoint when) noexcept
      : delay_(delay), when_(when), absolute_(absolute) {}
  /// Takes over `o`'s pending sleep.
  SleepAwaiter(SleepAwaiter&& o) noexcept
      : Suspension(), TimerNode(), delay_(o.delay_), when_(o.when_), absolute_(o.absolute_) {}
  ~SleepAwaiter() {
    if (queued()) loop().remove_timer(this);
  }

  bool await_ready() const noexcept { return false; }  // even sleep(0) yields once
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    EventLoop& l = loop();
    TimePoint due = absolute_ ? when_ : l.time() + delay_;
    if (due <= l.time()) {
      wake();
    } else {
      deadline = due.time_since_epoch().count();
      fire = &on_fire;
      l.add_timer(this);
    }
    return true;
  }
  void await_resume() { end(); }

 private:
  static void on_fire(detail::TimerNode* t) noexcept { static_cast<SleepAwaiter*>(t)->wake(); }
  static bool on_cancel(Suspension& s) noexcept {
    auto& self = static_cast<SleepAwaiter&>(s);
    if (self.queued()) self.loop().remove_timer(&self);
    return true;
  }
  Duration delay_;
  TimePoint when_;
  bool absolute_;
};

/// Suspends the task for `delay` of loop time (asyncio.sleep). A delay of
/// zero or less yields to the other ready work once.
inline SleepAwaiter sleep(Duration delay) noexcept {
  return SleepAwaiter(delay, false, {});
}
template <class Rep, class Period>
SleepAwaiter sleep(std::chrono::duration<Rep, Period> delay) noexcept {
  return SleepAwaiter(std::chrono::ceil<Duration>(delay), false, {});
}
/// Suspends the task until loop time `when`.
inline SleepAwaiter sleep_until(TimePoint when) noexcept {
  return SleepAwaiter({}, true, when);
}
/// Lets the other ready tasks run (asyncio.sleep(0)).
inline SleepAwaiter yield_now() noexcept {
  return SleepAwaiter(Duration::zero(), false, {});
}

}  // namespace celeriac::aio
