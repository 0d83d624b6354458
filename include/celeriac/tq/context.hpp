// The request context a task may take as its first parameter (Celery's
// `self.request`), and the Retry signal raised by Context::retry().
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "celeriac/error.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq {

class App;
struct TaskDef;

/// Thrown by Context::retry(); the worker republishes the task (same id,
/// retries + 1, eta = now + countdown) and stores RETRY. Not an error.
class Retry : public Error {
 public:
  /// A retry in `countdown` seconds (nullopt: the task's default), with `max_retries` overriding
  /// the task's and `exc` the cause.
  Retry(std::optional<double> countdown, std::optional<int> max_retries, std::exception_ptr exc,
        std::string what)
      : Error(std::move(what)),
        countdown_(countdown),
        max_retries_(max_retries),
        exc_(std::move(exc)) {}
  /// Seconds until the retry runs (nullopt = the task's default_retry_delay).
  std::optional<double> countdown() const noexcept { return countdown_; }
  /// Overrides the task's max_retries for this decision.
  std::optional<int> max_retries() const noexcept { return max_retries_; }
  /// The error that caused the retry (stored as FAILURE if retries are exhausted).
  const std::exception_ptr& exc() const noexcept { return exc_; }

 private:
  std::optional<double> countdown_;
  std::optional<int> max_retries_;
  std::exception_ptr exc_;
};

namespace detail {

/// Why a running task was asked to stop: shared by the task's Context and
/// the worker's time-limit supervisor (the worker sets it, the task reads it).
struct Cancellation {
  /// Not asked to stop.
  static constexpr int kNone = 0;
  /// Past its soft time limit.
  static constexpr int kSoftTimeLimit = 1;
  /// Revoked with terminate.
  static constexpr int kRevoked = 2;
  /// kNone, kSoftTimeLimit or kRevoked (the first reason wins).
  std::atomic<int> reason{kNone};
  /// Requested together with `reason`, for code that waits.
  std::stop_source stop;

  /// Records `why` (unless a reason is already set) and requests stop.
  void request(int why) noexcept {
    int none = kNone;
    reason.compare_exchange_strong(none, why);
    stop.request_stop();
  }
};

}  // namespace detail

/// The running task's request: id, name, retries, eta, headers, ...
/// Valid only during the task call.
class Context {
 public:
  /// The request of message `msg` for task `def`, run by worker `hostname`.
  Context(App& app, const TaskDef& def, const TaskMessage& msg, std::string hostname)
      : app_(&app), def_(&def), msg_(&msg), hostname_(std::move(hostname)) {}

  /// Task id (headers.id).
  const std::string& id() const noexcept { return msg_->id; }
  /// Registered task name.
  const std::string& name() const noexcept { return msg_->task; }
  /// How many times this task has been retried already.
  int retries() const noexcept { return msg_->retries; }
  /// ETA the message carried, if any.
  const std::optional<TimePoint>& eta() const noexcept { return msg_->eta; }
  /// Expiry the message carried, if any.
  const std::optional<TimePoint>& expires() const noexcept { return msg_->expires; }
  /// Root and parent ids of the workflow.
  const std::string& root_id() const noexcept { return msg_->root_id; }
  /// Parent task id, when called from a task.
  const std::optional<std::string>& parent_id() const noexcept { return msg_->parent_id; }
  /// Group id, when part of a group.
  const std::optional<std::string>& group() const noexcept { return msg_->group; }
  /// Custom headers (apply_async headers and unknown protocol headers).
  const OrderedJson& headers() const noexcept { return msg_->extra_headers; }
  /// Queue the message came from (delivery_info.routing_key).
  const std::string& queue() const noexcept { return msg_->queue; }
  /// The raw positional and keyword arguments.
  const Json& args() const noexcept { return msg_->args; }
  /// The raw keyword arguments.
  const Json& kwargs() const noexcept { return msg_->kwargs; }
  /// Worker node name ("celery@host").
  const std::string& hostname() const noexcept { return hostname_; }
  /// The whole decoded message.
  const TaskMessage& message() const noexcept { return *msg_; }
  /// The app (to send other tasks from inside a task).
  App& app() const noexcept { return *app_; }
  /// The task definition being run.
  const TaskDef& task() const noexcept { return *def_; }

  /// Whether the worker asked this task to stop: its soft time limit passed
  /// or it was revoked with terminate. Cheap; poll it in long loops.
  bool cancelled() const noexcept {
    return cancel_ &&
           cancel_->reason.load(std::memory_order_relaxed) != detail::Cancellation::kNone;
  }
  /// A cooperation point: throws SoftTimeLimitExceeded after the soft time
  /// limit, TaskRevokedError("terminated") after a revoke with terminate;
  /// returns otherwise. C++ cannot throw from a signal handler, so in the
  /// processes pool too the soft limit reaches the task here (or through
  /// stop_token()), not at an arbitrary instruction as in Python.
  void check_cancelled() const {
    if (!cancel_) return;
    switch (cancel_->reason.load(std::memory_order_acquire)) {
      case detail::Cancellation::kSoftTimeLimit:
        throw SoftTimeLimitExceeded();
      case detail::Cancellation::kRevoked:
        throw TaskRevokedError("terminated");
      default:
        return;
    }
  }
  /// Stops when cancelled() becomes true: pass it to code that waits
  /// (std::condition_variable_any::wait, std::stop_callback). A token that
  /// never stops when the worker set no limit.
  std::stop_token stop_token() const noexcept {
    return cancel_ ? cancel_->stop.get_token() : std::stop_token();
  }
  /// Used by the worker: shares the state behind cancelled() with the task.
  void set_cancellation(std::shared_ptr<detail::Cancellation> c) noexcept {
    cancel_ = std::move(c);
  }

  /// Retries the task: throws Retry, which the worker turns into a republish
  /// (same id, retries + 1, eta = now + countdown) and a RETRY state, or a
  /// FAILURE once max_retries is exceeded (with `exc` if given, else
  /// MaxRetriesExceededError). Call as `ctx.retry(2.0);` — never returns.
  [[noreturn]] void retry(std::optional<double> countdown = std::nullopt,
                          std::exception_ptr exc = nullptr,
                          std::optional<int> max_retries = std::nullopt) const {
    std::string what =
        "Retry in " + (countdown ? std::to_string(*countdown) + "s" : std::string("default delay"));
    throw Retry(countdown, max_retries, std::move(exc), std::move(what));
  }

 private:
  App* app_;
  const TaskDef* def_;
  const TaskMessage* msg_;
  std::string hostname_;
  std::shared_ptr<detail::Cancellation> cancel_;
};

}  // namespace celeriac::tq
