// Hooks for broker-specific worker services (remote control over pidbox,
// events) and for the control client used by `celeriac inspect`. The core
// defines the seams; the Redis transport (src/tq/redis) registers the
// implementations for "redis" URLs.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/json.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq {

/// What a running worker exposes to remote control. Implemented by Worker;
/// every member is thread-safe.
class WorkerControl {
 public:
  virtual ~WorkerControl() = default;
  /// Node name, e.g. "celery@host".
  virtual std::string hostname() const = 0;
  /// Queues consumed.
  virtual std::vector<std::string> queues() const = 0;
  /// Registered task names, sorted.
  virtual std::vector<std::string> registered() const = 0;
  /// Celery `inspect stats`-like object (pid, pool, total per task, ...).
  virtual Json stats() const = 0;
  /// Requests being executed: list of {"id","name","args","kwargs","hostname",
  /// "time_start","acknowledged","delivery_info":{"routing_key",...},"worker_pid"}.
  virtual Json active() const = 0;
  /// Requests reserved (prefetched, incl. ETA-held) but not running, same shape.
  virtual Json reserved() const = 0;
  /// Revokes a task id: it is discarded (REVOKED "revoked") when received or
  /// due. With `terminate`, a running one is stopped and stored REVOKED at
  /// once: the processes pool sends `signal` to its child, the other pools
  /// cancel it cooperatively (Context::check_cancelled()).
  virtual void revoke(const std::string& task_id, bool terminate, int signal) = 0;
  /// Starts a warm shutdown (as SIGTERM).
  virtual void shutdown() = 0;
  /// Configuration worth showing (`inspect conf`); no passwords.
  virtual Json conf() const { return Json::object(); }
  /// ETA/countdown requests held (`inspect scheduled`), Celery's shape.
  virtual Json scheduled() const { return Json::array(); }
  /// Revoked task ids remembered (`inspect revoked`).
  virtual Json revoked() const { return Json::array(); }
  /// An optional control command (pool_grow, pool_shrink, add_consumer,
  /// cancel_consumer, rate_limit, time_limit): the reply payload, e.g.
  /// {"ok": "..."}; nullopt when this worker does not support `method`.
  virtual std::optional<Json> control(const std::string& method, const Json& arguments) {
    (void)method;
    (void)arguments;
    return std::nullopt;
  }
  /// Sets task `task_name`'s per-worker rate limit live (Celery's
  /// `control rate_limit`); "" or "0" lifts it. Returns Celery's reply:
  /// {"ok": ...} or {"error": ...} (unknown task, rate that does not parse).
  virtual Json rate_limit(const std::string& task_name, const std::string& rate) {
    (void)task_name;
    (void)rate;
    return Json{{"error", "rate limits are not supported by this worker"}};
  }
};

/// A broker-specific service running beside a worker (pidbox consumer, event
/// publisher). Created when the worker starts consuming, stopped before the
/// worker restores its unacked messages.
class WorkerService {
 public:
  virtual ~WorkerService() = default;
  /// A task event with Celery's fields (type "task-received", "task-started",
  /// "task-succeeded", "task-failed", "task-retried", "task-revoked"; uuid,
  /// name, ... as in CELERY-PROTOCOL.md §7, without hostname/clock/timestamp,
  /// which the service adds). Called on worker threads; must not block long.
  virtual void on_task_event(const Json& event) { (void)event; }
  /// Stops the service (joins its threads). Called once.
  virtual void stop() = 0;
};

/// Creates a started service for a worker consuming from `broker_url`.
using WorkerServiceFactory =
    std::function<std::unique_ptr<WorkerService>(const Url& broker_url, WorkerControl& worker)>;
/// Registers a service factory for workers whose broker URL has `scheme`.
/// Several may be registered per scheme; each worker starts all of them.
void register_worker_service(std::string scheme, WorkerServiceFactory factory);
/// The factories registered for `scheme` (used by Worker).
std::vector<WorkerServiceFactory> worker_services(std::string_view scheme);

/// Client side of remote control (`celery inspect` / `celery control`).
class ControlClient {
 public:
  virtual ~ControlClient() = default;
  /// Broadcasts `method` with `arguments` to all workers (or to the node
  /// names in `destination`) and collects replies for `timeout`: a list of
  /// {nodename: reply} objects. `reply` false sends without waiting.
  virtual std::vector<Json> broadcast(const std::string& method, const Json& arguments,
                                      const std::optional<std::vector<std::string>>& destination,
                                      std::chrono::milliseconds timeout, bool reply = true) = 0;
};
/// Makes a control client for a broker URL.
using ControlClientFactory = std::function<std::unique_ptr<ControlClient>(const Url& broker_url)>;
/// Registers the control client for `scheme`.
void register_control_scheme(std::string scheme, ControlClientFactory factory);
/// A control client for `broker_url` (redis, amqp, sqlite, memory); throws
/// ConfigError when the scheme has no remote control.
std::unique_ptr<ControlClient> make_control_client(std::string_view broker_url);

}  // namespace celeriac::tq
