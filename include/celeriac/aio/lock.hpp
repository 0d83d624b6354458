// aio::Lock (asyncio.Lock): a mutex for tasks of one loop. FIFO and
// cancellation-safe: a cancelled waiter leaves no trace, and release() hands
// the lock straight to the first waiter.
#pragma once

#include <utility>

#include "celeriac/aio/detail/waiter.hpp"

namespace celeriac::aio {

class Lock;

/// Releases a Lock when destroyed (from `co_await lock.scoped()`).
class LockGuard {
 public:
  /// A guard that releases `l` when destroyed.
  explicit LockGuard(Lock& l) noexcept : lock_(&l) {}
  /// Takes over `o`'s lock.
  LockGuard(LockGuard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
  LockGuard(const LockGuard&) = delete;
  ~LockGuard();
  /// Releases early.
  void unlock();

 private:
  Lock* lock_;
};

/// A mutual exclusion lock for tasks (asyncio.Lock), fair (FIFO). Loop thread only.
class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  /// Awaitable: acquires the lock (`co_await lock.acquire();`).
  class Acquire : public detail::ListWaiter {
   public:
    /// Waits for `l` (what acquire() returns: co_await it).
    explicit Acquire(Lock& l) noexcept : ListWaiter(l.waiters_), lock_(&l) {}
    bool await_ready() noexcept {
      if (lock_->locked_) return false;
      lock_->locked_ = true;
      return true;
    }

   protected:
    /// The lock being acquired.
    Lock* lock_;
  };
  /// Awaitable: acquires the lock and returns a LockGuard.
  class ScopedAcquire : public Acquire {
   public:
    /// Acquire's constructors.
    using Acquire::Acquire;
    LockGuard await_resume() {
      Acquire::await_resume();
      return LockGuard(*lock_);
    }
  };

  /// Acquires the lock (co_await it); release() it after.
  Acquire acquire() noexcept { return Acquire(*this); }
  /// `auto guard = co_await lock.scoped();`
  ScopedAcquire scoped() noexcept { return ScopedAcquire(*this); }
  /// Takes the lock if free (no waiting).
  bool try_acquire() noexcept {
    if (locked_) return false;
    locked_ = true;
    return true;
  }
  /// Releases the lock, handing it to the first waiter if any;
  /// InvalidStateError if not locked.
  void release() {
    if (!locked_) throw InvalidStateError("aio::Lock::release(): lock is not acquired");
    if (!detail::ListWaiter::wake_one(waiters_)) locked_ = false;
  }
  /// Whether the lock is held.
  bool locked() const noexcept { return locked_; }
  /// Tasks waiting to acquire.
  std::size_t waiters() const noexcept { return waiters_.size(); }

 private:
  detail::List waiters_;
  bool locked_ = false;
};

inline LockGuard::~LockGuard() {
  if (lock_) lock_->release();
}
inline void LockGuard::unlock() {
  if (lock_) std::exchange(lock_, nullptr)->release();
}

}  // namespace celeriac::aio
