// The algorithm is CPython's threading.Barrier, state for state.
#include "celeriac/sync/barrier.hpp"

#include <stdexcept>
#include <string>
#include <utility>

#include "celeriac/sync/errors.hpp"

namespace celeriac::sync {

Barrier::Barrier(std::size_t parties, Action action)
    : parties_(parties), action_(std::move(action)) {
  if (parties == 0) throw std::invalid_argument("Barrier: parties must be >= 1, got 0");
}

std::size_t Barrier::wait() {
  return wait_until_(detail::kNoDeadline);
}

std::size_t Barrier::wait_until_(detail::Deadline deadline) {
  std::unique_lock lock(mutex_);
  enter_(lock);
  const std::size_t index = count_++;
  try {
    if (index + 1 == parties_) {
      release_();
    } else {
      await_release_(lock, deadline);
    }
  } catch (...) {
    exit_();
    throw;
  }
  exit_();
  return index;
}

// Waits while the previous round drains or a reset finishes.
void Barrier::enter_(std::unique_lock<std::mutex>& lock) {
  changed_.wait(lock, [&] { return state_ != State::kDraining && state_ != State::kResetting; });
  if (state_ == State::kBroken) throw BrokenBarrierError("Barrier::wait: the barrier is broken");
}

// The last thread arrived: run the action, then let everyone go.
void Barrier::release_() {
  try {
    if (action_) action_();
  } catch (...) {
    break_();
    throw;
  }
  state_ = State::kDraining;
  changed_.notify_all();
}

void Barrier::await_release_(std::unique_lock<std::mutex>& lock, detail::Deadline deadline) {
  if (!detail::wait_until(changed_, lock, deadline, [&] { return state_ != State::kFilling; })) {
    break_();
    throw BrokenBarrierError("Barrier::wait: timed out waiting for " +
                             std::to_string(parties_ - count_) + " more of " +
                             std::to_string(parties_) + " parties; the barrier is now broken");
  }
  if (state_ == State::kBroken || state_ == State::kResetting)
    throw BrokenBarrierError("Barrier::wait: the barrier was aborted or reset while waiting");
}

// The last thread out of a drain or reset opens the barrier for a new round.
void Barrier::exit_() {
  --count_;
  if (count_ == 0 && (state_ == State::kDraining || state_ == State::kResetting)) {
    state_ = State::kFilling;
    changed_.notify_all();
  }
}

void Barrier::break_() {
  state_ = State::kBroken;
  changed_.notify_all();
}

void Barrier::reset() {
  std::lock_guard lock(mutex_);
  if (count_ > 0) {
    if (state_ == State::kFilling || state_ == State::kBroken) state_ = State::kResetting;
  } else {
    state_ = State::kFilling;
  }
  changed_.notify_all();
}

void Barrier::abort() {
  std::lock_guard lock(mutex_);
  break_();
}

std::size_t Barrier::n_waiting() const {
  std::lock_guard lock(mutex_);
  return state_ == State::kFilling ? count_ : 0;
}

bool Barrier::broken() const {
  std::lock_guard lock(mutex_);
  return state_ == State::kBroken;
}

}  // namespace celeriac::sync
