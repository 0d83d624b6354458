#include "celeriac/tq/amqp/control.hpp"

#include <fnmatch.h>
#include <regex.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <condition_variable>

#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/rate_limit.hpp"

namespace celeriac::tq::amqp {

using namespace std::chrono_literals;
using detail::Connection;
using detail::Endpoint;

namespace {

constexpr const char* kPidboxExchange = "celery.pidbox";
constexpr const char* kReplyExchange = "reply.celery.pidbox";
constexpr const char* kEventExchange = "celeryev";
constexpr const char* kVersion = "0.1.0";

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

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

bool node_selected(const Json& req, const std::string& hostname) {
  auto d = req.find("destination");
  if (d != req.end() && d->is_array() && !d->empty()) {
    bool found = false;
    for (auto& n : *d) found = found || (n.is_string() && n.get<std::string>() == hostname);
    if (!found) return false;
  }
  auto p = req.find("pattern");
  if (p == req.end() || !p->is_string()) return true;
  std::string pattern = p->get<std::string>();
  auto m = req.find("matcher");
  if (m != req.end() && m->is_string() && m->get<std::string>() == "pcre") {
    // POSIX extended regex: close enough to the PCRE patterns used for node names.
    regex_t re;
    if (::regcomp(&re, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) return false;
    bool matched = ::regexec(&re, hostname.c_str(), 0, nullptr, 0) == 0;
    ::regfree(&re);
    return matched;
  }
  return ::fnmatch(pattern.c_str(), hostname.c_str(), 0) == 0;
}

Json active_queues(const std::vector<std::string>& queues) {
  Json qs = Json::array();
  for (auto& q : queues)
    qs.push_back({{"name", q},
                  {"exchange", {{"name", q}, {"type", "direct"}, {"durable", true}}},
                  {"routing_key", q},
                  {"durable", true},
                  {"exclusive", false},
                  {"auto_delete", false},
                  {"no_ack", false}});
  return qs;
}

}  // namespace

struct AmqpWorkerService::Impl {
  Url url;
  WorkerControl& worker;
  ControlOptions opts;
  std::string hostname;
  Connection conn;
  std::atomic<long> clock{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  std::deque<OrderedJson> pending;  // task events to publish
  std::thread thread;

  Impl(const Url& u, WorkerControl& w)
      : url(u), worker(w), hostname(w.hostname()), conn(Endpoint::from_url(u)) {
    std::string e = u.param("events");
    opts.task_events = !e.empty() && e != "0" && e != "false" && e != "no";
  }

  long next_clock(long seen = 0) {
    long cur = clock.load();
    long want;
    do {
      want = std::max(cur, seen) + 1;
    } while (!clock.compare_exchange_weak(cur, want));
    return want;
  }

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
    OrderedJson e = OrderedJson::object();
    e["hostname"] = hostname;
    e["utcoffset"] = 0;
    e["pid"] = static_cast<long>(::getpid());
    e["clock"] = next_clock();
    e["freq"] = std::chrono::duration<double>(opts.heartbeat).count();
    long active = 0, processed = 0;
    try {
      active = static_cast<long>(worker.active().size());
      Json stats = worker.stats();
      if (stats.is_object() && stats.contains("total") && stats["total"].is_object())
        for (auto& [k, v] : stats["total"].items())
          if (v.is_number_integer()) processed += v.get<long>();
    } catch (...) {
    }
    e["active"] = active;
    e["processed"] = processed;
    double l[3] = {0, 0, 0};
    if (::getloadavg(l, 3) != 3) l[0] = l[1] = l[2] = 0;
    e["loadavg"] = {l[0], l[1], l[2]};
    e["sw_ident"] = "celeriac";
    e["sw_ver"] = kVersion;
    utsname u{};
    e["sw_sys"] = ::uname(&u) == 0 ? std::string(u.sysname) : std::string("Linux");
    e["timestamp"] = unix_now();
    e["type"] = type;
    return e;
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
  if (!im.opts.task_events || im.stopping) return;
  OrderedJson e = OrderedJson::object();
  e["hostname"] = im.hostname;
  e["utcoffset"] = 0;
  e["pid"] = static_cast<long>(::getpid());
  e["clock"] = im.next_clock();
  if (event.is_object())
    for (auto& [k, v] : event.items())
      if (k != "hostname" && k != "clock" && k != "timestamp") e[k] = OrderedJson::parse(v.dump());
  e["timestamp"] = unix_now();
  if (!e.contains("type")) e["type"] = "task-unknown";
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
  auto& im = *impl_;
  if (!req.is_object() || !req.contains("method") || !req["method"].is_string())
    return std::nullopt;
  if (!node_selected(req, im.hostname)) return std::nullopt;
  const std::string method = req["method"].get<std::string>();
  Json args =
      req.contains("arguments") && req["arguments"].is_object() ? req["arguments"] : Json::object();
  if (method == "ping") return Json{{"ok", "pong"}};
  if (method == "rate_limit") return control_rate_limit(im.worker, args);
  if (method == "stats") return im.worker.stats();
  if (method == "registered") return im.worker.registered();
  if (method == "active") return im.worker.active();
  if (method == "reserved") return im.worker.reserved();
  if (method == "scheduled" || method == "revoked") return Json::array();
  if (method == "clock") return Json{{"clock", im.clock.load()}};
  if (method == "active_queues") return active_queues(im.worker.queues());
  if (method == "hello") {
    if (args.value("from_node", "") == im.hostname) return std::nullopt;  // mingle: others only
    return Json{{"revoked", Json::object()}, {"clock", im.clock.load()}};
  }
  if (method == "revoke") {
    std::vector<std::string> ids;
    if (auto t = args.find("task_id"); t != args.end()) {
      if (t->is_string()) ids.push_back(t->get<std::string>());
      if (t->is_array())
        for (auto& x : *t)
          if (x.is_string()) ids.push_back(x.get<std::string>());
    }
    std::string joined;
    for (auto& id : ids) {
      im.worker.revoke(id, args.value("terminate", false));
      joined += (joined.empty() ? "" : ", ") + id;
    }
    return Json{{"ok", "tasks " + joined + " flagged as revoked"}};
  }
  if (method == "shutdown") {
    im.worker.shutdown();
    return std::nullopt;  // Celery's worker does not reply to shutdown
  }
  return Json{{"error", "No such control command: " + method}};
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
  OrderedJson body = OrderedJson::object();
  body["method"] = method;
  body["arguments"] = OrderedJson::parse(arguments.is_null() ? "{}" : arguments.dump());
  body["destination"] = destination ? OrderedJson(*destination) : OrderedJson(nullptr);
  body["pattern"] = nullptr;
  body["matcher"] = nullptr;
  if (want_reply) {
    body["ticket"] = ticket;
    body["reply_to"] = {{"exchange", kReplyExchange}, {"routing_key", oid}};
  }
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
