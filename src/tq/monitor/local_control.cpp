// Events and remote control for memory:// and sqlite:// brokers over the
// LocalBus: the worker side (pidbox reader, event publisher with
// heartbeats) and the client side (`celeriac inspect`/`control`). Payloads
// are Celery's; only the carrier differs from Redis/AMQP.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "celeriac/tq/control.hpp"
#include "celeriac/tq/detail/control_dispatch.hpp"
#include "celeriac/tq/detail/event_sender.hpp"
#include "celeriac/tq/detail/transports.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "local_bus.hpp"

namespace celeriac::tq::monitor {

namespace {

using namespace std::chrono_literals;
constexpr auto kHeartbeat = 2s;  // Celery's worker heartbeat
constexpr auto kFlush = 100ms;   // task events are written in batches this often

class LocalWorkerService final : public WorkerService {
 public:
  LocalWorkerService(const Url& url, WorkerControl& worker)
      : writer_(open_local_bus(url)),
        reader_(open_local_bus(url)),
        node_(worker, detail::events_requested(url)) {
    cursor_ = reader_->tail();
    writer_->append(kEventChannel,
                    {dumps(detail::worker_event(node_, "worker-online", kHeartbeat))});
    pidbox_ = std::thread([this] { pidbox_loop(); });
    events_ = std::thread([this] { event_loop(); });
  }
  ~LocalWorkerService() override { stop(); }

  void on_task_event(const Json& event) override {
    if (!node_.task_events || stopping_) return;
    std::string line = dumps(detail::stamp_task_event(node_, event));
    std::lock_guard lk(mu_);
    pending_.push_back(std::move(line));
  }

  void stop() override {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (pidbox_.joinable()) pidbox_.join();
    if (events_.joinable()) events_.join();
    try {
      flush();
      writer_->append(kEventChannel,
                      {dumps(detail::worker_event(node_, "worker-offline", kHeartbeat))});
    } catch (const std::exception&) {
      // the database is gone; nothing more to tell it
    }
  }

 private:
  void flush() {
    std::vector<std::string> batch;
    {
      std::lock_guard lk(mu_);
      batch.assign(std::make_move_iterator(pending_.begin()),
                   std::make_move_iterator(pending_.end()));
      pending_.clear();
    }
    if (!batch.empty()) writer_->append(kEventChannel, batch);
  }

  void event_loop() {
    auto next_heartbeat = std::chrono::steady_clock::now() + kHeartbeat;
    std::unique_lock lk(mu_);
    while (!stopping_) {
      cv_.wait_for(lk, kFlush, [this] { return stopping_; });
      if (stopping_) break;
      lk.unlock();
      try {
        flush();
        if (std::chrono::steady_clock::now() >= next_heartbeat) {
          writer_->append(kEventChannel,
                          {dumps(detail::worker_event(node_, "worker-heartbeat", kHeartbeat))});
          next_heartbeat = std::chrono::steady_clock::now() + kHeartbeat;
        }
      } catch (const std::exception&) {
        // events are best effort (as in Celery)
      }
      lk.lock();
    }
  }

  void pidbox_loop() {
    while (!stopping_) {
      std::vector<std::string> requests;
      try {
        requests = reader_->read(kPidboxChannel, cursor_, 200ms);
      } catch (const std::exception&) {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, 1s, [this] { return stopping_; });
        continue;
      }
      for (auto& text : requests) handle(text);
    }
  }

  void handle(const std::string& text) {
    try {
      Json req = loads(text);
      if (!req.is_object()) return;
      if (auto e = req.find("expires");
          e != req.end() && e->is_number() && e->get<double>() > 0 && e->get<double>() < unix_now())
        return;
      if (auto c = req.find("clock"); c != req.end() && c->is_number_integer())
        node_.next_clock(c->get<long>());
      auto payload = detail::dispatch_control(node_, req);
      auto rt = req.find("reply_to");
      if (!payload || rt == req.end() || !rt->is_object()) return;
      std::string oid = rt->value("routing_key", "");
      if (oid.empty()) return;
      OrderedJson reply = OrderedJson::object();
      reply["ticket"] = req.value("ticket", "");
      reply["body"] = OrderedJson::object();
      reply["body"][node_.hostname] = OrderedJson::parse(payload->dump());
      writer_->append(reply_channel(oid), {dumps(reply)});
    } catch (const std::exception&) {
      // a malformed request is ignored, as kombu's pidbox does
    }
  }

  std::unique_ptr<LocalBus> writer_;
  std::unique_ptr<LocalBus> reader_;
  detail::ControlNode node_;
  std::int64_t cursor_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pending_;
  bool stopping_ = false;
  std::thread pidbox_;
  std::thread events_;
};

class LocalControlClient final : public ControlClient {
 public:
  explicit LocalControlClient(const Url& url) : url_(url), bus_(open_local_bus(url)) {}

  std::vector<Json> broadcast(const std::string& method, const Json& arguments,
                              const std::optional<std::vector<std::string>>& destination,
                              std::chrono::milliseconds timeout, bool want_reply) override {
    std::vector<Json> replies;
    std::string oid = make_uuid();
    std::string ticket = make_uuid();
    OrderedJson body =
        detail::pidbox_request(method, arguments, destination, ticket, oid, want_reply);
    if (want_reply) body["expires"] = unix_now() + std::chrono::duration<double>(timeout).count();
    try {
      std::int64_t cursor = bus_->tail();
      bus_->append(kPidboxChannel, {dumps(body)});
      if (!want_reply) return replies;
      std::size_t expected = destination ? destination->size() : 0;
      auto deadline = std::chrono::steady_clock::now() + timeout;
      while (std::chrono::steady_clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        for (auto& text : bus_->read(reply_channel(oid), cursor, left)) {
          Json r = loads(text);
          if (r.value("ticket", "") == ticket && r.contains("body")) replies.push_back(r["body"]);
        }
        if (expected && replies.size() >= expected) break;
      }
    } catch (const BrokerError&) {
      throw;
    } catch (const std::exception& e) {
      throw BrokerError("remote control on " + url_.redacted() + ": " + method + ": " + e.what());
    }
    return replies;
  }

 private:
  Url url_;
  std::unique_ptr<LocalBus> bus_;
};

// task-sent events from clients, on the same bus as the workers' events.
class LocalEventSender final : public detail::EventSender {
 public:
  explicit LocalEventSender(const Url& url) : bus_(open_local_bus(url)) {}
  void send(const OrderedJson& event, std::string_view) override {
    std::lock_guard lock(mu_);
    bus_->append(kEventChannel, {dumps(event)});
  }

 private:
  std::mutex mu_;
  std::unique_ptr<LocalBus> bus_;
};

}  // namespace

void register_transports() {
  for (const char* scheme : {"memory", "sqlite"}) {
    detail::register_event_sender(scheme,
                                  [](const Url& url) -> std::unique_ptr<detail::EventSender> {
                                    return std::make_unique<LocalEventSender>(url);
                                  });
    register_control_scheme(scheme, [](const Url& url) -> std::unique_ptr<ControlClient> {
      return std::make_unique<LocalControlClient>(url);
    });
    register_worker_service(
        scheme, [](const Url& url, WorkerControl& worker) -> std::unique_ptr<WorkerService> {
          return std::make_unique<LocalWorkerService>(url, worker);
        });
  }
}

}  // namespace celeriac::tq::monitor
