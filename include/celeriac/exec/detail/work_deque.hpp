// Chase–Lev work-stealing deque (Lê, Pop, Cohen, Zappa Nardelli, PPoPP 2013):
// the owner pushes and pops at the bottom (LIFO), thieves steal from the top
// (FIFO). Grows without bound; old arrays are kept until destruction because a
// slow thief may still read them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "celeriac/sync/detail/futex.hpp"

namespace celeriac::exec::detail {

template <class T>
class WorkDeque {
  static_assert(std::is_pointer_v<T>, "WorkDeque holds pointers");

  struct Array {
    explicit Array(std::int64_t n) : mask(n - 1), slots(new std::atomic<T>[n]) {}
    std::int64_t mask;
    std::unique_ptr<std::atomic<T>[]> slots;
    std::int64_t size() const noexcept { return mask + 1; }
    T get(std::int64_t i) const noexcept { return slots[i & mask].load(std::memory_order_relaxed); }
    void put(std::int64_t i, T x) noexcept { slots[i & mask].store(x, std::memory_order_relaxed); }
  };

 public:
  explicit WorkDeque(std::int64_t capacity = 256) {
    arrays_.push_back(std::make_unique<Array>(capacity));
    array_.store(arrays_.back().get(), std::memory_order_relaxed);
  }
  WorkDeque(const WorkDeque&) = delete;
  WorkDeque& operator=(const WorkDeque&) = delete;

  /// Owner only.
  void push(T x) {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed);
    const std::int64_t t = top_.load(std::memory_order_acquire);
    Array* a = array_.load(std::memory_order_relaxed);
    if (b - t > a->mask) a = grow(a, t, b);
    a->put(b, x);
    bottom_.store(b + 1, std::memory_order_release);
  }

  /// Owner only: the most recently pushed element, or null.
  T pop() noexcept {
    const std::int64_t b = bottom_.load(std::memory_order_relaxed) - 1;
    Array* a = array_.load(std::memory_order_relaxed);
    bottom_.store(b, std::memory_order_relaxed);
    sync::detail::seq_cst_fence();
    std::int64_t t = top_.load(std::memory_order_relaxed);
    if (t > b) {
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    T x = a->get(b);
    if (t == b) {
      // Last element: race the thieves for it.
      if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
        x = nullptr;
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return x;
  }

  /// Any thread: the oldest element, or null (empty or lost a race).
  T steal() noexcept {
    std::int64_t t = top_.load(std::memory_order_acquire);
    sync::detail::seq_cst_fence();
    const std::int64_t b = bottom_.load(std::memory_order_acquire);
    if (t >= b) return nullptr;
    Array* a = array_.load(std::memory_order_acquire);
    T x = a->get(t);
    if (!top_.compare_exchange_strong(t, t + 1, std::memory_order_seq_cst,
                                      std::memory_order_relaxed))
      return nullptr;
    return x;
  }

  /// Whether it looks non-empty (exact only when nobody races).
  bool maybe_nonempty() const noexcept {
    return bottom_.load(std::memory_order_seq_cst) > top_.load(std::memory_order_seq_cst);
  }

 private:
  Array* grow(Array* old, std::int64_t t, std::int64_t b) {
    arrays_.push_back(std::make_unique<Array>(old->size() * 2));
    Array* a = arrays_.back().get();
    for (std::int64_t i = t; i < b; ++i) a->put(i, old->get(i));
    array_.store(a, std::memory_order_release);
    return a;
  }

  alignas(64) std::atomic<std::int64_t> top_{0};
  alignas(64) std::atomic<std::int64_t> bottom_{0};
  std::atomic<Array*> array_{nullptr};
  std::vector<std::unique_ptr<Array>> arrays_;  // owner only
};

}  // namespace celeriac::exec::detail
