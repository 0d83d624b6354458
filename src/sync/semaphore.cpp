#include "celeriac/sync/semaphore.hpp"

#include <limits>
#include <stdexcept>
#include <string>

#include "celeriac/error.hpp"

namespace celeriac::sync {

namespace {

std::ptrdiff_t checked_initial(std::ptrdiff_t value, const char* kind) {
  if (value < 0)
    throw std::invalid_argument(std::string(kind) + ": initial value must be >= 0, got " +
                                std::to_string(value));
  return value;
}

}  // namespace

Semaphore::Semaphore(std::ptrdiff_t value)
    : Semaphore(value, std::numeric_limits<std::ptrdiff_t>::max(), "Semaphore") {}

Semaphore::Semaphore(std::ptrdiff_t value, std::ptrdiff_t bound, const char* kind)
    : bound_(bound), kind_(kind), value_(checked_initial(value, kind)) {}

void Semaphore::acquire() {
  acquire_until_(detail::kNoDeadline);
}

bool Semaphore::try_acquire() {
  return acquire_until_(detail::kNoWait);
}

bool Semaphore::acquire_until_(detail::Deadline deadline) {
  std::unique_lock lock(mutex_);
  if (!detail::wait_until(available_, lock, deadline, [&] { return value_ > 0; })) return false;
  --value_;
  return true;
}

void Semaphore::release(std::ptrdiff_t n) {
  if (n < 1)
    throw std::invalid_argument(std::string(kind_) + "::release(n): n must be >= 1, got " +
                                std::to_string(n));
  std::lock_guard lock(mutex_);
  if (n > bound_ - value_)
    throw InvalidStateError(std::string(kind_) + "::release(" + std::to_string(n) +
                            ") would raise the value from " + std::to_string(value_) +
                            " above its bound " + std::to_string(bound_) +
                            " (released more often than acquired)");
  value_ += n;
  if (n == 1) {
    available_.notify_one();
  } else {
    available_.notify_all();
  }
}

std::ptrdiff_t Semaphore::value() const {
  std::lock_guard lock(mutex_);
  return value_;
}

BoundedSemaphore::BoundedSemaphore(std::ptrdiff_t value)
    : Semaphore(value, value, "BoundedSemaphore") {}

}  // namespace celeriac::sync
