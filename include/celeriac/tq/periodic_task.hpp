// PeriodicEntry: one entry of beat's schedule — what to send (a TaskCall)
// and when (a Schedule), with Celery's entry options.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/tq/json.hpp"
#include "celeriac/tq/schedule.hpp"
#include "celeriac/tq/task.hpp"

namespace celeriac::tq {

/// What a periodic entry sends: a task name with its arguments and call
/// options. Stands in for the canvas Signature (a Signature will convert to
/// or replace it; beat only needs "build the messages of one call").
struct TaskCall {
  std::string task;              ///< task name, e.g. "tasks.add" (need not be registered here)
  Json args = Json::array();     ///< positional arguments
  Json kwargs = Json::object();  ///< keyword arguments
  CallOptions options;           ///< queue, priority, headers...
};

/// Builds a TaskCall (reads like Celery's `add.s(2, 3)`).
inline TaskCall call(std::string task, Json args = Json::array(), Json kwargs = Json::object(),
                     CallOptions options = {}) {
  return TaskCall{std::move(task), std::move(args), std::move(kwargs), std::move(options)};
}

/// Celery's entry options.
struct PeriodicOptions {
  /// Intervals: align slots to multiples of the period since the epoch
  /// (every 10s at :00, :10, ...) instead of counting from beat's start.
  bool relative = false;
  std::string queue;              ///< queue of the sent task ("" = the call's or the default)
  std::optional<int> priority;    ///< 0 (highest) .. 9
  std::optional<double> expires;  ///< seconds after sending the task expires
  bool enabled = true;            ///< false: kept in the schedule, never sent
};

/// One schedule entry.
struct PeriodicEntry {
  std::string name;         ///< unique within a schedule; the key of its stored state
  Schedule schedule;        ///< when
  TaskCall call;            ///< what is sent
  PeriodicOptions options;  ///< how

  /// Throws ConfigError naming the entry and field when something is wrong
  /// (empty name or task, zero interval, args not a list, bad priority).
  void validate() const;
  /// The schedule file's JSON object for this entry.
  Json to_json() const;
  /// Reads one entry of the schedule file; `where` names it in errors.
  static PeriodicEntry from_json(const Json& j, const std::string& where);
};

/// Throws ConfigError for the first duplicate name or invalid entry.
void validate_entries(const std::vector<PeriodicEntry>& entries);

/// Reads a schedule file: {"entries": [ {...}, ... ]} or a bare array of
/// entries (docs/tq-beat.md). Throws ConfigError naming the file, the entry
/// and the field.
std::vector<PeriodicEntry> load_schedule_file(const std::filesystem::path& file);
/// Parses schedule file text (`source` names it in errors).
std::vector<PeriodicEntry> parse_schedule(const std::string& text, const std::string& source);

}  // namespace celeriac::tq
