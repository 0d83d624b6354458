// Promise<T>: the producing side of a Future<T>.
#pragma once

#include <exception>
#include <utility>

#include "celeriac/error.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac {

/// Sets the result of the futures it hands out. Move-only. A promise
/// destroyed before it is fulfilled fails its future with BrokenPromise, so
/// no one waits forever for a producer that is gone.
template <class T>
class Promise {
 public:
  Promise() : state_(futures::detail::make_state<T>()) {}
  /// Takes over `other`'s state; `other` is left empty.
  Promise(Promise&&) noexcept = default;
  /// Abandons this promise's state (its future gets BrokenPromise if unset), then takes over
  /// `other`'s.
  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      abandon();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() { abandon(); }

  /// A future sharing this promise's state; may be called any number of times.
  Future<T> get_future() const { return Future<T>(checked_state()); }

  /// Marks the future running so it can no longer be cancelled. Returns false
  /// if it was cancelled (skip the work); InvalidStateError if already
  /// running or done. Executors call this before running a call.
  bool set_running_or_notify_cancel() { return checked_state()->set_running_or_notify_cancel(); }

  /// Finishes the future with a value. InvalidStateError if it is already
  /// done (including cancelled); try_set_value() reports that as false.
  template <class... Args>
  void set_value(Args&&... args) {
    if (!try_set_value(std::forward<Args>(args)...))
      throw InvalidStateError("promise already satisfied or its future cancelled");
  }
  /// As set_value(), but returns false instead of throwing when already done.
  template <class... Args>
  bool try_set_value(Args&&... args) {
    return checked_state()->try_set_value(std::forward<Args>(args)...);
  }

  /// Finishes the future with an exception.
  void set_exception(std::exception_ptr e) {
    if (!try_set_exception(std::move(e)))
      throw InvalidStateError("promise already satisfied or its future cancelled");
  }
  /// As set_exception(), but returns false instead of throwing when already done.
  bool try_set_exception(std::exception_ptr e) {
    return checked_state()->try_set_exception(std::move(e));
  }

  /// Whether the future is finished or cancelled.
  bool done() const { return checked_state()->done(); }

 private:
  const futures::detail::StatePtr<T>& checked_state() const {
    if (!state_) throw InvalidStateError("promise has no state (moved-from)");
    return state_;
  }
  void abandon() noexcept {
    if (state_ && !state_->done())
      state_->try_set_exception(std::make_exception_ptr(BrokenPromise()));
  }

  futures::detail::StatePtr<T> state_;
};

}  // namespace celeriac
