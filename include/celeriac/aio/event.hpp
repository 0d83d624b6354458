// aio::Event (asyncio.Event): a flag tasks can wait for.
#pragma once

#include "celeriac/aio/detail/waiter.hpp"

namespace celeriac::aio {

/// A flag tasks wait on until it is set (asyncio.Event). Loop thread only.
class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  /// Awaitable: completes when the flag is set.
  class Wait : public detail::ListWaiter {
   public:
    /// Waits on `e` (what wait() returns: co_await it).
    explicit Wait(Event& e) noexcept : ListWaiter(e.waiters_), event_(&e) {}
    bool await_ready() const noexcept { return event_->set_; }

   private:
    Event* event_;
  };

  /// `co_await event.wait();`
  Wait wait() noexcept { return Wait(*this); }
  /// Sets the flag and wakes every waiter.
  void set() noexcept {
    set_ = true;
    detail::ListWaiter::wake_all(waiters_);
  }
  /// Resets the flag; later wait() calls suspend until set() again.
  void clear() noexcept { set_ = false; }
  /// Whether the flag is set.
  bool is_set() const noexcept { return set_; }

 private:
  detail::List waiters_;
  bool set_ = false;
};

}  // namespace celeriac::aio
