// What the monitor knows from events (Celery's events/state.py, Flower's
// events.py): workers with their last heartbeat, tasks with their state
// history, per-second rates, runtime statistics and Flower's Prometheus
// metrics. Bounded by StateLimits; every member is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "celeriac/tq/json.hpp"

namespace celeriac::tq::detail {

/// ISO 8601 UTC with milliseconds for a Unix timestamp.
std::string format_event_time(double unix_seconds);

/// How much task history is kept in memory.
struct StateLimits {
  std::size_t max_tasks = 10000;  ///< oldest tasks are dropped beyond this
};

/// Filters of the task list (all optional; empty = any).
struct TaskQuery {
  std::string name;          ///< exact task name
  std::string state;         ///< SUCCESS, FAILURE, ...
  std::string worker;        ///< hostname
  std::string id;            ///< id prefix
  std::string search;        ///< substring of args/kwargs/result/exception
  double received_from = 0;  ///< Unix time, 0 = any
  double received_to = 0;    ///< Unix time, 0 = any
  std::size_t limit = 100;   ///< newest first; 0 = all
  std::size_t offset = 0;    ///< skip this many (newest first)
};

/// Flower's /api/tasks query parameters (taskname, state, workername, id,
/// search, received_start, received_end, limit, offset) as a TaskQuery.
/// Throws ConfigError naming a parameter that is not a number or is negative.
TaskQuery task_query_from(const std::multimap<std::string, std::string>& params);

/// The value of the number parameter `key` of `params`, `fallback` when absent.
/// Throws ConfigError naming it when it is not a non-negative integer.
std::size_t size_param(const std::multimap<std::string, std::string>& params, const char* key,
                       std::size_t fallback);

/// Events folded into workers, tasks, rates and metrics.
class MonitorState {
 public:
  explicit MonitorState(StateLimits limits = {});
  /// Applies one event (Celery's format). Events without "type" are counted
  /// as malformed and ignored. Returns the task's id when a task changed.
  std::optional<std::string> apply(const Json& event);
  /// A task's record as stored (no children lookup), or nullopt.
  std::optional<Json> record(const std::string& id) const;
  /// Restores a task record (from the history file) without counting it.
  void restore_task(const Json& task);
  /// Flower's /api/workers-like object {hostname: {...}} from events.
  Json workers() const;
  /// Task records newest first, filtered (an array; /api/tasks keys them by uuid).
  Json tasks(const TaskQuery& q) const;
  /// One task (Flower's /api/task/info shape) or nullopt.
  std::optional<Json> task(const std::string& id) const;
  /// Per-second counts over the last 15 minutes:
  /// {"t": [unix second...], "received": [...], "succeeded": [...], "failed": [...], "retried":
  /// [...]}
  Json series() const;
  /// Runtime percentiles (p50, p90, p99, max) over the last 1000 finished tasks.
  Json runtime_percentiles() const;
  /// Prometheus text of Flower's metric names.
  std::string metrics() const;
  /// Events applied / ignored as malformed.
  std::uint64_t events_seen() const;
  /// Malformed events ignored.
  std::uint64_t malformed() const;
  /// Counts one malformed message seen by the caller (undecodable body).
  void count_malformed(std::uint64_t n);
  /// The live view of `celeriac events`.
  std::string terminal_view(const std::string& broker_url) const;

 private:
  struct Worker {
    Json info = Json::object();
    double last_heartbeat = 0;
    bool offline = false;
  };
  using Labels = std::tuple<std::string, std::string, std::string>;
  struct Histogram {
    std::array<std::uint64_t, 15> buckets{};
    double sum = 0;
    std::uint64_t count = 0;
  };
  void apply_worker(const std::string& type, const Json& e);
  std::optional<std::string> apply_task(const std::string& type, const Json& e);
  void count_second(double ts, int kind);
  void evict();

  StateLimits limits_;
  mutable std::mutex mu_;
  std::map<std::string, Worker> workers_;
  std::unordered_map<std::string, Json> tasks_;
  std::deque<std::string> order_;  // task ids by first sight
  std::map<Labels, std::uint64_t> events_total_;
  std::map<std::pair<std::string, std::string>, Histogram> runtime_;
  std::map<std::pair<std::string, std::string>, double> prefetch_time_;
  std::map<std::pair<std::string, std::string>, std::int64_t> prefetched_;
  std::deque<double> recent_runtimes_;
  struct Second {
    std::int64_t t = 0;
    std::array<std::uint32_t, 4> n{};
  };
  std::array<Second, 900> seconds_{};
  std::uint64_t seen_ = 0;
  std::uint64_t malformed_ = 0;
};

}  // namespace celeriac::tq::detail
