// wait(tasks, FIRST_COMPLETED | FIRST_EXCEPTION | ALL_COMPLETED[, timeout])
// and as_completed, as asyncio.wait / asyncio.as_completed.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "celeriac/aio/detail/wait_set.hpp"
#include "celeriac/aio/detail/waiter.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/futures/wait.hpp"

namespace celeriac::aio {

using celeriac::ALL_COMPLETED;
using celeriac::FIRST_COMPLETED;
using celeriac::FIRST_EXCEPTION;
using celeriac::ReturnWhen;

/// The two sets asyncio.wait returns, each in the order the tasks were given.
template <class T>
struct DoneAndPending {
  /// The tasks that were done.
  std::vector<TaskHandle<T>> done;
  /// The others.
  std::vector<TaskHandle<T>> pending;
};

/// Waits until the tasks reach `when` or `timeout` elapses (no error on
/// timeout: look at `pending`). Cancelling the caller stops the wait only;
/// the tasks keep running (asyncio.wait).
template <class T>
Task<DoneAndPending<T>> wait(std::vector<TaskHandle<T>> tasks, ReturnWhen when = ALL_COMPLETED,
                             std::optional<Duration> timeout = std::nullopt) {
  std::vector<detail::TaskCore*> cores;
  for (auto& h : tasks) {
    if (!h.valid()) throw InvalidStateError("aio::wait: empty TaskHandle");
    cores.push_back(h.core());
  }
  auto mode = when == ReturnWhen::FIRST_COMPLETED   ? detail::WaitSet::kFirstCompleted
              : when == ReturnWhen::FIRST_EXCEPTION ? detail::WaitSet::kFirstException
                                                    : detail::WaitSet::kAllCompleted;
  if (!cores.empty()) co_await detail::WaitSet(cores, mode, false, timeout);
  DoneAndPending<T> out;
  for (auto& h : tasks) (h.done() ? out.done : out.pending).push_back(std::move(h));
  co_return out;
}

/// Yields tasks in the order they finish (asyncio.as_completed):
///   AsCompleted<int> ac(tasks);
///   while (ac.remaining()) { TaskHandle<int> h = co_await ac.next(); ... }
/// With a timeout, next() throws TimeoutError once the deadline (counted
/// from construction) has passed. Loop thread only.
template <class T>
class AsCompleted {
 public:
  /// Yields `tasks` as they finish; TimeoutError after `timeout` (nullopt: none).
  explicit AsCompleted(std::vector<TaskHandle<T>> tasks,
                       std::optional<Duration> timeout = std::nullopt)
      : nodes_(tasks.size()) {
    if (timeout) deadline_ = EventLoop::current().time() + *timeout;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      nodes_[i].owner = this;
      nodes_[i].handle = std::move(tasks[i]);
      nodes_[i].on_done = &on_task_done;
      nodes_[i].handle.core()->add_listener(&nodes_[i]);  // fires now if done
    }
  }
  AsCompleted(const AsCompleted&) = delete;
  ~AsCompleted() {
    for (auto& n : nodes_) n.unlink();
  }

  /// Tasks not yet returned by next().
  std::size_t remaining() const noexcept { return nodes_.size() - returned_; }

  /// The next task to finish; Error if none remains, TimeoutError past the
  /// deadline.
  Task<TaskHandle<T>> next() {
    if (remaining() == 0) throw Error("aio::AsCompleted::next(): no task remains");
    while (finished_.empty()) {
      if (deadline_) {
        bool timed_out = false;
        auto& loop = EventLoop::current();
        if (loop.time() >= *deadline_) throw TimeoutError("aio::as_completed: timed out");
        auto th = loop.call_at(*deadline_, [this, &timed_out] {
          timed_out = true;
          detail::ListWaiter::wake_all(waiters_);
        });
        struct Cancel {
          TimerHandle& t;
          ~Cancel() { t.cancel(); }
        } guard{th};
        co_await detail::ListWaiter(waiters_);
        if (timed_out && finished_.empty()) throw TimeoutError("aio::as_completed: timed out");
      } else {
        co_await detail::ListWaiter(waiters_);
      }
    }
    std::size_t i = finished_.front();
    finished_.erase(finished_.begin());
    ++returned_;
    co_return nodes_[i].handle;
  }

 private:
  struct Node : detail::DoneListener {
    AsCompleted* owner = nullptr;
    TaskHandle<T> handle;
  };
  static void on_task_done(detail::DoneListener* l, detail::TaskCore*) noexcept {
    auto* n = static_cast<Node*>(l);
    AsCompleted* self = n->owner;
    self->finished_.push_back(static_cast<std::size_t>(n - self->nodes_.data()));
    detail::ListWaiter::wake_one(self->waiters_);
  }
  std::vector<Node> nodes_;
  std::vector<std::size_t> finished_;
  std::size_t returned_ = 0;
  detail::List waiters_;
  std::optional<TimePoint> deadline_;
};

/// asyncio.as_completed(tasks[, timeout]) as an AsCompleted object.
template <class T>
AsCompleted<T> as_completed(std::vector<TaskHandle<T>> tasks,
                            std::optional<Duration> timeout = std::nullopt) {
  return AsCompleted<T>(std::move(tasks), timeout);
}

}  // namespace celeriac::aio
