// Remote control (kombu pidbox over Redis pub/sub) and events for the Redis
// transport (CELERY-PROTOCOL.md §7, §10): the worker-side service that
// answers `celery inspect` / `celery control`, and the client side used by
// `celeriac inspect`.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq/control.hpp"
#include "celeriac/tq/detail/control_dispatch.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/redis/client.hpp"

namespace celeriac::tq::redis {

/// `/<db>.celery.pidbox`: the channel remote-control requests are published on.
std::string pidbox_channel(int db);
/// `/<db>.celeryev/<routing_key>`: the channel of an event (routing key =
/// event type with '-' turned into '.', e.g. "worker.heartbeat").
std::string event_channel(int db, std::string_view routing_key);
/// A kombu envelope (base64 JSON body) as Celery sends events, pidbox
/// requests and replies.
std::string make_envelope(const OrderedJson& body, const OrderedJson& headers,
                          std::string_view exchange, std::string_view routing_key,
                          int delivery_mode);
/// Decodes an envelope's body (base64 or plain) as JSON; throws MessageError.
Json envelope_body(const Json& envelope);

/// Options of the worker-side service.
struct ServiceOptions {
  /// Publish task-* events (Celery's -E). Worker events (online, heartbeat,
  /// offline) are always sent. From the broker URL: `?events=1`.
  bool task_events = false;
  /// worker-heartbeat period (Celery: 2 s).
  std::chrono::milliseconds heartbeat{2000};
  /// Task events are buffered and sent as one `task.multi` list this often.
  std::chrono::milliseconds event_flush{100};
};

/// Worker-side pidbox consumer and event publisher. Started by the
/// constructor (binding declared, PSUBSCRIBE confirmed, worker-online sent);
/// stop() sends worker-offline, removes the binding and joins the threads.
class RedisWorkerService final : public WorkerService {
 public:
  /// Starts the pidbox consumer (and event publisher) for `worker`.
  RedisWorkerService(const tq::Url& broker_url, WorkerControl& worker, ServiceOptions opts);
  /// Same, with the options read from the URL's query.
  RedisWorkerService(const tq::Url& broker_url, WorkerControl& worker);
  ~RedisWorkerService() override;
  void on_task_event(const Json& event) override;
  void stop() override;

  /// Handles one pidbox request body (the decoded JSON) and returns the
  /// reply payload, or nullopt when nothing is to be sent (not for this
  /// node, shutdown, no reply_to...). Exposed for tests.
  std::optional<Json> handle(const Json& request);
  /// Requests handled so far.
  std::size_t handled() const { return handled_; }

 private:
  void pidbox_loop();
  void event_loop();
  void reply(const Json& request, const Json& payload);
  void publish_event(std::string_view routing_key, const OrderedJson& body);

  tq::Url url_;
  Url rurl_;
  WorkerControl& worker_;
  ServiceOptions opts_;
  std::string hostname_;
  ConnectionPool pool_;
  tq::detail::ControlNode node_;  // clock, events flag, dispatch target
  std::atomic<std::size_t> handled_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<OrderedJson> pending_events_;
  bool stopped_ = false;
  std::shared_ptr<Subscriber> sub_holder_;
  std::thread pidbox_thread_;
  std::thread event_thread_;
};

/// Client side of remote control over Redis (what `celery inspect` does).
class RedisControlClient final : public ControlClient {
 public:
  /// A control client for the workers on `broker_url`.
  explicit RedisControlClient(const tq::Url& broker_url);
  std::vector<Json> broadcast(const std::string& method, const Json& arguments,
                              const std::optional<std::vector<std::string>>& destination,
                              std::chrono::milliseconds timeout, bool reply = true) override;

 private:
  tq::Url url_;
  Url rurl_;
  ConnectionPool pool_;
};

}  // namespace celeriac::tq::redis
