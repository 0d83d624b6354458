// Queue<T>: a multi-producer, multi-consumer FIFO queue (Python's queue.Queue).
#pragma once

#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "celeriac/error.hpp"
#include "celeriac/sync/detail/deadline.hpp"
#include "celeriac/sync/errors.hpp"

namespace celeriac::sync {

/// A thread-safe FIFO queue for any number of producers and consumers, bounded
/// (maxsize > 0: put blocks while it holds maxsize items) or unbounded
/// (maxsize 0). T only needs to be move-constructible.
///
/// Each operation comes in the forms of Python's queue.Queue, plus ones that
/// report failure by value instead of by exception:
///   put(item) / get()                       block until done;
///   put(item, timeout) / get(timeout)       throw Full / Empty on timeout;
///   put_nowait(item) / get_nowait()         throw Full / Empty at once;
///   try_put*(item) -> bool / try_get*() -> std::optional<T>
///                                           false / nullopt instead of Full / Empty.
/// A failed put leaves its argument untouched (it is moved from only on success).
///
/// Closing (Python 3.13's shutdown()): close() makes every put, blocked or
/// future, throw QueueClosed. Consumers keep getting the items already queued;
/// once the queue is empty, every get (blocked or future) throws QueueClosed,
/// so `for (;;) use(q.get());` ends with QueueClosed after the last item.
/// close(true) also discards the queued items (counting them as done for
/// join()), so consumers stop at once. Every form, try_* included, reports a
/// closed queue with QueueClosed: "closed" is never mistaken for "empty".
///
/// Work tracking: every successful put counts an unfinished task; a consumer
/// calls task_done() after handling an item it got; join() waits until the
/// count is zero.
template <class T>
class Queue {
 public:
  /// A queue holding at most `maxsize` items; 0 means no limit.
  explicit Queue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // ---- put -----------------------------------------------------------------

  /// Appends `item`, blocking while the queue is full. QueueClosed if closed.
  template <class U = T>
  requires std::constructible_from<T, U&&>
  void put(U&& item) { put_until_(std::forward<U>(item), detail::kNoDeadline); }

  /// Appends `item`, waiting at most `timeout` for room; Full on timeout,
  /// QueueClosed if closed.
  template <class Rep, class Period, class U = T>
  requires std::constructible_from<T, U&&>
  void put(U&& item, std::chrono::duration<Rep, Period> timeout) {
    if (!put_until_(std::forward<U>(item), detail::deadline_after(timeout)))
      throw Full("Queue::put: no room in the full queue (maxsize " + std::to_string(maxsize_) +
                 ") before the timeout");
  }

  /// Appends `item` if there is room now; Full otherwise, QueueClosed if closed.
  template <class U = T>
  requires std::constructible_from<T, U&&>
  void put_nowait(U&& item) {
    if (!put_until_(std::forward<U>(item), detail::kNoWait))
      throw Full("Queue::put_nowait: the queue is full (maxsize " + std::to_string(maxsize_) + ")");
  }

  /// Appends `item` if there is room now and returns true; false if full
  /// (`item` is then untouched). QueueClosed if closed.
  template <class U = T>
  requires std::constructible_from<T, U&&>
  bool try_put(U&& item) { return put_until_(std::forward<U>(item), detail::kNoWait); }

  /// As try_put(), waiting at most `timeout` for room.
  template <class Rep, class Period, class U = T>
  requires std::constructible_from<T, U&&>
  bool try_put_for(U&& item, std::chrono::duration<Rep, Period> timeout) {
    return put_until_(std::forward<U>(item), detail::deadline_after(timeout));
  }

  /// As try_put(), waiting for room until `deadline` (any clock).
  template <class Clock, class Duration, class U = T>
  requires std::constructible_from<T, U&&>
  bool try_put_until(U&& item, std::chrono::time_point<Clock, Duration> deadline) {
    return put_until_(std::forward<U>(item), detail::to_deadline(deadline));
  }

  // ---- get -----------------------------------------------------------------

  /// Removes and returns the oldest item, blocking while the queue is empty.
  /// QueueClosed once the queue is closed and empty.
  T get() { return *get_until_(detail::kNoDeadline); }

  /// As get(), waiting at most `timeout`; Empty on timeout.
  template <class Rep, class Period>
  T get(std::chrono::duration<Rep, Period> timeout) {
    auto item = get_until_(detail::deadline_after(timeout));
    if (!item) throw Empty("Queue::get: no item arrived in the empty queue before the timeout");
    return std::move(*item);
  }

  /// The oldest item if there is one now; Empty otherwise, QueueClosed if
  /// closed and empty.
  T get_nowait() {
    auto item = get_until_(detail::kNoWait);
    if (!item) throw Empty("Queue::get_nowait: the queue is empty");
    return std::move(*item);
  }

