// wait() and as_completed(): block on a set of futures, as Python's
// concurrent.futures.wait and as_completed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/futures/future.hpp"

namespace celeriac {

/// When wait() returns.
enum class ReturnWhen {
  FIRST_COMPLETED,  ///< as soon as any future finishes or is cancelled
  FIRST_EXCEPTION,  ///< when any future fails with an exception, or all are done
  ALL_COMPLETED,    ///< when all are done
};
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

/// The two sets wait() returns, each in input order.
template <class T>
struct DoneAndNotDone {
  /// The futures that were done when wait() returned.
  std::vector<Future<T>> done;
  /// The others.
  std::vector<Future<T>> not_done;
};

namespace futures::detail {

/// Collects futures as they finish; shared by wait() and as_completed().
template <class T>
class Completions {
 public:
  void push(Future<T> f) {
    {
      std::lock_guard lock(mutex_);
      if (f.state()->has_error()) ++failed_;
      finished_.push_back(std::move(f));
    }
    cv_.notify_all();
  }
  /// Waits for `pred(finished count, failed count)` or the deadline.
  template <class Pred>
  bool wait_until(std::optional<std::chrono::steady_clock::time_point> deadline, Pred pred) {
    std::unique_lock lock(mutex_);
    auto ready = [&] { return pred(finished_.size() + taken_, failed_); };
    if (!deadline) {
      cv_.wait(lock, ready);
      return true;
    }
    return cv_.wait_until(lock, *deadline, ready);
  }
  /// Takes the oldest finished future, waiting up to the deadline.
  std::optional<Future<T>> pop(std::optional<std::chrono::steady_clock::time_point> deadline) {
    std::unique_lock lock(mutex_);
    auto ready = [&] { return !finished_.empty(); };
    if (deadline) {
      if (!cv_.wait_until(lock, *deadline, ready)) return std::nullopt;
    } else {
      cv_.wait(lock, ready);
    }
    Future<T> f = std::move(finished_.front());
    finished_.pop_front();
    ++taken_;
    return f;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Future<T>> finished_;
  std::size_t taken_ = 0;
  std::size_t failed_ = 0;
};

template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) {
  return std::chrono::steady_clock::now() +
         std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
}

}  // namespace futures::detail

namespace futures::detail {

template <class T>
DoneAndNotDone<T> wait_impl(const std::vector<Future<T>>& futures, ReturnWhen return_when,
                            std::optional<std::chrono::steady_clock::time_point> deadline) {
  auto sink = std::make_shared<Completions<T>>();
  for (const auto& f : futures)
    f.add_done_callback([sink](Future<T> done) { sink->push(std::move(done)); });
  const std::size_t total = futures.size();
  sink->wait_until(deadline, [&](std::size_t finished, std::size_t failed) {
    switch (return_when) {
      case ReturnWhen::FIRST_COMPLETED:
        return finished >= 1 || total == 0;
      case ReturnWhen::FIRST_EXCEPTION:
        return failed >= 1 || finished == total;
      case ReturnWhen::ALL_COMPLETED:
        return finished == total;
    }
    return true;
  });
  DoneAndNotDone<T> out;
  for (const auto& f : futures) (f.done() ? out.done : out.not_done).push_back(f);
  return out;
}

}  // namespace futures::detail

/// Waits until `return_when` holds, then splits the futures into done and
/// not done.
template <class T>
DoneAndNotDone<T> wait(const std::vector<Future<T>>& futures,
                       ReturnWhen return_when = ALL_COMPLETED) {
  return futures::detail::wait_impl(futures, return_when, std::nullopt);
}

/// As above, giving up after `timeout`. A timeout is not an error here: the
/// caller sees what is still not done.
template <class T, class Rep, class Period>
DoneAndNotDone<T> wait(const std::vector<Future<T>>& futures, ReturnWhen return_when,
                       std::chrono::duration<Rep, Period> timeout) {
  return futures::detail::wait_impl(futures, return_when, futures::detail::deadline_after(timeout));
}

/// An input range over futures in the order they finish: futures already
/// done come first. Iterating blocks for the next one; past the deadline the
/// increment throws TimeoutError naming how many are unfinished.
template <class T>
class AsCompleted {
 public:
  /// Input iterator over the futures, yielding each as it completes.
  class iterator {
   public:
    /// The future yielded.
    using value_type = Future<T>;
    /// Distance type (required by std::input_iterator).
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    /// The future that completed last (blocks until one does).
    const Future<T>& operator*() const { return current_; }
    /// Pointer access to the current future.
    const Future<T>* operator->() const { return &current_; }
    /// Moves to the next completed future (blocks; TimeoutError past the deadline).
    iterator& operator++() {
      advance();
      return *this;
    }
    /// Post-increment (as ++it).
    void operator++(int) { advance(); }
    /// True when every future has been yielded.
    friend bool operator==(const iterator& it, std::default_sentinel_t) {
      return it.owner_ == nullptr;
    }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* owner) : owner_(owner) { advance(); }
    void advance() {
      if (owner_->yielded_ == owner_->total_) {
        owner_ = nullptr;
        return;
      }
      auto next = owner_->sink_->pop(owner_->deadline_);
      if (!next) {
        throw TimeoutError(std::to_string(owner_->total_ - owner_->yielded_) + " (of " +
                           std::to_string(owner_->total_) + ") futures unfinished");
      }
      ++owner_->yielded_;
      current_ = std::move(*next);
    }
    AsCompleted* owner_ = nullptr;
    Future<T> current_;
  };

  /// Yields `futures` as they complete, throwing TimeoutError after `deadline` (nullopt: none).
  AsCompleted(const std::vector<Future<T>>& futures,
              std::optional<std::chrono::steady_clock::time_point> deadline)
      : sink_(std::make_shared<futures::detail::Completions<T>>()),
        total_(futures.size()),
        deadline_(deadline) {
    for (const auto& f : futures)
      f.add_done_callback([sink = sink_](Future<T> done) { sink->push(std::move(done)); });
  }
  /// Starts iterating; only one pass is possible.
  iterator begin() { return iterator(this); }
  /// The end sentinel.
  std::default_sentinel_t end() const { return {}; }

 private:
  std::shared_ptr<futures::detail::Completions<T>> sink_;
  std::size_t total_;
  std::size_t yielded_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

/// Futures in the order they finish (Python's as_completed).
template <class T>
AsCompleted<T> as_completed(const std::vector<Future<T>>& futures) {
  return AsCompleted<T>(futures, std::nullopt);
}

/// As above; iterating past `timeout` (counted from this call) throws
/// TimeoutError.
template <class T, class Rep, class Period>
AsCompleted<T> as_completed(const std::vector<Future<T>>& futures,
                            std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<T>(futures, futures::detail::deadline_after(timeout));
}

}  // namespace celeriac
