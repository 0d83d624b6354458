// aio::Semaphore and BoundedSemaphore (asyncio's). FIFO, cancellation-safe:
// release() hands the unit straight to the first waiter.
#pragma once

#include <cstddef>
#include <string>

#include "celeriac/aio/detail/waiter.hpp"

namespace celeriac::aio {

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

  class Acquire : public detail::ListWaiter {
   public:
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
  long value() const noexcept { return value_; }

 protected:
  detail::List waiters_;
  long value_;
};

/// A Semaphore whose release() throws Error when it would exceed the
/// initial value (asyncio.BoundedSemaphore's ValueError).
class BoundedSemaphore : public Semaphore {
 public:
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
