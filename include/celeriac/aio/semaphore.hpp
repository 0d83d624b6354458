// aio::Semaphore and BoundedSemaphore (asyncio's). FIFO, cancellation-safe:
// release() hands the unit straight to the first waiter.
#pragma once

#include <cstddef>
#include <string>

#include "celeriac/aio/detail/waiter.hpp"

namespace celeriac::aio {

/// A counter of permits for tasks (asyncio.Semaphore): acquire() waits while there is none. Loop
/// thread only.
class Semaphore {
 public:
  /// Error for a negative value.
  explicit Semaphore(long value = 1) : value_(value) {
    if (value < 0)
      throw Error("aio::Semaphore: initial value must be >= 0, got " + std::to_string(value));
  }
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  virtual ~Semaphore() = default;

  /// Waits for a permit (what acquire() returns: co_await it).
  class Acquire : public detail::ListWaiter {
   public:
    /// Waits for a permit of `s`.
    explicit Acquire(Semaphore& s) noexcept : ListWaiter(s.waiters_), sem_(&s) {}
    bool await_ready() noexcept { return sem_->try_acquire(); }

   private:
    Semaphore* sem_;
  };

  /// `co_await sem.acquire();`
  Acquire acquire() noexcept { return Acquire(*this); }
  /// Takes a unit if one is free and nobody waits.
  bool try_acquire() noexcept {
    if (value_ > 0 && waiters_.empty()) {
      --value_;
      return true;
    }
    return false;
  }
  /// Returns a unit (to the first waiter, if any).
  virtual void release() {
    if (!detail::ListWaiter::wake_one(waiters_)) ++value_;
  }
  /// True when acquire() would wait.
  bool locked() const noexcept { return value_ == 0; }
  /// Permits available now.
  long value() const noexcept { return value_; }

 protected:
  /// Tasks waiting for a permit, in arrival order.
  detail::List waiters_;
  /// Permits available.
  long value_;
};

/// A Semaphore whose release() throws Error when it would exceed the
/// initial value (asyncio.BoundedSemaphore's ValueError).
class BoundedSemaphore : public Semaphore {
 public:
  /// A semaphore with `value` permits, which is also its bound (release() past it throws).
  explicit BoundedSemaphore(long value = 1) : Semaphore(value), bound_(value) {}
  void release() override {
    if (waiters_.empty() && value_ >= bound_)
      throw Error("aio::BoundedSemaphore released too many times (bound " + std::to_string(bound_) +
                  ")");
    Semaphore::release();
  }

 private:
  long bound_;
};

}  // namespace celeriac::aio
