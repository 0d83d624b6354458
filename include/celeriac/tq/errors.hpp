// Errors of the task queue layer (celeriac::tq). Every one derives from
// celeriac::Error; the message always says what was wrong and where.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "celeriac/error.hpp"

namespace celeriac::tq {

/// A broker or backend URL, or an App/worker option, is invalid. The message
/// quotes the offending text and says what is expected.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A task message (kombu envelope, protocol-2 headers or body) is malformed.
/// Carries the task id and name when they could be read before the problem,
/// so a worker can still store a FAILURE for the id.
class MessageError : public Error {
 public:
  /// A malformed message; names the task id and name when they could be read.
  explicit MessageError(const std::string& what, std::optional<std::string> task_id = std::nullopt,
                        std::optional<std::string> task_name = std::nullopt)
      : Error(what), task_id_(std::move(task_id)), task_name_(std::move(task_name)) {}
  /// The message's task id, when it was readable.
  const std::optional<std::string>& task_id() const noexcept { return task_id_; }
  /// The message's task name, when it was readable.
  const std::optional<std::string>& task_name() const noexcept { return task_name_; }

 private:
  std::optional<std::string> task_id_;
  std::optional<std::string> task_name_;
};

/// The broker failed (I/O, database, connection). Transient ones may be retried.
class BrokerError : public Error {
 public:
  using Error::Error;
};

/// A batch publish failed: the broker's reason, and the ids of the tasks
/// that were not published (every one of the batch: batches are atomic).
class PublishError : public BrokerError {
 public:
  /// The broker's reason and the tasks not published.
  PublishError(const std::string& what, std::vector<std::string> task_ids)
      : BrokerError(what), task_ids_(std::move(task_ids)) {}
  /// The tasks not published.
  const std::vector<std::string>& task_ids() const noexcept { return task_ids_; }

 private:
  std::vector<std::string> task_ids_;
};

/// The result backend failed (I/O, database, connection).
class BackendError : public Error {
 public:
  using Error::Error;
};

/// The error a task raised, as Celery stores it: {exc_type, exc_message,
/// exc_module} plus the traceback text. AsyncResult::get() throws this for a
/// FAILURE or REVOKED task; tasks may throw it themselves to choose the
/// Python-visible type (e.g. TaskError("KeyError", "builtins", "missing x")).
class TaskError : public Error {
 public:
  /// `exc_message` is Celery's list of exception arguments; a string is wrapped.
  TaskError(std::string exc_type, std::string exc_module, nlohmann::json exc_message,
            std::string traceback = {}, std::string state = "FAILURE");
  /// Python-style class name, e.g. "ValueError", "TaskRevokedError".
  const std::string& exc_type() const noexcept { return exc_type_; }
  /// Python module of the class, e.g. "builtins", "celery.exceptions".
  const std::string& exc_module() const noexcept { return exc_module_; }
  /// The exception's arguments (always a JSON array).
  const nlohmann::json& exc_message() const noexcept { return exc_message_; }
  /// The exception's arguments as one readable string ("boom").
  std::string message() const;
  /// The formatted traceback stored with the result ("" when none).
  const std::string& traceback() const noexcept { return traceback_; }
  /// The task state the error came from: "FAILURE" or "REVOKED".
  const std::string& state() const noexcept { return state_; }
  /// {"exc_type": ..., "exc_message": [...], "exc_module": ...} in Celery's key order.
  nlohmann::ordered_json to_json() const;

 private:
  std::string exc_type_;
  std::string exc_module_;
  nlohmann::json exc_message_;
  std::string traceback_;
  std::string state_;
};

/// Python's TypeError: wrong number or types of task arguments.
inline TaskError type_error(const std::string& message) {
  return TaskError("TypeError", "builtins", message);
}

/// celery.exceptions.NotRegistered: the worker has no task of that name.
inline TaskError not_registered(const std::string& task_name) {
  return TaskError("NotRegistered", "celery.exceptions", task_name);
}

/// billiard.exceptions.SoftTimeLimitExceeded (Celery reports this module):
/// the task ran past its soft time limit. Thrown inside the task by
/// Context::check_cancelled() (threads, solo, processes) or at the next
/// co_await (async pool); a task may catch it to clean up. Stored as FAILURE
/// with Celery's empty argument list when it escapes the task.
class SoftTimeLimitExceeded : public TaskError {
 public:
  SoftTimeLimitExceeded()
      : TaskError("SoftTimeLimitExceeded", "billiard.exceptions", nlohmann::json::array()) {}
};

/// billiard.exceptions.TimeLimitExceeded(seconds): the task ran past its hard
/// time limit; the worker stored this as its FAILURE without waiting for it.
class TimeLimitExceeded : public TaskError {
 public:
  /// The hard limit that was passed, in seconds (Celery's only argument).
  explicit TimeLimitExceeded(double seconds)
      : TaskError("TimeLimitExceeded", "billiard.exceptions", nlohmann::json::array({seconds})) {}
};

/// celery.exceptions.TaskRevokedError: the task was revoked ("revoked",
/// "expired", "terminated"); stored as REVOKED.
class TaskRevokedError : public TaskError {
 public:
  /// Revoked for `reason`.
  explicit TaskRevokedError(const std::string& reason)
      : TaskError("TaskRevokedError", "celery.exceptions", reason, {}, "REVOKED") {}
};

/// celery.exceptions.TaskRevokedError ("expired" or "revoked"), stored as REVOKED.
inline TaskError task_revoked(const std::string& reason) {
  return TaskError("TaskRevokedError", "celery.exceptions", reason, {}, "REVOKED");
}

}  // namespace celeriac::tq
