// Remote control and events over AMQP as Celery does them: requests on the
// `celery.pidbox` fanout exchange (one `<hostname>.celery.pidbox` queue per
// worker), replies on the `reply.celery.pidbox` direct exchange, events on
// the `celeryev` topic exchange. So `celery inspect ping` sees C++ workers.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq/control.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::amqp {

/// Options of the worker-side service (from the broker URL).
struct ControlOptions {
  /// `?events=1`: publish task-* events (Celery's -E). Worker events
  /// (online, heartbeat, offline) are always sent.
  bool task_events = false;
  /// worker-heartbeat period (Celery: 2 s).
  std::chrono::milliseconds heartbeat{2000};
};

/// Worker side: consumes the worker's pidbox queue, answers ping / stats /
/// registered / active / reserved / active_queues / revoke / shutdown / ...,
/// and publishes events. One thread owns its connection; it reconnects with
/// backoff when the broker goes away.
class AmqpWorkerService final : public WorkerService {
 public:
  /// Starts the pidbox consumer and event publisher for `worker`.
  AmqpWorkerService(const Url& broker_url, WorkerControl& worker);
  ~AmqpWorkerService() override;
  void on_task_event(const Json& event) override;
  void stop() override;
  /// The reply payload for one decoded request, or nullopt when none is due
  /// (not for this node, shutdown, a malformed request).
  std::optional<Json> handle(const Json& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Client side (`celeriac inspect` over AMQP).
class AmqpControlClient final : public ControlClient {
 public:
  /// A control client for the workers on `broker_url`.
  explicit AmqpControlClient(const Url& broker_url);
  std::vector<Json> broadcast(const std::string& method, const Json& arguments,
                              const std::optional<std::vector<std::string>>& destination,
                              std::chrono::milliseconds timeout, bool reply = true) override;

 private:
  Url url_;
};

}  // namespace celeriac::tq::amqp
