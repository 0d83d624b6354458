// Dashboard routes: Flower's REST paths and JSON shapes (flower/api/*.py),
// /metrics, /healthcheck, and the server-sent-events stream of the pages.
#include "dashboard_routes.hpp"

#include <httplib.h>

#include <future>
#include <set>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::detail {

namespace {

using namespace std::chrono_literals;

void json_reply(httplib::Response& res, const Json& j, int status = 200) {
  res.status = status;
  res.set_content(j.dump(), "application/json");
}

void ordered_reply(httplib::Response& res, const OrderedJson& j) {
  res.set_content(dumps(j), "application/json");
}

// Remote control from the dashboard; an empty list where the broker has none.
std::vector<Json> broadcast(App& app, const std::string& method, const Json& args,
                            std::optional<std::vector<std::string>> dest, bool reply = true) {
  try {
    auto client = make_control_client(app.config().broker_url);
    return client->broadcast(method, args, dest, 1000ms, reply);
  } catch (const ConfigError&) {
    return {};
  }
}

std::optional<std::vector<std::string>> one_worker(const httplib::Request& req) {
  if (!req.has_param("workername")) return std::nullopt;
  return std::vector<std::string>{req.get_param_value("workername")};
}

// Flower's /api/workers: {hostname: {stats, registered, active, ...}} from
// remote control, with the event view of each worker under "events".
Json workers_json(RouteContext& c, bool status_only) {
  Json ev = c.state.workers();
  if (status_only) {
    Json out = Json::object();
    for (auto& [h, w] : ev.items()) out[h] = w.value("status", false);
    return out;
  }
  const char* methods[] = {"stats",     "registered", "active",        "reserved",
                           "scheduled", "revoked",    "active_queues", "conf"};
  std::vector<std::future<std::vector<Json>>> calls;
  for (const char* m : methods)
    calls.push_back(std::async(
        std::launch::async, [&c, m] { return broadcast(c.app, m, Json::object(), std::nullopt); }));
  Json out = Json::object();
  for (std::size_t i = 0; i < calls.size(); ++i)
    for (auto& reply : calls[i].get())
      for (auto& [host, payload] : reply.items()) out[host][methods[i]] = payload;
  for (auto& [h, w] : ev.items()) {
    out[h]["events"] = w;
    out[h]["status"] = w.value("status", false);
    out[h]["language"] = w.value("language", "?");
  }
  return out;
}

std::vector<std::string> known_queues(RouteContext& c, const httplib::Request& req) {
  std::set<std::string> qs{c.app.config().default_queue};
  if (req.has_param("queue")) qs.insert(req.get_param_value("queue"));
  for (auto& reply : broadcast(c.app, "active_queues", Json::object(), std::nullopt))
    for (auto& [host, list] : reply.items())
      if (list.is_array())
        for (auto& q : list)
          if (q.is_object() && q.contains("name") && q["name"].is_string())
            qs.insert(q["name"].get<std::string>());
  return {qs.begin(), qs.end()};
}

Json queue_lengths(RouteContext& c, const httplib::Request& req) {
  Json list = Json::array();
  for (auto& q : known_queues(c, req))
    list.push_back({{"name", q}, {"messages", c.app.broker().queue_length(q)}});
  return list;
}

Json summary(RouteContext& c) {
  return {{"series", c.state.series()},
          {"workers", c.state.workers()},
          {"runtime", c.state.runtime_percentiles()},
          {"events", c.state.events_seen()},
          {"malformed", c.state.malformed() + c.receiver_malformed()}};
}

void task_routes(httplib::Server& s, RouteContext& c) {
  s.Get("/api/tasks", [&c](const httplib::Request& req, httplib::Response& res) {
    TaskQuery q = task_query_from(req.params);
    OrderedJson out = OrderedJson::object();  // newest first, as Flower's OrderedDict
    for (auto& t : c.state.tasks(q))
      out[t["uuid"].get<std::string>()] = OrderedJson::parse(t.dump());
    ordered_reply(res, out);
  });
  s.Get(R"(/api/task/info/([^/]+))", [&c](const httplib::Request& req, httplib::Response& res) {
    auto t = c.state.task(req.matches[1]);
    if (!t)
      return json_reply(res, {{"error", "Unknown task '" + std::string(req.matches[1]) + "'"}},
                        404);
    json_reply(res, *t);
  });
  s.Get(R"(/api/task/result/([^/]+))", [&c](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    auto meta = c.app.backend().get(id);
    Json j = meta ? loads(meta->to_json()) : Json::object();
    Json out{{"task-id", id}, {"state", j.value("status", "PENDING")}};
    if (meta) {
      out["result"] = j.value("result", Json());
      if (j.contains("traceback") && !j["traceback"].is_null()) out["traceback"] = j["traceback"];
    }
    json_reply(res, out);
  });
  s.Post(R"(/api/task/revoke/([^/]+))", [&c](const httplib::Request& req, httplib::Response& res) {
    std::string id = req.matches[1];
    bool terminate = req.get_param_value("terminate") == "true";
    broadcast(c.app, "revoke", {{"task_id", id}, {"terminate", terminate}}, std::nullopt, false);
    json_reply(res, {{"message", "Revoked '" + id + "'"}});
  });
  s.Post(R"(/api/task/rate-limit/([^/]+))", [&c](const httplib::Request& req,
                                                 httplib::Response& res) {
    std::string name = req.matches[1];
    if (!req.has_param("ratelimit"))
      return json_reply(res, {{"error", "missing parameter 'ratelimit' (e.g. 10/m)"}}, 400);
    auto replies = broadcast(
        c.app, "rate_limit",
        {{"task_name", name}, {"rate_limit", req.get_param_value("ratelimit")}}, one_worker(req));
    if (replies.empty()) return json_reply(res, {{"error", "no worker replied"}}, 403);
    for (auto& r : replies)
      for (auto& [h, v] : r.items())
        if (v.contains("error")) return json_reply(res, {{"error", v["error"]}}, 403);
    json_reply(res, {{"message", "new rate limit set successfully"}});
  });
  s.Post(R"(/api/task/send-task/([^/]+))",
         [&c](const httplib::Request& req, httplib::Response& res) {
           Json body = req.body.empty() ? Json::object() : loads(req.body);
           if (!body.is_object())
             throw ConfigError("the body must be a JSON object {args, kwargs}");
           Json args = body.value("args", Json::array());
           Json kwargs = body.value("kwargs", Json::object());
           if (!args.is_array()) throw ConfigError("'args' must be a JSON array");
           if (!kwargs.is_object()) throw ConfigError("'kwargs' must be a JSON object");
           CallOptions o;
           if (body.contains("queue") && body["queue"].is_string()) o.queue = body["queue"];
           auto m = c.app.build_message(req.matches[1], args, kwargs, o);
           std::string id = c.app.publish(m, o);
           json_reply(res, {{"task-id", id}, {"state", "PENDING"}});
         });
}

void worker_routes(httplib::Server& s, RouteContext& c) {
  s.Get("/api/workers", [&c](const httplib::Request& req, httplib::Response& res) {
    json_reply(res, workers_json(c, req.get_param_value("status") == "true"));
  });
  auto action = [&c](const std::string& method, Json args, const std::string& worker,
                     httplib::Response& res, bool reply) {
    auto replies = broadcast(c.app, method, args, std::vector<std::string>{worker}, reply);
    if (!reply) return json_reply(res, {{"message", method + " sent to " + worker}});
    if (replies.empty()) return json_reply(res, {{"error", "no reply from " + worker}}, 403);
    for (auto& r : replies)
      for (auto& [h, v] : r.items())
        if (v.contains("error")) return json_reply(res, {{"error", v["error"]}}, 403);
    json_reply(res, {{"message", method + " done on " + worker}, {"replies", replies}});
  };
  s.Post(R"(/api/worker/shutdown/([^/]+))",
         [action](const httplib::Request& req, httplib::Response& res) {
           action("shutdown", Json::object(), req.matches[1], res, false);
         });
  s.Post(R"(/api/worker/pool/(grow|shrink)/([^/]+))",
         [action](const httplib::Request& req, httplib::Response& res) {
           int n = static_cast<int>(size_param(req.params, "n", 1));
           action("pool_" + std::string(req.matches[1]), {{"n", n}}, req.matches[2], res, true);
         });
  s.Post(R"(/api/worker/queue/(add|cancel)-consumer/([^/]+))",
         [action](const httplib::Request& req, httplib::Response& res) {
           if (!req.has_param("queue"))
             return json_reply(res, {{"error", "missing parameter 'queue'"}}, 400);
           action(std::string(req.matches[1]) + "_consumer",
                  {{"queue", req.get_param_value("queue")}}, req.matches[2], res, true);
         });
}

void queue_routes(httplib::Server& s, RouteContext& c) {
  s.Get("/api/queues/length", [&c](const httplib::Request& req, httplib::Response& res) {
    json_reply(res, {{"active_queues", queue_lengths(c, req)}});
  });
  s.Post(R"(/api/queues/purge/([^/]+))", [&c](const httplib::Request& req, httplib::Response& res) {
    std::size_t n = c.app.broker().purge(std::string(req.matches[1]));
    json_reply(res, {{"message", "purged " + std::to_string(n) + " message(s)"}, {"purged", n}});
  });
  s.Get("/api/dead-letters", [&c](const httplib::Request& req, httplib::Response& res) {
    Json out = Json::array();
    for (auto& d : c.app.broker().dead_letters(size_param(req.params, "limit", 100))) {
      auto [id, name] = peek_id_and_name(d.envelope);
      out.push_back({{"queue", d.queue},
                     {"reason", d.reason},
                     {"time", d.time},
                     {"id", id.value_or("")},
                     {"name", name.value_or("")},
                     {"message", d.envelope.substr(0, 4096)}});
    }
    json_reply(res, out);
  });
}

}  // namespace

