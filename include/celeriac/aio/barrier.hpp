// aio::Barrier (asyncio.Barrier): `parties` tasks wait until all arrived.
#pragma once

#include <coroutine>
#include <cstddef>
#include <string>

#include "celeriac/aio/detail/waiter.hpp"
#include "celeriac/aio/errors.hpp"

namespace celeriac::aio {

/// Lets `parties` tasks wait for each other (asyncio.Barrier): the last to arrive releases them
/// all. Loop thread only.
class Barrier {
 public:
  /// A barrier for `parties` tasks (std::invalid_argument if 0).
  explicit Barrier(std::size_t parties) : parties_(parties) {
    if (parties == 0) throw Error("aio::Barrier: parties must be > 0");
  }
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  /// Awaitable returning the arrival index (0 .. parties-1);
  /// BrokenBarrierError if the barrier is broken, aborted or reset meanwhile.
  /// A cancelled waiter is removed (the count goes back down).
  class Wait : private Suspension, private detail::ListNode {
   public:
    /// Waits on `b` (what wait() returns: co_await it).
    explicit Wait(Barrier& b) noexcept : barrier_(&b) {}
    /// Takes over `o`'s pending wait.
    Wait(Wait&& o) noexcept : Suspension(), ListNode(), barrier_(o.barrier_) {}
    ~Wait() {
      if (ListNode::linked()) {
        ListNode::unlink();
        --barrier_->count_;
      }
    }
    bool await_ready() {
      Barrier& b = *barrier_;
      if (b.broken_) throw BrokenBarrierError("aio::Barrier is broken");
      if (b.count_ + 1 == b.parties_) {
        index_ = b.count_;
        b.trip();
        return true;
      }
      return false;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      if (!begin(h, &on_cancel)) return false;
      index_ = barrier_->count_++;
      barrier_->waiters_.push_back(this);
      return true;
    }
    std::size_t await_resume() {
      end();
      if (broken_) throw BrokenBarrierError("aio::Barrier was aborted or reset while waiting");
      return index_;
    }

   private:
    friend class Barrier;
    static bool on_cancel(Suspension& s) noexcept {
      auto& self = static_cast<Wait&>(s);
      self.ListNode::unlink();
      --self.barrier_->count_;
      return true;
    }
    Barrier* barrier_;
    std::size_t index_ = 0;
    bool broken_ = false;
  };

  /// `std::size_t i = co_await barrier.wait();`
  Wait wait() noexcept { return Wait(*this); }
  /// Breaks the barrier: waiting and future wait()s throw BrokenBarrierError.
  void abort() noexcept {
    broken_ = true;
    release_all(true);
  }
  /// Returns to the empty state; current waiters get BrokenBarrierError.
  void reset() noexcept {
    release_all(true);
    broken_ = false;
  }
  /// The number of tasks needed to pass the barrier.
  std::size_t parties() const noexcept { return parties_; }
  /// Tasks waiting now.
  std::size_t n_waiting() const noexcept { return count_; }
  /// Whether the barrier is broken (abort(), or a cancelled wait).
  bool broken() const noexcept { return broken_; }

 private:
  void trip() noexcept { release_all(false); }
  void release_all(bool broken) noexcept {
    while (detail::ListNode* n = waiters_.pop_front()) {
      auto* w = static_cast<Wait*>(n);
      w->broken_ = broken;
      w->wake();
    }
    count_ = 0;
  }
  std::size_t parties_;
  std::size_t count_ = 0;
  bool broken_ = false;
  detail::List waiters_;
};

}  // namespace celeriac::aio
