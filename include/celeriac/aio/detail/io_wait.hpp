// Small awaitables the aio I/O layer builds on: a list of parked tasks woken
// together (drain, wait_closed, Process::wait), and fd readiness that
// reports "the watch was closed" as false instead of an exception.
#pragma once

#include <cerrno>
#include <coroutine>
#include <system_error>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/fd_watch.hpp"

namespace celeriac::aio::detail {

/// co_await WaitListAwaiter(list): parks the task in `list` until
/// wake_all(list). Cancellation unlinks it (no trace left).
class WaitListAwaiter : public Suspension, public ListNode {
 public:
  explicit WaitListAwaiter(List& list) noexcept : list_(list) {}
  ~WaitListAwaiter() { ListNode::unlink(); }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    list_.push_back(this);
    return true;
  }
  void await_resume() { end(); }

 private:
  static bool on_cancel(Suspension& s) noexcept {
    static_cast<WaitListAwaiter&>(s).ListNode::unlink();
    return true;
  }
  List& list_;
};

/// Wakes every task parked in `list`.
inline void wake_all(List& list) noexcept {
  while (ListNode* n = list.pop_front()) static_cast<WaitListAwaiter*>(n)->wake();
}

/// co_await ready_or_closed(watch.readable()): true when ready (or a
/// spurious wake-up), false when the FdWatch was closed while waiting.
/// CancelledError passes through.
class ReadyOrClosed {
 public:
  explicit ReadyOrClosed(ReadinessAwaiter a) noexcept : a_(std::move(a)) {}
  bool await_ready() noexcept { return a_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) { return a_.await_suspend(h); }
  bool await_resume() {
    try {
      a_.await_resume();
      return true;
    } catch (const std::system_error& e) {
      if (e.code().value() == EBADF) return false;
      throw;
    }
  }

 private:
  ReadinessAwaiter a_;
};

}  // namespace celeriac::aio::detail
