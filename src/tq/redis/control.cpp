#include "celeriac/tq/redis/control.hpp"

#include <cstdio>

#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/pubsub.hpp"
#include "celeriac/tq/detail/node_match.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/redis/broker.hpp"

namespace celeriac::tq::redis {

namespace {

constexpr std::string_view kSep = "\x06\x16";

ServiceOptions options_from(const tq::Url& url) {
  ServiceOptions o;
  o.task_events = tq::detail::events_requested(url);
  return o;
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
      pool_(rurl_, ConnectOptions{}, std::chrono::seconds(5)),
      node_(worker, opts.task_events) {
  // Subscribe before declaring ourselves so no request is missed, then the
  // binding kombu's Node.listen declares, then worker-online.
  auto sub = std::make_shared<Subscriber>(rurl_);
  sub->psubscribe({pidbox_channel(rurl_.db)});
  pool_.run([&](Connection& c) {
    return c.command({"SADD", "_kombu.binding.celery.pidbox",
                      std::string(kSep) + std::string(kSep) + hostname_ + ".celery.pidbox"});
  });
  publish_event("worker.online", tq::detail::worker_event(node_, "worker-online", opts_.heartbeat));
  sub_holder_ = sub;
  pidbox_thread_ = std::thread([this] { pidbox_loop(); });
  event_thread_ = std::thread([this] { event_loop(); });
}

RedisWorkerService::~RedisWorkerService() {
  stop();
}

void RedisWorkerService::publish_event(std::string_view routing_key, const OrderedJson& body) {
  OrderedJson headers = {{"hostname", hostname_}};
  std::string env = make_envelope(body, headers, "celeryev", routing_key, 1);
  pool_.run([&](Connection& c) {
    return c.command({"PUBLISH", event_channel(rurl_.db, routing_key), env});
  });
}

void RedisWorkerService::on_task_event(const Json& event) {
  if (!node_.task_events || stopping_) return;
  OrderedJson e = tq::detail::stamp_task_event(node_, event);
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
        publish_event("worker.heartbeat",
                      tq::detail::worker_event(node_, "worker-heartbeat", opts_.heartbeat));
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
        if (h.contains("clock") && h["clock"].is_number()) node_.next_clock(h["clock"].get<long>());
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
  if (req.is_object() && req.contains("method") && tq::detail::node_selected(req, hostname_))
    ++handled_;
  return tq::detail::dispatch_control(node_, req);
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
  headers["clock"] = node_.next_clock();
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
    publish_event("worker.offline",
                  tq::detail::worker_event(node_, "worker-offline", opts_.heartbeat));
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
  OrderedJson body =
      tq::detail::pidbox_request(method, arguments, destination, ticket, oid, want_reply);
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
