#include "celeriac/tq/amqp/control.hpp"

#include <condition_variable>

#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/detail/control_dispatch.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq::amqp {

using namespace std::chrono_literals;
using detail::Connection;
using detail::Endpoint;

namespace {

constexpr const char* kPidboxExchange = "celery.pidbox";
constexpr const char* kReplyExchange = "reply.celery.pidbox";
constexpr const char* kEventExchange = "celeryev";

// Celery's control_queue_expires (10 s) and control_queue_ttl (300 s).
detail::QueueSpec pidbox_queue_spec() {
  detail::QueueSpec s;
  s.durable = false;
  s.auto_delete = true;
  s.arguments["x-expires"] = 10000;
  s.arguments["x-message-ttl"] = 300000;
  return s;
}

detail::Message json_message(const OrderedJson& body, OrderedJson headers) {
  detail::Message m;
  m.body = dumps(body);
  m.content_type = "application/json";
  m.content_encoding = "utf-8";
  m.delivery_mode = 1;  // transient, as kombu's pidbox and events
  m.headers = std::move(headers);
  return m;
}

}  // namespace

struct AmqpWorkerService::Impl {
  Url url;
  WorkerControl& worker;
  ControlOptions opts;
  std::string hostname;
  Connection conn;
  tq::detail::ControlNode node;  // clock, events flag, dispatch target
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  std::deque<OrderedJson> pending;  // task events to publish
  std::thread thread;

  Impl(const Url& u, WorkerControl& w)
      : url(u),
        worker(w),
        hostname(w.hostname()),
        conn(Endpoint::from_url(u)),
        node(w, tq::detail::events_requested(u)) {}

  long next_clock(long seen = 0) { return node.next_clock(seen); }

  void connect() {
    conn.open();
    conn.declare_exchange(kPidboxExchange, "fanout", false, false);
    conn.declare_exchange(kReplyExchange, "direct", false, false);
    conn.declare_exchange(kEventExchange, "topic", true, false);
    std::string queue = hostname + ".celery.pidbox";
    conn.declare_queue(queue, pidbox_queue_spec());
    conn.bind_queue(queue, kPidboxExchange, "");
    conn.consume(queue, true);
  }

  OrderedJson worker_event(const char* type) {
    return tq::detail::worker_event(node, type, opts.heartbeat);
  }

  void publish_event(const std::string& routing_key, const OrderedJson& body) {
    conn.publish(kEventExchange, routing_key, json_message(body, {{"hostname", hostname}}), false);
  }

  void reply(const Json& req, const Json& payload) {
    auto rt = req.find("reply_to");
    if (rt == req.end() || !rt->is_object()) return;
    std::string exchange = rt->value("exchange", "");
    std::string rk = rt->value("routing_key", "");
    if (exchange.empty() || rk.empty()) return;
    OrderedJson body = OrderedJson::object();
    body[hostname] = OrderedJson::parse(payload.dump());
    OrderedJson headers = {{"ticket", req.value("ticket", "")}, {"clock", next_clock()}};
    conn.publish(exchange, rk, json_message(body, std::move(headers)), false);
  }

  void flush_events() {
    std::deque<OrderedJson> batch;
    {
      std::lock_guard lk(mu);
      batch.swap(pending);
    }
    if (batch.empty()) return;
    OrderedJson list = OrderedJson::array();
    for (auto& e : batch) list.push_back(std::move(e));
    publish_event("task.multi", list);  // as Python's worker groups them
  }