  /// The oldest item if there is one now, else nullopt. QueueClosed if closed
  /// and empty.
  std::optional<T> try_get() { return get_until_(detail::kNoWait); }

  /// As try_get(), waiting at most `timeout` for an item.
  template <class Rep, class Period>
  std::optional<T> try_get_for(std::chrono::duration<Rep, Period> timeout) {
    return get_until_(detail::deadline_after(timeout));
  }

  /// As try_get(), waiting for an item until `deadline` (any clock).
  template <class Clock, class Duration>
  std::optional<T> try_get_until(std::chrono::time_point<Clock, Duration> deadline) {
    return get_until_(detail::to_deadline(deadline));
  }

  // ---- work tracking -------------------------------------------------------

  /// Marks one item got earlier as handled. InvalidStateError if called more
  /// times than items were put.
  void task_done() {
    std::lock_guard lock(mutex_);
    if (unfinished_ == 0)
      throw InvalidStateError("Queue::task_done() called more times than items were put");
    if (--unfinished_ == 0) all_done_.notify_all();
  }

  /// Blocks until every item put has been marked with task_done() (or was
  /// discarded by close(true)). Closing does not end a join() by itself.
  void join() { join_until_(detail::kNoDeadline); }

  /// As join(), waiting at most `timeout`; false on timeout.
  template <class Rep, class Period>
  bool join_for(std::chrono::duration<Rep, Period> timeout) {
    return join_until_(detail::deadline_after(timeout));
  }

  /// As join(), waiting until `deadline` (any clock); false on timeout.
  template <class Clock, class Duration>
  bool join_until(std::chrono::time_point<Clock, Duration> deadline) {
    return join_until_(detail::to_deadline(deadline));
  }

  /// Number of items not yet marked with task_done().
  std::size_t unfinished_tasks() const {
    std::lock_guard lock(mutex_);
    return unfinished_;
  }

  // ---- closing -------------------------------------------------------------

  /// Closes the queue and wakes every blocked producer and consumer: puts
  /// throw QueueClosed from now on; gets do once the queue is empty. With
  /// `immediate`, the queued items are discarded and counted as done (so
  /// join() returns once the items already taken are done). Idempotent.
  void close(bool immediate = false) {
    std::lock_guard lock(mutex_);
    closed_ = true;
    if (immediate) discard_items_();
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  /// Whether close() was called.
  bool closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }

  // ---- size ----------------------------------------------------------------

  /// Number of items queued now (a snapshot: other threads may change it).
  std::size_t qsize() const {
    std::lock_guard lock(mutex_);
    return items_.size();
  }

  /// Whether the queue holds no item now (a snapshot).
  bool empty() const { return qsize() == 0; }

  /// Whether a bounded queue holds maxsize items now (a snapshot); never
  /// true for an unbounded queue.
  bool full() const {
    std::lock_guard lock(mutex_);
    return !has_room_();
  }

  /// The bound given at construction (0: unbounded).
  std::size_t maxsize() const noexcept { return maxsize_; }

 private:
  bool has_room_() const noexcept { return maxsize_ == 0 || items_.size() < maxsize_; }

  template <class U>
  bool put_until_(U&& item, detail::Deadline deadline) {
    std::unique_lock lock(mutex_);
    if (!detail::wait_until(not_full_, lock, deadline, [&] { return closed_ || has_room_(); }))
      return false;
    if (closed_) throw QueueClosed("Queue::put: the queue is closed");
    items_.emplace_back(std::forward<U>(item));
    ++unfinished_;
    not_empty_.notify_one();
    return true;
  }

  std::optional<T> get_until_(detail::Deadline deadline) {
    std::unique_lock lock(mutex_);
    if (!detail::wait_until(not_empty_, lock, deadline, [&] { return closed_ || !items_.empty(); }))
      return std::nullopt;
    if (items_.empty()) throw QueueClosed("Queue::get: the queue is closed and empty");
    std::optional<T> item(std::move(items_.front()));
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  bool join_until_(detail::Deadline deadline) {
    std::unique_lock lock(mutex_);
    return detail::wait_until(all_done_, lock, deadline, [&] { return unfinished_ == 0; });
  }

  void discard_items_() {
    const std::size_t discarded = items_.size();
    items_.clear();
    unfinished_ -= discarded < unfinished_ ? discarded : unfinished_;
    if (unfinished_ == 0) all_done_.notify_all();
  }

  const std::size_t maxsize_;
  mutable std::mutex mutex_;
  std::condition_variable not_empty_;  // an item arrived, or the queue closed
  std::condition_variable not_full_;   // room appeared, or the queue closed
  std::condition_variable all_done_;   // unfinished_ dropped to zero
  std::deque<T> items_;
  std::size_t unfinished_ = 0;
  bool closed_ = false;
};

}  // namespace celeriac::sync
