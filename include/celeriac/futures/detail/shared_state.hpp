// The state a Future and its producer share: status word, result, error and
// done-callbacks, reference counted without a separate control block so that
// an executor can put the task, its callable and this state in one allocation
// (derive from SharedState<T> and override destroy()).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "celeriac/error.hpp"
#include "celeriac/sync/detail/futex.hpp"

namespace celeriac::futures::detail {

/// Life of a future: pending -> [running ->] completing -> finished, or
/// pending -> cancelled. Only pending futures can be cancelled.
enum Status : std::uint32_t {
  kPending = 0,
  kRunning = 1,
  kCompleting = 2,  // a producer has claimed the right to set the result
  kFinished = 3,
  kCancelled = 4,
};
inline constexpr std::uint32_t kStatusMask = 7;
inline constexpr std::uint32_t kWaitersBit = 8;  // someone sleeps on the word

/// Lets a thread that blocks on a future do useful work meanwhile. A thread
/// pool installs one on each worker so that a task waiting for another task of
/// the same pool runs queued tasks instead of deadlocking the pool.
class WaitHelper {
 public:
  /// Runs at most one pending task; returns whether it ran one.
  virtual bool help_once() noexcept = 0;

 protected:
  ~WaitHelper() = default;
};

/// The helper of the current thread, or null.
inline thread_local WaitHelper* current_wait_helper = nullptr;

/// One done-callback, in an intrusive stack.
class CallbackNode {
 public:
  CallbackNode* next = nullptr;
  /// Runs the callback, then frees the node.
  virtual void invoke_and_destroy() noexcept = 0;
  /// Frees the node without running it (its future died unfinished).
  void discard() noexcept { delete this; }

 protected:
  virtual ~CallbackNode() = default;
};

template <class F>
class CallbackImpl final : public CallbackNode {
 public:
  explicit CallbackImpl(F&& fn) : fn_(std::move(fn)) {}
  void invoke_and_destroy() noexcept override {
    try {
      fn_();
    } catch (const std::exception& e) {
      // As concurrent.futures: a failing callback is reported, not propagated.
      std::fprintf(stderr, "celeriac: exception in future done-callback: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "celeriac: unknown exception in future done-callback\n");
    }
    delete this;
  }

 private:
  F fn_;
};

class StateBase {
 public:
  StateBase() = default;
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  /// True when the caller holds the only reference.
  bool unique() const noexcept { return refs_.load(std::memory_order_acquire) == 1; }

  std::uint32_t status() const noexcept {
    return word_.load(std::memory_order_acquire) & kStatusMask;
  }
  bool done() const noexcept {
    auto s = status();
    return s == kFinished || s == kCancelled;
  }
  bool has_error() const noexcept { return error_ != nullptr; }
  const std::exception_ptr& error() const noexcept { return error_; }

  /// pending -> running. False when the future was cancelled (the producer
  /// must then skip the work); InvalidStateError when it is already running
  /// or done.
  bool set_running_or_notify_cancel() {
    std::uint32_t w = word_.load(std::memory_order_acquire);
    while ((w & kStatusMask) == kPending) {
      // Keep the waiters bit: a thread may already sleep on the word.
      if (word_.compare_exchange_weak(w, kRunning | (w & kWaitersBit), std::memory_order_acq_rel))
        return true;
    }
    if (settled_status(w) == kCancelled) return false;
    throw InvalidStateError("future is already running or done");
  }

  /// pending -> cancelled; false in any other status (true if it already was
  /// cancelled).
  bool cancel() noexcept {
    std::uint32_t w = word_.load(std::memory_order_acquire);
    while ((w & kStatusMask) == kPending) {
      if (word_.compare_exchange_weak(w, kCompleting | (w & kWaitersBit),
                                      std::memory_order_acq_rel)) {
        complete(kCancelled);
        return true;
      }
    }
    return settled_status(w) == kCancelled;
  }