  void run(AmqpWorkerService& self) {
    auto backoff = 100ms;
    auto next_heartbeat = std::chrono::steady_clock::now();
    bool online_sent = false;
    while (!stopping) {
      try {
        if (!conn.is_open()) connect();
        if (!online_sent) {
          publish_event("worker.online", worker_event("worker-online"));
          online_sent = true;
        }
        backoff = 100ms;
        if (auto r = conn.next_delivery(100ms)) {
          if (auto c = r->message.headers.find("clock");
              c != r->message.headers.end() && c->is_number_integer())
            next_clock(c->get<long>());
          auto exp = r->message.headers.find("expires");
          bool expired = exp != r->message.headers.end() && exp->is_number() &&
                         exp->get<double>() > 0 && exp->get<double>() < unix_now();
          std::optional<Json> payload;
          Json req;
          try {
            req = loads(r->message.body);
            if (!expired) payload = self.handle(req);
          } catch (const std::exception&) {
            // a malformed request is ignored, as kombu's pidbox does
          }
          if (payload) reply(req, *payload);
        }
        flush_events();
        if (std::chrono::steady_clock::now() >= next_heartbeat) {
          publish_event("worker.heartbeat", worker_event("worker-heartbeat"));
          next_heartbeat = std::chrono::steady_clock::now() + opts.heartbeat;
        }
      } catch (const std::exception&) {
        conn.close();
        std::unique_lock lk(mu);
        cv.wait_for(lk, backoff, [&] { return stopping.load(); });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      }
    }
  }
};

AmqpWorkerService::AmqpWorkerService(const Url& broker_url, WorkerControl& worker)
    : impl_(std::make_unique<Impl>(broker_url, worker)) {
  // Declare the pidbox queue before the worker reports ready, so a request
  // sent right after start-up is not missed.
  try {
    impl_->connect();
  } catch (const BrokerError&) {
    // the service thread retries with backoff
  }
  impl_->thread = std::thread([this] { impl_->run(*this); });
}

AmqpWorkerService::~AmqpWorkerService() {
  stop();
}

void AmqpWorkerService::on_task_event(const Json& event) {
  auto& im = *impl_;
  if (!im.node.task_events || im.stopping) return;
  OrderedJson e = tq::detail::stamp_task_event(im.node, event);
  std::lock_guard lk(im.mu);
  im.pending.push_back(std::move(e));
}

void AmqpWorkerService::stop() {
  auto& im = *impl_;
  if (im.stopping.exchange(true)) return;
  im.cv.notify_all();
  if (im.thread.joinable()) im.thread.join();
  try {
    if (im.conn.is_open()) {
      im.flush_events();
      im.publish_event("worker.offline", im.worker_event("worker-offline"));
    }
  } catch (...) {
    // the broker is gone; nothing more to tell it
  }
  im.conn.close();
}

std::optional<Json> AmqpWorkerService::handle(const Json& req) {
  return tq::detail::dispatch_control(impl_->node, req);
}

// ------------------------------------------------------------ client side

AmqpControlClient::AmqpControlClient(const Url& broker_url) : url_(broker_url) {}

std::vector<Json> AmqpControlClient::broadcast(
    const std::string& method, const Json& arguments,
    const std::optional<std::vector<std::string>>& destination, std::chrono::milliseconds timeout,
    bool want_reply) {
  std::vector<Json> replies;
  Connection c(Endpoint::from_url(url_));
  c.open();
  c.declare_exchange(kPidboxExchange, "fanout", false, false);
  std::string oid = make_uuid();
  std::string ticket = make_uuid();
  if (want_reply) {
    c.declare_exchange(kReplyExchange, "direct", false, false);
    std::string queue = oid + "." + kReplyExchange;
    c.declare_queue(queue, pidbox_queue_spec());
    c.bind_queue(queue, kReplyExchange, oid);
    c.consume(queue, true, true);
  }
  OrderedJson body =
      tq::detail::pidbox_request(method, arguments, destination, ticket, oid, want_reply);
  OrderedJson headers = {
      {"clock", 1},
      {"expires", want_reply ? unix_now() + std::chrono::duration<double>(timeout).count() : 0.0}};
  c.publish(kPidboxExchange, "", json_message(body, std::move(headers)), false);
  if (!want_reply) return replies;
  std::size_t expected = destination ? destination->size() : 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto r = c.next_delivery(left);
    if (!r) continue;
    auto t = r->message.headers.find("ticket");
    if (t == r->message.headers.end() || *t != ticket) continue;
    try {
      replies.push_back(loads(r->message.body));
    } catch (const MessageError&) {
      continue;  // not a reply we can read
    }
    if (expected && replies.size() >= expected) break;
  }
  return replies;
}

}  // namespace celeriac::tq::amqp
