// Remote-control dispatch shared by every transport (see
// detail/control_dispatch.hpp): Celery's pidbox methods mapped onto
// WorkerControl, and the worker-event payloads.
#include <sys/utsname.h>
#include <unistd.h>

#include <cctype>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "celeriac/tq/detail/control_dispatch.hpp"
#include "celeriac/tq/detail/node_match.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/rate_limit.hpp"

namespace celeriac::tq::detail {

namespace {

Json loadavg() {
  double l[3] = {0, 0, 0};
  if (::getloadavg(l, 3) != 3) return Json::array({0.0, 0.0, 0.0});
  auto r2 = [](double v) { return static_cast<double>(static_cast<long>(v * 100 + 0.5)) / 100; };
  return Json::array({r2(l[0]), r2(l[1]), r2(l[2])});
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

// Celery's `signal` argument of revoke: a name with or without "SIG"
// ("SIGKILL", "KILL", "kill") or a number, as celery.platforms.signum reads it.
int signal_number(const Json& sig) {
  if (sig.is_number_integer()) {
    int n = sig.get<int>();
    if (n > 0 && n < NSIG) return n;
  } else if (sig.is_string()) {
    std::string name = sig.get<std::string>();
    for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
    for (int n = 1; n < NSIG; ++n)
      if (const char* abbrev = sigabbrev_np(n); abbrev && name == abbrev) return n;
  }
  throw ConfigError("revoke: unknown signal " + sig.dump());
}

Json revoke(ControlNode& node, const Json& args) {
  std::vector<std::string> ids;
  if (auto t = args.find("task_id"); t != args.end()) {
    if (t->is_string()) ids.push_back(t->get<std::string>());
    if (t->is_array())
      for (auto& x : *t)
        if (x.is_string()) ids.push_back(x.get<std::string>());
  }
  bool terminate =
      args.contains("terminate") && args["terminate"].is_boolean() && args["terminate"].get<bool>();
  int signal = terminate ? signal_number(args.value("signal", Json("SIGTERM"))) : SIGTERM;
  std::string joined;
  for (auto& id : ids) {
    node.worker.revoke(id, terminate, signal);
    joined += (joined.empty() ? "" : ", ") + id;
  }
  return Json{{"ok", "tasks " + joined + " flagged as revoked"}};
}

std::optional<Json> inspect(ControlNode& node, const std::string& method) {
  WorkerControl& w = node.worker;
  if (method == "ping") return Json{{"ok", "pong"}};
  if (method == "stats") return w.stats();
  if (method == "registered") return w.registered();
  if (method == "active") return w.active();
  if (method == "reserved") return w.reserved();
  if (method == "scheduled") return w.scheduled();
  if (method == "revoked") return w.revoked();
  if (method == "conf") return w.conf();
  if (method == "clock") return Json{{"clock", node.clock.load()}};
  if (method == "active_queues") return active_queues(w.queues());
  return std::nullopt;
}

}  // namespace

long ControlNode::next_clock(long seen) {
  long cur = clock.load();
  long want;
  do {
    want = std::max(cur, seen) + 1;
  } while (!clock.compare_exchange_weak(cur, want));
  return want;
}

bool events_requested(const Url& broker_url) {
  std::string e = broker_url.param("events");
  return !e.empty() && e != "0" && e != "false" && e != "no";
}

std::optional<Json> dispatch_control(ControlNode& node, const Json& req) {
  if (!req.is_object() || !req.contains("method") || !req["method"].is_string())
    return std::nullopt;
  if (!node_selected(req, node.hostname)) return std::nullopt;
  const std::string method = req["method"].get<std::string>();
  Json args =
      req.contains("arguments") && req["arguments"].is_object() ? req["arguments"] : Json::object();
  try {
    if (auto r = inspect(node, method)) return r;
    if (method == "hello") {
      // mingle: answer other nodes only
      if (args.contains("from_node") && args["from_node"] == node.hostname) return std::nullopt;
      return Json{{"revoked", Json::object()}, {"clock", node.clock.load()}};
    }
    if (method == "revoke") return revoke(node, args);
    if (method == "terminate") {  // `celery control terminate SIGNAL ID`: Celery's revoke+terminate
      args["terminate"] = true;
      return revoke(node, args);
    }
    if (method == "rate_limit") return control_rate_limit(node.worker, args);
    if (method == "enable_events") {
      node.task_events = true;
      return Json{{"ok", "task events enabled"}};
    }
    if (method == "disable_events") {
      node.task_events = false;
      return Json{{"ok", "task events disabled"}};
    }
    if (method == "shutdown") {
      node.worker.shutdown();
      return std::nullopt;  // Celery's worker does not reply to shutdown
    }
    if (auto r = node.worker.control(method, args)) return r;
  } catch (const std::exception& e) {
    return Json{{"error", method + ": " + e.what()}};
  }
  return Json{{"error", "No such control command: " + method}};
}

OrderedJson pidbox_request(const std::string& method, const Json& arguments,
                           const std::optional<std::vector<std::string>>& destination,
                           const std::string& ticket, const std::string& oid, bool want_reply) {
  OrderedJson body = OrderedJson::object();
  body["method"] = method;
  body["arguments"] = arguments.is_null() ? OrderedJson::object() : OrderedJson(arguments);
  body["destination"] = destination ? OrderedJson(*destination) : OrderedJson(nullptr);
  body["pattern"] = nullptr;
  body["matcher"] = nullptr;
  if (want_reply) {
    body["ticket"] = ticket;
    body["reply_to"] = {{"exchange", "reply.celery.pidbox"}, {"routing_key", oid}};
  }
  return body;
}

OrderedJson worker_event(ControlNode& node, const char* type, std::chrono::milliseconds freq) {
  OrderedJson e = OrderedJson::object();
  e["hostname"] = node.hostname;
  e["utcoffset"] = 0;
  e["pid"] = static_cast<long>(::getpid());
  e["clock"] = node.next_clock();
  e["freq"] = std::chrono::duration<double>(freq).count();
  long active = 0, processed = 0;
  try {
    Json stats = node.worker.stats();
    if (stats.is_object() && stats.contains("total") && stats["total"].is_object())
      for (auto& [k, v] : stats["total"].items())
        if (v.is_number_integer()) processed += v.get<long>();
    active = static_cast<long>(node.worker.active().size());
  } catch (...) {
    // a heartbeat goes out even when the worker cannot report (stopping)
  }
  e["active"] = active;
  e["processed"] = processed;
  e["loadavg"] = loadavg();
  e["sw_ident"] = "celeriac";
  e["sw_ver"] = kSoftwareVersion;
  utsname u{};
  e["sw_sys"] = ::uname(&u) == 0 ? std::string(u.sysname) : std::string("Linux");
  e["timestamp"] = unix_now();
  e["type"] = type;
  return e;
}

OrderedJson stamp_task_event(ControlNode& node, const Json& event) {
  OrderedJson e = OrderedJson::object();
  e["hostname"] = node.hostname;
  e["utcoffset"] = 0;
  e["pid"] = static_cast<long>(::getpid());
  e["clock"] = node.next_clock();
  if (event.is_object())
    for (auto& [k, v] : event.items())
      if (k != "hostname" && k != "clock" && k != "timestamp") e[k] = v;
  e["timestamp"] = unix_now();
  if (!e.contains("type")) e["type"] = "task-unknown";
  return e;
}

}  // namespace celeriac::tq::detail