  /// Claims the right to set the result (pending|running -> completing).
  bool try_claim() noexcept {
    std::uint32_t w = word_.load(std::memory_order_acquire);
    for (;;) {
      auto s = w & kStatusMask;
      if (s != kPending && s != kRunning) return false;
      if (word_.compare_exchange_weak(w, kCompleting | (w & kWaitersBit),
                                      std::memory_order_acq_rel))
        return true;
    }
  }

  /// After try_claim(): stores the error and publishes the result.
  void finish_with_error(std::exception_ptr e) noexcept {
    error_ = std::move(e);
    finish();
  }

  /// After try_claim() and storing the value: publishes it.
  void finish() noexcept { complete(kFinished); }

  /// Blocks until done or `deadline`; returns done(). A thread with a
  /// WaitHelper (a pool worker) runs other work through it at once; any other
  /// thread first spins up to kWaitSpin (most results arrive within
  /// microseconds), then sleeps on the futex.
  template <class Clock, class Duration>
  bool wait_until(const std::chrono::time_point<Clock, Duration>* deadline) const {
    WaitHelper* helper = current_wait_helper;
    std::chrono::microseconds spin = helper ? std::chrono::microseconds(0) : kWaitSpin;
    if (deadline && spin.count() > 0)  // never spin past the caller's deadline
      spin = std::min(spin, std::chrono::duration_cast<std::chrono::microseconds>(std::max(
                                *deadline - Clock::now(), decltype(*deadline - Clock::now()){})));
    if (spin_until_done(spin)) return true;
    for (;;) {
      while (helper && !done() && helper->help_once()) {
      }
      std::uint32_t w = word_.load(std::memory_order_acquire);
      auto s = w & kStatusMask;
      if (s == kFinished || s == kCancelled) return true;
      std::chrono::nanoseconds sleep(-1);
      if (deadline) {
        auto left = *deadline - Clock::now();
        if (left <= decltype(left)::zero()) return false;
        sleep = std::chrono::duration_cast<std::chrono::nanoseconds>(left);
      }
      // A helping thread wakes now and then to look for work that arrived
      // after it fell asleep (the pool might have no other thread to run it).
      if (helper && (sleep.count() < 0 || sleep > std::chrono::milliseconds(1)))
        sleep = std::chrono::milliseconds(1);
      if (!(w & kWaitersBit) &&
          !word_.compare_exchange_weak(w, w | kWaitersBit, std::memory_order_acq_rel))
        continue;
      sync::detail::futex_wait(word_, w | kWaitersBit, sleep);
    }
  }

  /// How long a thread without a WaitHelper spins before it sleeps. As long
  /// as a pool worker spins for work (50 us): were it shorter, on a VM whose
  /// wake-ups take tens of microseconds a caller looping on submit/result
  /// falls into a mode where each side sleeps and waits to be woken by the
  /// other (measured: p50 round trip 6 us with a 256-pause spin, 0.7 us with
  /// this one).
  static constexpr std::chrono::microseconds kWaitSpin{50};

  /// Spins until done or `budget` passed (a few pauses at least).
  bool spin_until_done(std::chrono::microseconds budget) const noexcept {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      sync::detail::cpu_relax();
    }
    if (budget.count() <= 0) return false;
    const auto until = std::chrono::steady_clock::now() + budget;
    do {
      for (int i = 0; i < 64; ++i) {
        if (done()) return true;
        sync::detail::cpu_relax();
      }
    } while (std::chrono::steady_clock::now() < until);
    return done();
  }

  /// Runs `fn()` once the future is done: now, on this thread, if it already
  /// is; otherwise on the thread that completes it. Callbacks run in the
  /// order they were added.
  template <class F>
  void on_done(F&& fn) {
    using Node = CallbackImpl<std::decay_t<F>>;
    CallbackNode* node = new Node(std::forward<F>(fn));
    CallbackNode* head = callbacks_.load(std::memory_order_acquire);
    do {
      if (head == closed()) {
        // Done, or about to be: complete() closes the list just before it
        // publishes the final status, so the wait is a few instructions.
        while (!done()) sync::detail::cpu_relax();
        node->invoke_and_destroy();
        return;
      }
      node->next = head;
    } while (!callbacks_.compare_exchange_weak(head, node, std::memory_order_acq_rel,
                                               std::memory_order_acquire));
  }

