// aio::Condition (asyncio.Condition): wait for a notification while holding
// a Lock.
#pragma once

#include <memory>

#include "celeriac/aio/detail/waiter.hpp"
#include "celeriac/aio/lock.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// A condition variable for tasks (asyncio.Condition), bound to an aio::Lock. Loop thread only.
class Condition {
 public:
  /// Uses `lock`, or a lock of its own when null.
  explicit Condition(Lock* lock = nullptr)
      : own_(lock ? nullptr : std::make_unique<Lock>()), lock_(lock ? lock : own_.get()) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  /// Acquires the underlying lock (co_await it).
  Lock::Acquire acquire() noexcept { return lock_->acquire(); }
  /// Acquires the underlying lock and returns a guard that releases it (co_await it).
  Lock::ScopedAcquire scoped() noexcept { return lock_->scoped(); }
  /// Releases the underlying lock.
  void release() { lock_->release(); }
  /// Whether the underlying lock is held.
  bool locked() const noexcept { return lock_->locked(); }
  /// The underlying lock.
  Lock& lock() noexcept { return *lock_; }

  /// Releases the lock, waits for notify(), re-acquires the lock (even when
  /// cancelled: CancelledError is thrown with the lock held).
  /// InvalidStateError if the lock is not held.
  Task<void> wait() {
    if (!lock_->locked()) throw InvalidStateError("aio::Condition::wait(): lock is not acquired");
    lock_->release();
    std::exception_ptr err;
    try {
      co_await detail::ListWaiter(waiters_);
    } catch (...) {
      err = std::current_exception();
    }
    for (;;) {
      try {
        co_await lock_->acquire();
        break;
      } catch (const CancelledError&) {
        if (!err) err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
  }

  /// Waits until pred() is true (checked with the lock held).
  template <class Pred>
  Task<void> wait_for(Pred pred) {
    while (!pred()) co_await wait();
  }

  /// Wakes up to n waiters; InvalidStateError if the lock is not held.
  void notify(std::size_t n = 1) {
    if (!lock_->locked()) throw InvalidStateError("aio::Condition::notify(): lock is not acquired");
    while (n-- > 0 && detail::ListWaiter::wake_one(waiters_)) {
    }
  }
  /// Wakes every task waiting in wait().
  void notify_all() {
    if (!lock_->locked())
      throw InvalidStateError("aio::Condition::notify_all(): lock is not acquired");
    detail::ListWaiter::wake_all(waiters_);
  }

 private:
  std::unique_ptr<Lock> own_;
  Lock* lock_;
  detail::List waiters_;
};

}  // namespace celeriac::aio
