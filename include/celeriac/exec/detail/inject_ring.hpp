// The pool's injection queue for submissions from outside threads: Dmitry
// Vyukov's bounded MPMC ring, whose slots hold small callables in place (no
// allocation per task). A consumer runs the callable in its slot, then frees
// the slot.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "celeriac/exec/detail/task.hpp"

namespace celeriac::exec::detail {

inline constexpr std::size_t kSlotStorage = 48;

/// Whether F can live in a ring slot.
template <class F>
inline constexpr bool fits_in_slot =
    sizeof(F) <= kSlotStorage &&
    alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;

struct alignas(64) RingSlot {
  using Fn = void (*)(void* storage, TaskOp, const std::exception_ptr*) noexcept;
  std::atomic<std::size_t> seq;
  Fn fn;
  alignas(std::max_align_t) unsigned char storage[kSlotStorage];
};
static_assert(sizeof(RingSlot) == 64);

/// Slot entry for a fire-and-forget callable.
template <class F>
void slot_post_fn(void* storage, TaskOp op, const std::exception_ptr*) noexcept {
  F* f = std::launder(static_cast<F*>(storage));
  if (op == TaskOp::kRun) {
    try {
      (*f)();
    } catch (...) {
      report_escaped_exception("a ThreadPool");
    }
  }
  f->~F();
}

/// Slot entry pointing to a heap task.
inline void slot_task_fn(void* storage, TaskOp op, const std::exception_ptr* e) noexcept {
  Task* t = *std::launder(static_cast<Task**>(storage));
  t->fn(t, op, e);
}

class InjectRing {
 public:
  explicit InjectRing(std::size_t capacity) : mask_(capacity - 1), slots_(new RingSlot[capacity]) {
    for (std::size_t i = 0; i < capacity; ++i) slots_[i].seq.store(i, std::memory_order_relaxed);
  }

  /// Constructs F(args...) in a free slot; false when the ring is full.
  template <class F, class... Args>
  bool try_emplace(Args&&... args) noexcept {
    static_assert(fits_in_slot<F>);
    std::size_t pos;
    RingSlot* s = claim(enq_, 0, pos);
    if (!s) return false;
    ::new (static_cast<void*>(s->storage)) F(std::forward<Args>(args)...);
    s->fn = &slot_post_fn<F>;
    s->seq.store(pos + 1, std::memory_order_release);
    return true;
  }

  bool try_push_task(Task* t) noexcept {
    std::size_t pos;
    RingSlot* s = claim(enq_, 0, pos);
    if (!s) return false;
    ::new (static_cast<void*>(s->storage)) Task*(t);
    s->fn = &slot_task_fn;
    s->seq.store(pos + 1, std::memory_order_release);
    return true;
  }

  /// Takes the oldest entry, calls `claimed()`, then applies `op` to the
  /// entry in place (running it for kRun); false when empty.
  template <class Claimed>
  bool try_consume(Claimed&& claimed, TaskOp op, const std::exception_ptr* e) noexcept {
    std::size_t pos;
    RingSlot* s = claim(deq_, 1, pos);
    if (!s) return false;
    claimed();
    s->fn(s->storage, op, e);
    s->seq.store(pos + mask_ + 1, std::memory_order_release);
    return true;
  }

  bool maybe_nonempty() const noexcept {
    return enq_.load(std::memory_order_seq_cst) != deq_.load(std::memory_order_seq_cst);
  }

 private:
  // Claims the slot at `cursor` (Vyukov's bounded MPMC queue): a slot is
  // free for the enqueuer at pos when its seq == pos, and full for the
  // dequeuer when seq == pos + 1 (`lag`). Null when the ring is full (or
  // empty); otherwise `pos` is the claimed position.
  RingSlot* claim(std::atomic<std::size_t>& cursor, std::size_t lag, std::size_t& pos) noexcept {
    pos = cursor.load(std::memory_order_relaxed);
    for (;;) {
      RingSlot* s = &slots_[pos & mask_];
      const std::size_t seq = s->seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::intptr_t>(seq) - static_cast<std::intptr_t>(pos + lag);
      if (diff == 0) {
        if (cursor.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) return s;
      } else if (diff < 0) {
        return nullptr;
      } else {
        pos = cursor.load(std::memory_order_relaxed);
      }
    }
  }

  const std::size_t mask_;
  std::unique_ptr<RingSlot[]> slots_;
  alignas(64) std::atomic<std::size_t> enq_{0};
  alignas(64) std::atomic<std::size_t> deq_{0};
};

}  // namespace celeriac::exec::detail