 protected:
  virtual ~StateBase() {
    // Callbacks of a future that never completed are dropped with it.
    CallbackNode* head = callbacks_.load(std::memory_order_acquire);
    if (head == closed()) return;
    while (head) {
      CallbackNode* next = head->next;
      head->discard();
      head = next;
    }
  }
  /// Frees this state; executors that co-allocate it override this.
  virtual void destroy() noexcept { delete this; }

 private:
  static CallbackNode* closed() noexcept {
    return reinterpret_cast<CallbackNode*>(std::uintptr_t{1});
  }

  /// Waits out a transient kCompleting and returns the status it settles in.
  std::uint32_t settled_status(std::uint32_t w) const noexcept {
    while ((w & kStatusMask) == kCompleting) {
      sync::detail::cpu_relax();
      w = word_.load(std::memory_order_acquire);
    }
    return w & kStatusMask;
  }

  /// Publishes `final_status` (kFinished or kCancelled) after the caller
  /// claimed the state (kCompleting), wakes sleepers and runs the callbacks,
  /// oldest first. The callback list is closed before the status is
  /// published, so whoever sees done() and adds a callback runs it at once
  /// on its own thread (Python's contract) instead of racing this one.
  void complete(std::uint32_t final_status) noexcept {
    CallbackNode* head = callbacks_.exchange(closed(), std::memory_order_acq_rel);
    const std::uint32_t old_word = word_.exchange(final_status, std::memory_order_acq_rel);
    if (old_word & kWaitersBit) sync::detail::futex_wake_all(word_);
    CallbackNode* ordered = nullptr;
    while (head) {
      CallbackNode* next = head->next;
      head->next = ordered;
      ordered = head;
      head = next;
    }
    while (ordered) {
      CallbackNode* next = ordered->next;
      ordered->invoke_and_destroy();
      ordered = next;
    }
  }

  std::atomic<std::uint32_t> refs_{1};
  mutable std::atomic<std::uint32_t> word_{kPending};
  std::atomic<CallbackNode*> callbacks_{nullptr};
  std::exception_ptr error_;
};

/// The stored value of a Future<void>.
struct Unit {};

template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, Unit, T>;

template <class T>
class SharedState : public StateBase {
 public:
  /// Sets the value unless the future is already done or being completed.
  template <class... Args>
  bool try_set_value(Args&&... args) noexcept {
    if (!try_claim()) return false;
    try {
      value_.emplace(std::forward<Args>(args)...);
    } catch (...) {
      finish_with_error(std::current_exception());
      return true;
    }
    finish();
    return true;
  }

  bool try_set_exception(std::exception_ptr e) noexcept {
    if (!try_claim()) return false;
    finish_with_error(std::move(e));
    return true;
  }

  /// The value; only valid when finished without error.
  Stored<T>& value() noexcept { return *value_; }

 private:
  std::optional<Stored<T>> value_;
};

/// Intrusive owning pointer to a shared state.
template <class T>
class StatePtr {
 public:
  StatePtr() = default;
  /// Adopts a state whose reference the caller owns.
  explicit StatePtr(SharedState<T>* s) noexcept : s_(s) {}
  StatePtr(const StatePtr& o) noexcept : s_(o.s_) {
    if (s_) s_->add_ref();
  }
  StatePtr(StatePtr&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StatePtr& operator=(StatePtr o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~StatePtr() {
    if (s_) s_->release();
  }
  SharedState<T>* get() const noexcept { return s_; }
  SharedState<T>* operator->() const noexcept { return s_; }
  SharedState<T>& operator*() const noexcept { return *s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  friend bool operator==(const StatePtr& a, const StatePtr& b) noexcept { return a.s_ == b.s_; }

 private:
  SharedState<T>* s_ = nullptr;
};

template <class T>
StatePtr<T> make_state() {
  return StatePtr<T>(new SharedState<T>());
}

}  // namespace celeriac::futures::detail
