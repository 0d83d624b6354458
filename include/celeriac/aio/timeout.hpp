// timeout / wait_for (that really cancel the inner operation) and shield.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "celeriac/aio/detail/awaitable.hpp"
#include "celeriac/aio/detail/waiter.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

namespace detail {

struct TimerGuard {
  TimerHandle timer;
  ~TimerGuard() { timer.cancel(); }
};

template <class T>
Task<T> join_with_timeout(TaskHandle<T> h, Duration d) {
  bool fired = false;
  TimerGuard guard{EventLoop::current().call_later(d, [&fired, h]() mutable {
    fired = true;
    h.cancel();
  })};
  try {
    if constexpr (std::is_void_v<T>) {
      co_await h;
      co_return;
    } else {
      co_return co_await h;
    }
  } catch (const CancelledError&) {
    TaskCore* me = current_task();
    if (!fired || (me && me->cancelling() > 0)) throw;  // we were cancelled ourselves
  }
  throw TimeoutError("aio: operation timed out after " +
                     std::to_string(std::chrono::duration<double>(d).count()) + " s");
}

}  // namespace detail

/// Runs the awaitable (a Task, a TaskHandle or any awaitable) and returns its
/// result; if it takes longer than `d`, it is cancelled (and waited for) and
/// TimeoutError is thrown. Cancelling the caller cancels the operation too.
/// asyncio.wait_for(aw, timeout).
template <class A>
Task<detail::result_of_t<A>> wait_for(A aw, Duration d) {
  return detail::join_with_timeout(detail::to_handle(std::move(aw)), d);
}

/// Same as wait_for, with the duration first (asyncio.timeout(d): ... await aw).
template <class A>
Task<detail::result_of_t<A>> timeout(Duration d, A aw) {
  return detail::join_with_timeout(detail::to_handle(std::move(aw)), d);
}

/// Protects an operation from cancellation (asyncio.shield): cancelling the
/// awaiting task makes the `co_await shield(...)` throw CancelledError, but
/// the operation keeps running as a task.
template <class A>
detail::JoinAwaiter<detail::result_of_t<A>> shield(A aw) {
  auto h = detail::to_handle(std::move(aw));
  return detail::JoinAwaiter<detail::result_of_t<A>>(h.core(), false);
}

}  // namespace celeriac::aio
