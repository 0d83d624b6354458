// The worker's rate limiter: a token bucket of capacity one per task name
// (Celery's worker strategy with kombu's TokenBucket), kept as the time the
// next start is allowed, so a burst of jobs gets consecutive start slots in
// arrival order. Fleet-wide limits reserve their slot in the broker.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/task.hpp"

namespace celeriac::tq::detail {

/// The Redis/SQLite key of task `name`'s fleet-wide bucket.
std::string global_rate_key(const std::string& name);

class RateLimiter {
 public:
  /// When a job of `def` may start: nullopt = now, else the time until which
  /// the worker holds it (off the pool). `reserved` becomes true when a start
  /// slot was taken (the job must not take another when it comes back).
  std::optional<TimePoint> take(const TaskDef& def, Broker& broker, bool& reserved);
  /// Replaces task `name`'s per-worker rate (remote control's rate_limit);
  /// "" or "0" lifts it. Throws ConfigError for a rate that does not parse.
  void set(const std::string& name, const std::string& rate);

 private:
  struct Bucket {
    double per_second = 0;
    std::chrono::steady_clock::time_point next{};  // earliest start of the next job
  };
  struct Global {
    std::string key;
    std::chrono::microseconds interval{0};
  };
  std::chrono::nanoseconds take_local(const TaskDef& def);
  std::chrono::nanoseconds take_global(const TaskDef& def, Broker& broker);

  std::mutex mu_;
  std::unordered_map<std::string, Bucket> local_;
  std::unordered_map<std::string, Global> global_;
  std::atomic<bool> overridden_{false};  // some task's rate was set live
};

}  // namespace celeriac::tq::detail