void UpdateFeed::push(std::string id) {
  {
    std::lock_guard lk(mu_);
    log_.emplace_back(++last_, std::move(id));
    while (log_.size() > 200) log_.pop_front();
  }
  cv_.notify_all();
}

std::vector<std::string> UpdateFeed::wait(std::uint64_t& seq, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return closed_ || last_ > seq; });
  std::vector<std::string> out;
  for (auto& [n, t] : log_)
    if (n > seq) out.push_back(t);
  seq = last_;
  return out;
}

bool UpdateFeed::closed_by(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(mu_);
  return cv_.wait_until(lk, deadline, [&] { return closed_; });
}

void UpdateFeed::close() {
  {
    std::lock_guard lk(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool UpdateFeed::closed() const {
  std::lock_guard lk(mu_);
  return closed_;
}

void install_api_routes(httplib::Server& s, RouteContext ctx) {
  auto c = std::make_shared<RouteContext>(ctx);  // routes outlive this call
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        try {
          std::rethrow_exception(ep);
        } catch (const ConfigError& e) {
          json_reply(res, {{"error", e.what()}}, 400);
        } catch (const MessageError& e) {
          json_reply(res, {{"error", std::string("bad request body: ") + e.what()}}, 400);
        } catch (const std::exception& e) {
          json_reply(res, {{"error", e.what()}}, 500);
        }
      });
  s.Get("/healthcheck", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("OK", "text/plain");
  });
  s.Get("/metrics", [c](const httplib::Request& req, httplib::Response& res) {
    std::string text = c->state.metrics();
    text +=
        "# HELP celeriac_queue_length Messages waiting in a queue\n"
        "# TYPE celeriac_queue_length gauge\n";
    for (auto& q : queue_lengths(*c, req))
      text += "celeriac_queue_length{queue=\"" + q["name"].get<std::string>() +
              "\",priority=\"all\"} " + std::to_string(q["messages"].get<std::size_t>()) + "\n";
    text +=
        "# HELP celeriac_malformed_events_total Event messages skipped as malformed\n"
        "# TYPE celeriac_malformed_events_total counter\nceleriac_malformed_events_total " +
        std::to_string(c->state.malformed() + c->receiver_malformed()) + "\n";
    res.set_content(text, "text/plain; version=0.0.4");
  });
  s.Get("/api/summary",
        [c](const httplib::Request&, httplib::Response& res) { json_reply(res, summary(*c)); });
  s.Get("/api/stream", [c](const httplib::Request&, httplib::Response& res) {
    auto seq = std::make_shared<std::uint64_t>(0);
    auto next = std::make_shared<std::chrono::steady_clock::time_point>();
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider("text/event-stream",
                                     [c, seq, next](std::size_t, httplib::DataSink& sink) {
                                       // at most one message a second, however busy the
                                       // fleet: a page must not slow the event intake
                                       if (c->feed.closed_by(*next)) {
                                         sink.done();
                                         return false;
                                       }
                                       *next = std::chrono::steady_clock::now() + 1000ms;
                                       auto ids = c->feed.wait(*seq, 1000ms);
                                       if (c->stopping || c->feed.closed()) {
                                         sink.done();
                                         return false;
                                       }
                                       Json msg = summary(*c);
                                       Json tasks = Json::array();
                                       for (auto& id : ids)
                                         if (auto t = c->state.record(id)) tasks.push_back(*t);
                                       msg["tasks"] = std::move(tasks);
                                       std::string line = "data: " + msg.dump() + "\n\n";
                                       return sink.write(line.data(), line.size());
                                     });
  });
  task_routes(s, *c);
  worker_routes(s, *c);
  queue_routes(s, *c);
  // keep the context alive as long as the server: held by the lambdas above
  s.Get("/api/ping", [c](const httplib::Request&, httplib::Response& res) {
    res.set_content("pong", "text/plain");
  });
}

}  // namespace celeriac::tq::detail
