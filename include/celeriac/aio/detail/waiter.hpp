// A Suspension queued in a List: the waiter of locks, events, queues.
#pragma once

#include <coroutine>

#include "celeriac/aio/event_loop.hpp"

namespace celeriac::aio::detail {

/// Waits in a FIFO list until someone pops it and calls wake(). Cancelling
/// unlinks it (no trace left); destroying it unlinks it too.
class ListWaiter : public Suspension, public ListNode {
 public:
  explicit ListWaiter(List& list) noexcept : list_(&list) {}
  ListWaiter(ListWaiter&& o) noexcept : Suspension(), ListNode(), list_(o.list_) {}
  ~ListWaiter() { ListNode::unlink(); }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    list_->push_back(this);
    return true;
  }
  void await_resume() { end(); }

  /// Pops the first waiter of `list` and wakes it; false if none.
  static bool wake_one(List& list) noexcept {
    ListNode* n = list.pop_front();
    if (!n) return false;
    static_cast<ListWaiter*>(n)->wake();
    return true;
  }
  static void wake_all(List& list) noexcept {
    while (wake_one(list)) {
    }
  }

 private:
  static bool on_cancel(Suspension& s) noexcept {
    static_cast<ListWaiter&>(s).ListNode::unlink();
    return true;
  }
  List* list_;
};

/// The task whose coroutine is running on this thread (null in callbacks).
inline TaskCore* current_task() noexcept {
  return tls_context.task;
}

}  // namespace celeriac::aio::detail
