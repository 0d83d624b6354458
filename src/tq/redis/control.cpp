#include "celeriac/tq/redis/control.hpp"

#include <fnmatch.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <regex>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/rate_limit.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/errors.hpp"
#include "celeriac/tq/redis/pubsub.hpp"

namespace celeriac::tq::redis {

namespace {

constexpr std::string_view kSep = "\x06\x16";
constexpr const char* kVersion = "0.1.0";

Json loadavg() {
  double l[3] = {0, 0, 0};
  if (::getloadavg(l, 3) != 3) return Json::array({0.0, 0.0, 0.0});
  auto r2 = [](double v) { return static_cast<double>(static_cast<long>(v * 100 + 0.5)) / 100; };
  return Json::array({r2(l[0]), r2(l[1]), r2(l[2])});
}

ServiceOptions options_from(const tq::Url& url) {
  ServiceOptions o;
  std::string e = url.param("events");
  o.task_events = !e.empty() && e != "0" && e != "false" && e != "no";
  return o;
}

bool node_selected(const Json& req, const std::string& hostname) {
  auto d = req.find("destination");
  if (d != req.end() && d->is_array() && !d->empty()) {
    bool found = false;
    for (auto& n : *d)
      if (n.is_string() && n.get<std::string>() == hostname) found = true;
    if (!found) return false;
  }
  auto p = req.find("pattern");
  if (p != req.end() && p->is_string()) {
    std::string pattern = p->get<std::string>();
    std::string matcher;
    if (auto m = req.find("matcher"); m != req.end() && m->is_string())
      matcher = m->get<std::string>();
    if (matcher == "pcre") {
      try {
        return std::regex_search(hostname, std::regex(pattern));
      } catch (const std::regex_error&) {
        return false;
      }
    }
    return ::fnmatch(pattern.c_str(), hostname.c_str(), 0) == 0;
  }
  return true;
}

}  // namespace

// Built by appending: g++ 12 warns (-Wrestrict, a false positive) on
// "literal" + std::string temporaries.
std::string pidbox_channel(int db) {
  std::string out = "/";
  out += std::to_string(db);
  out += ".celery.pidbox";
  return out;
}

std::string event_channel(int db, std::string_view routing_key) {
  std::string out = "/";
  out += std::to_string(db);
  out += ".celeryev/";
  out += routing_key;
  return out;
}

std::string make_envelope(const OrderedJson& body, const OrderedJson& headers,
                          std::string_view exchange, std::string_view routing_key,
                          int delivery_mode) {
  OrderedJson env = OrderedJson::object();
  env["body"] = base64_encode(dumps(body));
  env["content-encoding"] = "utf-8";
  env["content-type"] = "application/json";
  env["headers"] = headers;
  OrderedJson props = OrderedJson::object();
  props["delivery_mode"] = delivery_mode;
  props["delivery_info"] = {{"exchange", std::string(exchange)},
                            {"routing_key", std::string(routing_key)}};
  props["priority"] = 0;
  props["body_encoding"] = "base64";
  props["delivery_tag"] = make_uuid();
  env["properties"] = std::move(props);
  return dumps(env);
}

Json envelope_body(const Json& envelope) {
  if (!envelope.is_object() || !envelope.contains("body") || !envelope["body"].is_string())
    throw MessageError("envelope has no string \"body\"");
  std::string body = envelope["body"].get<std::string>();
  const Json* props = envelope.contains("properties") ? &envelope["properties"] : nullptr;
  if (props && props->is_object() && props->value("body_encoding", "") == "base64")
    body = base64_decode(body);
  return loads(body);
}

// ------------------------------------------------------------ worker side

RedisWorkerService::RedisWorkerService(const tq::Url& broker_url, WorkerControl& worker)
    : RedisWorkerService(broker_url, worker, options_from(broker_url)) {}

RedisWorkerService::RedisWorkerService(const tq::Url& broker_url, WorkerControl& worker,
                                       ServiceOptions opts)
    : url_(broker_url),
      rurl_(to_redis_url(broker_url)),
      worker_(worker),
      opts_(opts),
      hostname_(worker.hostname()),
      pool_(rurl_, ConnectOptions{}, std::chrono::seconds(5)) {
  // Subscribe before declaring ourselves so no request is missed, then the
  // binding kombu's Node.listen declares, then worker-online.
  auto sub = std::make_shared<Subscriber>(rurl_);
  sub->psubscribe({pidbox_channel(rurl_.db)});
  pool_.run([&](Connection& c) {
    return c.command({"SADD", "_kombu.binding.celery.pidbox",
                      std::string(kSep) + std::string(kSep) + hostname_ + ".celery.pidbox"});
  });
  publish_event("worker.online", worker_event("worker-online"));
  sub_holder_ = sub;
  pidbox_thread_ = std::thread([this] { pidbox_loop(); });
  event_thread_ = std::thread([this] { event_loop(); });
}

RedisWorkerService::~RedisWorkerService() {
  stop();
}

long RedisWorkerService::next_clock(long seen) {
  long cur = clock_.load();
  long want;
  do {
    want = std::max(cur, seen) + 1;
  } while (!clock_.compare_exchange_weak(cur, want));
  return want;
}

OrderedJson RedisWorkerService::worker_event(const char* type) {
  OrderedJson e = OrderedJson::object();
  e["hostname"] = hostname_;
  e["utcoffset"] = 0;
  e["pid"] = static_cast<long>(::getpid());
  e["clock"] = next_clock();
  e["freq"] = std::chrono::duration<double>(opts_.heartbeat).count();
  Json stats;
  try {
    stats = worker_.stats();
  } catch (...) {
  }
  long active = 0, processed = 0;
  try {
    active = static_cast<long>(worker_.active().size());
  } catch (...) {
  }
  if (stats.is_object() && stats.contains("total") && stats["total"].is_object())
    for (auto& [k, v] : stats["total"].items())
      if (v.is_number_integer()) processed += v.get<long>();
  e["active"] = active;
  e["processed"] = processed;
  e["loadavg"] = loadavg();
  e["sw_ident"] = "celeriac";
  e["sw_ver"] = kVersion;
  utsname u{};
  e["sw_sys"] = ::uname(&u) == 0 ? std::string(u.sysname) : std::string("Linux");
  e["timestamp"] = unix_now();
  e["type"] = type;
  return e;
}

void RedisWorkerService::publish_event(std::string_view routing_key, const OrderedJson& body) {
  OrderedJson headers = {{"hostname", hostname_}};
  std::string env = make_envelope(body, headers, "celeryev", routing_key, 1);
  pool_.run([&](Connection& c) {
    return c.command({"PUBLISH", event_channel(rurl_.db, routing_key), env});
  });
}

void RedisWorkerService::on_task_event(const Json& event) {
  if (!opts_.task_events || stopping_) return;
  OrderedJson e = OrderedJson::object();
  e["hostname"] = hostname_;
  e["utcoffset"] = 0;
  e["pid"] = static_cast<long>(::getpid());
  e["clock"] = next_clock();
  if (event.is_object())
    for (auto& [k, v] : event.items())
      if (k != "hostname" && k != "clock" && k != "timestamp") e[k] = v;
  e["timestamp"] = unix_now();
  if (!e.contains("type")) e["type"] = "task-unknown";
  std::lock_guard lk(mu_);
  pending_events_.push_back(std::move(e));
}

void RedisWorkerService::event_loop() {
  auto next_heartbeat = std::chrono::steady_clock::now() + opts_.heartbeat;
  std::unique_lock lk(mu_);
  while (!stopped_) {
    cv_.wait_for(lk, opts_.event_flush, [this] { return stopped_; });
    std::deque<OrderedJson> batch;
    batch.swap(pending_events_);
    lk.unlock();
    try {
      if (!batch.empty()) {
        // Python's worker sends task events as one list on task.multi
        OrderedJson list = OrderedJson::array();
        for (auto& e : batch) list.push_back(std::move(e));
        publish_event("task.multi", list);
      }
      if (std::chrono::steady_clock::now() >= next_heartbeat) {
        publish_event("worker.heartbeat", worker_event("worker-heartbeat"));
        next_heartbeat = std::chrono::steady_clock::now() + opts_.heartbeat;
      }
    } catch (...) {
      // broker away: events are best effort (as in Celery)
    }
    lk.lock();
  }
}

void RedisWorkerService::pidbox_loop() {
  auto sub = sub_holder_;
  while (!stopping_) {
    std::optional<Message> m;
    try {
      m = sub->get_message(std::chrono::milliseconds(100));
    } catch (const std::exception&) {
      while (!stopping_) {
        try {
          sub->reconnect(std::chrono::steady_clock::now() + std::chrono::seconds(1));
          pool_.clear();
          pool_.run([&](Connection& c) {
            return c.command(
                {"SADD", "_kombu.binding.celery.pidbox",
                 std::string(kSep) + std::string(kSep) + hostname_ + ".celery.pidbox"});
          });
          break;
        } catch (...) {
        }
      }
      continue;
    }
    if (!m) continue;
    try {
      Json env = loads(m->data);
      if (env.contains("headers") && env["headers"].is_object()) {
        auto& h = env["headers"];
        if (h.contains("clock") && h["clock"].is_number()) next_clock(h["clock"].get<long>());
      }
      Json req = envelope_body(env);
      auto payload = handle(req);
      if (payload) reply(req, *payload);
    } catch (const std::exception&) {
      // a malformed request is ignored, as kombu's pidbox does
    }
  }
}

std::optional<Json> RedisWorkerService::handle(const Json& req) {
  if (!req.is_object() || !req.contains("method") || !req["method"].is_string())
    return std::nullopt;
  if (!node_selected(req, hostname_)) return std::nullopt;
  ++handled_;
  const std::string method = req["method"].get<std::string>();
  Json args =
      req.contains("arguments") && req["arguments"].is_object() ? req["arguments"] : Json::object();
  if (method == "ping") return Json{{"ok", "pong"}};
  if (method == "rate_limit") return control_rate_limit(worker_, args);
  if (method == "stats") return worker_.stats();
  if (method == "registered") return worker_.registered();
  if (method == "active") return worker_.active();
  if (method == "reserved") return worker_.reserved();
  if (method == "scheduled") return Json::array();  // far ETAs are parked in Redis (celeriac.eta)
  if (method == "revoked") return Json::array();
  if (method == "clock") return Json{{"clock", clock_.load()}};
  if (method == "active_queues") {
    Json qs = Json::array();
    for (auto& q : worker_.queues())
      qs.push_back({{"name", q},
                    {"exchange", {{"name", q}, {"type", "direct"}, {"durable", true}}},
                    {"routing_key", q},
                    {"durable", true},
                    {"exclusive", false},
                    {"auto_delete", false},
                    {"no_ack", false}});
    return qs;
  }
  if (method == "hello") {
    // mingle: answer other nodes only
    if (args.value("from_node", "") == hostname_) return std::nullopt;
    return Json{{"revoked", Json::object()}, {"clock", clock_.load()}};
  }
  if (method == "revoke") {
    std::vector<std::string> ids;
    if (args.contains("task_id")) {
      auto& t = args["task_id"];
      if (t.is_string()) ids.push_back(t.get<std::string>());
      if (t.is_array())
        for (auto& x : t)
          if (x.is_string()) ids.push_back(x.get<std::string>());
    }
    bool terminate = args.value("terminate", false);
    std::string joined;
    for (auto& id : ids) {
      worker_.revoke(id, terminate);
      joined += (joined.empty() ? "" : ", ") + id;
    }
    return Json{{"ok", "tasks " + joined + " flagged as revoked"}};
  }
  if (method == "shutdown") {
    worker_.shutdown();
    return std::nullopt;  // Celery's worker does not reply to shutdown
  }
  return Json{{"error", "No such control command: " + method}};
}

void RedisWorkerService::reply(const Json& req, const Json& payload) {
  auto rt = req.find("reply_to");
  if (rt == req.end() || !rt->is_object()) return;
  std::string exchange = rt->value("exchange", "");
  std::string rk = rt->value("routing_key", "");
  if (exchange.empty() || rk.empty()) return;
  OrderedJson body = OrderedJson::object();
  body[hostname_] = payload;
  OrderedJson headers = OrderedJson::object();
  headers["ticket"] = req.value("ticket", "");
  headers["clock"] = next_clock();
  std::string env = make_envelope(body, headers, exchange, rk, 1);
  pool_.run([&](Connection& c) {
    Reply members = c.command({"SMEMBERS", "_kombu.binding." + exchange});
    Pipeline p;
    for (auto& m : members.elements()) {
      const std::string& s = m.str();
      auto a = s.find(kSep);
      auto b = a == std::string::npos ? a : s.find(kSep, a + kSep.size());
      if (b == std::string::npos || s.substr(0, a) != rk) continue;
      p.add({"LPUSH", s.substr(b + kSep.size()), env});
    }
    c.execute(p);
    return 0;
  });
}

void RedisWorkerService::stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lk(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
  if (pidbox_thread_.joinable()) pidbox_thread_.join();
  if (event_thread_.joinable()) event_thread_.join();
  try {
    std::deque<OrderedJson> batch;
    {
      std::lock_guard lk(mu_);
      batch.swap(pending_events_);
    }
    if (!batch.empty()) {
      OrderedJson list = OrderedJson::array();
      for (auto& e : batch) list.push_back(std::move(e));
      publish_event("task.multi", list);
    }
    publish_event("worker.offline", worker_event("worker-offline"));
    pool_.run([&](Connection& c) {
      return c.command({"SREM", "_kombu.binding.celery.pidbox",
                        std::string(kSep) + std::string(kSep) + hostname_ + ".celery.pidbox"});
    });
  } catch (...) {
    // the broker is gone; nothing more to tell it
  }
  if (sub_holder_) sub_holder_->close();
  pool_.clear();
}

// ------------------------------------------------------------ client side

RedisControlClient::RedisControlClient(const tq::Url& broker_url)
    : url_(broker_url),
      rurl_(to_redis_url(broker_url)),
      pool_(rurl_, ConnectOptions{}, std::chrono::seconds(5)) {}

std::vector<Json> RedisControlClient::broadcast(
    const std::string& method, const Json& arguments,
    const std::optional<std::vector<std::string>>& destination, std::chrono::milliseconds timeout,
    bool want_reply) {
  std::vector<Json> replies;
  std::string oid = make_uuid();
  std::string reply_queue = oid + ".reply.celery.pidbox";
  std::string binding = oid + std::string(kSep) + std::string(kSep) + reply_queue;
  std::string ticket = make_uuid();
  OrderedJson body = OrderedJson::object();
  body["method"] = method;
  body["arguments"] = arguments.is_null() ? Json::object() : arguments;
  body["destination"] = destination ? Json(*destination) : Json(nullptr);
  body["pattern"] = nullptr;
  body["matcher"] = nullptr;
  if (want_reply) {
    body["ticket"] = ticket;
    body["reply_to"] = {{"exchange", "reply.celery.pidbox"}, {"routing_key", oid}};
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  OrderedJson headers = OrderedJson::object();
  headers["clock"] = 1;
  headers["expires"] = want_reply ? unix_now() + std::chrono::duration<double>(timeout).count() : 0;
  std::string env = make_envelope(body, headers, "celery.pidbox", "", 2);
  try {
    auto c = pool_.acquire();
    if (want_reply) c->command({"SADD", "_kombu.binding.reply.celery.pidbox", binding});
    c->command({"PUBLISH", pidbox_channel(rurl_.db), env});
    if (want_reply) {
      std::size_t expected = destination ? destination->size() : 0;
      while (std::chrono::steady_clock::now() < deadline) {
        auto left = deadline - std::chrono::steady_clock::now();
        double secs = std::max(0.01, std::chrono::duration<double>(left).count());
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", secs);
        Reply r = c->command_timeout(
            left + std::chrono::seconds(5),
            {"BRPOP", reply_queue, reply_queue + std::string(kSep) + "3",
             reply_queue + std::string(kSep) + "6", reply_queue + std::string(kSep) + "9", buf});
        if (r.is_nil()) break;
        try {
          Json renv = loads(r[1].str());
          if (!renv.contains("headers") || renv["headers"].value("ticket", "") != ticket) continue;
          replies.push_back(envelope_body(renv));
        } catch (const std::exception&) {
          continue;  // not a reply we can read
        }
        if (expected && replies.size() >= expected) break;
      }
      Pipeline p;
      p.add({"SREM", "_kombu.binding.reply.celery.pidbox", binding});
      p.add({"DEL", reply_queue, reply_queue + std::string(kSep) + "3",
             reply_queue + std::string(kSep) + "6", reply_queue + std::string(kSep) + "9"});
      c->execute(p);
    }
  } catch (const BrokerError&) {
    throw;
  } catch (const std::exception& e) {
    throw BrokerError("Redis remote control " + url_.redacted() + ": " + method + ": " + e.what());
  }
  return replies;
}

}  // namespace celeriac::tq::redis
