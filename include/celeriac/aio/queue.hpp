// aio::Queue<T>, PriorityQueue<T>, LifoQueue<T> (asyncio's): bounded or
// unbounded, join()/task_done(), shutdown() (Python 3.13). Cancellation-safe:
// a cancelled put() or get() leaves the queue as it was.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "celeriac/aio/detail/waiter.hpp"
#include "celeriac/aio/errors.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

namespace detail {

template <class T>
struct FifoStore {
  std::deque<T> items;
  void push(T v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.front());
    items.pop_front();
    return v;
  }
  std::size_t size() const noexcept { return items.size(); }
  void clear() { items.clear(); }
};

template <class T>
struct LifoStore {
  std::vector<T> items;
  void push(T v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items.size(); }
  void clear() { items.clear(); }
};

/// Smallest first, as Python's heapq (with Compare = std::less<T>).
template <class T, class Compare>
struct PriorityStore {
  std::vector<T> items;
  Compare less{};
  void push(T v) {
    items.push_back(std::move(v));
    std::push_heap(items.begin(), items.end(), greater());
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(), greater());
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return items.size(); }
  void clear() { items.clear(); }

 private:
  auto greater() const {
    return [this](const T& a, const T& b) { return less(b, a); };
  }
};

}  // namespace detail

/// A queue for tasks of one loop, on the store `Store` (FIFO, LIFO or
/// priority). maxsize 0 means unbounded.
template <class T, class Store>
class BasicQueue {
 public:
  /// A queue holding at most `maxsize` items; 0 means no limit.
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  /// Puts an item, waiting while the queue is full. QueueShutDown after
  /// shutdown().
  Task<void> put(T item) {
    while (full()) {
      if (shutdown_) throw QueueShutDown("aio::Queue::put(): queue was shut down");
      co_await detail::ListWaiter(putters_);
    }
    put_nowait(std::move(item));
  }
  /// Puts without waiting: QueueFull when full, QueueShutDown after shutdown().
  void put_nowait(T item) {
    if (shutdown_) throw QueueShutDown("aio::Queue::put_nowait(): queue was shut down");
    if (full())
      throw QueueFull("aio::Queue::put_nowait(): queue is full (maxsize " +
                      std::to_string(maxsize_) + ")");
    store_.push(std::move(item));
    ++unfinished_;
    detail::ListWaiter::wake_one(getters_);
  }
  /// Removes and returns an item, waiting while the queue is empty.
  /// QueueShutDown once the queue is shut down and empty (at once with
  /// shutdown(immediate=true)).
  Task<T> get() {
    while (empty()) {
      if (shutdown_) throw QueueShutDown("aio::Queue::get(): queue was shut down");
      co_await detail::ListWaiter(getters_);
    }
    co_return get_nowait();
  }
  /// Gets without waiting: QueueEmpty when empty (QueueShutDown if it is
  /// also shut down).
  T get_nowait() {
    if (empty()) {
      if (shutdown_) throw QueueShutDown("aio::Queue::get_nowait(): queue was shut down");
      throw QueueEmpty("aio::Queue::get_nowait(): queue is empty");
    }
    T v = store_.pop();
    detail::ListWaiter::wake_one(putters_);
    // A getter woken for an item another task took will see an empty queue
    // and wait again; pass the wake-up on while items remain.
    if (!empty()) detail::ListWaiter::wake_one(getters_);
    return v;
  }

  /// Marks one item fetched earlier as processed; Error when called more
  /// times than items were put (asyncio's ValueError).
  void task_done() {
    if (unfinished_ == 0) throw Error("aio::Queue::task_done() called too many times");
    if (--unfinished_ == 0) detail::ListWaiter::wake_all(joiners_);
  }
  /// Waits until every item put has been marked task_done().
  Task<void> join() {
    while (unfinished_ > 0) co_await detail::ListWaiter(joiners_);
  }

  /// Shuts the queue down: put() throws QueueShutDown; get() drains what is
  /// left, then throws QueueShutDown. With `immediate`, the remaining items
  /// are dropped (and counted as done for join()). Wakes all waiters.
  void shutdown(bool immediate = false) {
    shutdown_ = true;
    if (immediate) {
      std::size_t n = store_.size();
      store_.clear();
      unfinished_ = n > unfinished_ ? 0 : unfinished_ - n;
      if (unfinished_ == 0) detail::ListWaiter::wake_all(joiners_);
    }
    detail::ListWaiter::wake_all(getters_);
    detail::ListWaiter::wake_all(putters_);
  }

  /// Items queued now (asyncio's qsize()).
  std::size_t qsize() const noexcept { return store_.size(); }
  /// Items queued now.
  std::size_t size() const noexcept { return store_.size(); }
  /// Whether no item is queued.
  bool empty() const noexcept { return store_.size() == 0; }
  /// Whether put() would wait.
  bool full() const noexcept { return maxsize_ > 0 && store_.size() >= maxsize_; }
  /// The most items it holds (0: no limit).
  std::size_t maxsize() const noexcept { return maxsize_; }
  /// Whether shutdown() was called.
  bool is_shutdown() const noexcept { return shutdown_; }

 private:
  Store store_;
  std::size_t maxsize_;
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
  detail::List getters_;
  detail::List putters_;
  detail::List joiners_;
};

/// FIFO queue (asyncio.Queue).
template <class T>
using Queue = BasicQueue<T, detail::FifoStore<T>>;
/// Last in, first out (asyncio.LifoQueue).
template <class T>
using LifoQueue = BasicQueue<T, detail::LifoStore<T>>;
/// Smallest item first (asyncio.PriorityQueue); Compare orders "less".
template <class T, class Compare = std::less<T>>
using PriorityQueue = BasicQueue<T, detail::PriorityStore<T, Compare>>;

}  // namespace celeriac::aio
