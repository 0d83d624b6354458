// `celeriac events` (dump and live view), `celeriac control`, `celeriac
// dashboard`, and the worker's --dashboard/--metrics-port.
#include "celeriac/tq/detail/monitor_cli.hpp"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/events.hpp"
#include "monitor_state.hpp"

namespace celeriac::tq::detail {

namespace {

using namespace std::chrono_literals;

// SIGINT/SIGTERM are blocked by the caller and collected here, so a
// Ctrl-C ends the loop cleanly instead of killing the process mid-write.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  ~StopSignals() { pthread_sigmask(SIG_UNBLOCK, &set_, nullptr); }
  bool requested() {
    timespec zero{0, 0};
    return sigtimedwait(&set_, nullptr, &zero) > 0;
  }
  /// Waits up to `d` for a signal; true when one came.
  bool wait(std::chrono::milliseconds d) {
    timespec ts{static_cast<time_t>(d.count() / 1000),
                static_cast<long>(d.count() % 1000) * 1000000};
    return sigtimedwait(&set_, nullptr, &ts) > 0;
  }

 private:
  sigset_t set_;
};

std::string format_event_line(const Json& e) {
  std::string line = format_event_time(e.value("timestamp", 0.0));
  line += " " + e.value("hostname", std::string("?")) + " " + e.value("type", std::string("?"));
  for (const char* k :
       {"uuid", "name", "runtime", "exception", "reason", "retries", "active", "processed"}) {
    auto it = e.find(k);
    if (it == e.end() || it->is_null()) continue;
    line += std::string(" ") + k + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
  }
  return line;
}

int run_events(const App& app, const MonitorCliOptions& o) {
  StopSignals signals;
  auto receiver = make_event_receiver(app.config().broker_url);
  std::cerr << "listening for events on " << Url::parse(app.config().broker_url).redacted()
            << std::endl;
  MonitorState state;
  auto started = std::chrono::steady_clock::now();
  auto next_draw = started;
  long long seen = 0;
  for (;;) {
    if (signals.requested()) break;
    if (o.run_for > 0 &&
        std::chrono::steady_clock::now() - started > std::chrono::duration<double>(o.run_for))
      break;
    for (auto& e : receiver->poll(250ms)) {
      ++seen;
      state.apply(e);
      if (o.dump) std::cout << format_event_line(e) << "\n";
      if (o.max_events && seen >= o.max_events) break;
    }
    if (o.dump) std::cout.flush();
    if (o.max_events && seen >= o.max_events) break;
    if (!o.dump && std::chrono::steady_clock::now() >= next_draw) {
      std::cout << "\x1b[H\x1b[2J" << state.terminal_view(app.config().broker_url) << std::flush;
      next_draw = std::chrono::steady_clock::now() + 1s;
    }
  }
  if (receiver->malformed())
    std::cerr << receiver->malformed() << " malformed event message(s) skipped\n";
  return 0;
}

// Celery's `control` arguments by position, e.g. rate_limit TASK RATE.
Json control_arguments(const std::string& method, const std::vector<std::string>& a) {
  auto need = [&](std::size_t n, const char* usage) {
    if (a.size() < n) throw ConfigError("control " + method + " needs: " + usage);
  };
  if (method == "rate_limit") {
    need(2, "TASK_NAME RATE (e.g. tasks.add 10/m)");
    return {{"task_name", a[0]}, {"rate_limit", a[1]}};
  }
  if (method == "time_limit") {
    need(2, "TASK_NAME SOFT [HARD]");
    Json j{{"task_name", a[0]}, {"soft", std::stod(a[1])}};
    if (a.size() > 2) j["hard"] = std::stod(a[2]);
    return j;
  }
  if (method == "add_consumer" || method == "cancel_consumer") {
    need(1, "QUEUE");
    return {{"queue", a[0]}};
  }
  if (method == "pool_grow" || method == "pool_shrink") {
    if (a.empty()) return {{"n", 1}};
    std::size_t used = 0;
    int n = -1;
    try {
      n = std::stoi(a[0], &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != a[0].size() || n < 0)
      throw ConfigError("control " + method + " needs N, a whole number >= 0, got '" + a[0] + "'");
    return {{"n", n}};
  }
  if (method == "revoke" || method == "terminate") {
    need(1, "TASK_ID...");
    return {{"task_id", a}, {"terminate", method == "terminate"}};
  }
  return Json::object();
}

int run_control(const App& app, const MonitorCliOptions& o) {
  auto client = make_control_client(app.config().broker_url);
  std::optional<std::vector<std::string>> dest;
  if (!o.control_destination.empty()) dest = o.control_destination;
  std::string method = o.control_method == "terminate" ? "revoke" : o.control_method;
  bool wants_reply = method != "shutdown";
  auto replies = client->broadcast(
      method, control_arguments(o.control_method, o.control_args), dest,
      std::chrono::milliseconds(static_cast<long long>(o.control_timeout * 1000)), wants_reply);
  if (!wants_reply) {
    std::cout << "shutdown sent\n";
    return 0;
  }
  if (replies.empty()) {
    std::cerr << "Error: No nodes replied within time constraint.\n";
    return 1;
  }
  int rc = 0;
  for (auto& r : replies) {
    std::cout << r.dump(2) << "\n";
    for (auto& [node, v] : r.items())
      if (v.is_object() && v.contains("error")) rc = 1;
  }
  return rc;
}

}  // namespace

void add_monitor_commands(CLI::App& cli, MonitorCliOptions& o) {
  o.events = cli.add_subcommand("events", "watch workers and tasks live (needs workers with -E)");
  o.events->add_flag("--dump", o.dump, "print each event as a line instead of the live view");
  o.events->add_option("--count", o.max_events, "exit after this many events");
  o.events->add_option("--timeout", o.run_for, "exit after this many seconds");

  o.control = cli.add_subcommand("control", "tell running workers to do something");
  o.control
      ->add_option("method", o.control_method,
                   "shutdown, pool_grow, pool_shrink, add_consumer, cancel_consumer, rate_limit, "
                   "time_limit, revoke, terminate, enable_events, disable_events")
      ->required()
      ->check(CLI::IsMember({"shutdown", "pool_grow", "pool_shrink", "add_consumer",
                             "cancel_consumer", "rate_limit", "time_limit", "revoke", "terminate",
                             "enable_events", "disable_events"}));
  o.control->add_option("args", o.control_args, "the method's arguments");
  o.control->add_option("-t,--timeout", o.control_timeout, "seconds to wait for replies");
  o.control->add_option("-d,--destination", o.control_destination, "node names (default: all)");

  o.dashboard = cli.add_subcommand("dashboard", "serve the web dashboard, REST API and /metrics");
  o.dashboard->add_option("--address", o.address, "address to bind (default 127.0.0.1)");
  o.dashboard->add_option("--port", o.port, "port (default 5555)")->check(CLI::Range(0, 65535));
  o.dashboard
      ->add_option("--auth-token", o.auth_token,
                   "required off loopback: bearer token (or basic-auth password)")
      ->envname("CELERIAC_DASHBOARD_TOKEN");
  o.dashboard->add_option("--db", o.db_path,
                          "task history file (default celeriac-dashboard.db here)");
}

void add_worker_monitor_options(CLI::App& worker, MonitorCliOptions& o) {
  worker.add_option("--dashboard", o.worker_dashboard_port,
                    "also serve the dashboard on 127.0.0.1:PORT (implies -E)");
  worker.add_option("--metrics-port", o.worker_metrics_port,
                    "serve this worker's /metrics on 127.0.0.1:PORT");
}

std::optional<int> run_monitor_command(tq::App& app, const MonitorCliOptions& o) {
  if (o.events && o.events->parsed()) return run_events(app, o);
  if (o.control && o.control->parsed()) return run_control(app, o);
  if (o.dashboard && o.dashboard->parsed()) {
    DashboardOptions d;
    d.address = o.address;
    d.port = o.port;
    d.auth_token = o.auth_token;
    if (!o.db_path.empty()) d.history_path = o.db_path;
    StopSignals signals;
    Dashboard dash(app, d);
    dash.start();
    std::cerr << "dashboard on http://" << d.address << ":" << dash.port() << "/ (broker "
              << Url::parse(app.config().broker_url).redacted() << ")\n";
    while (!signals.wait(500ms)) {
    }
    dash.stop();
    return 0;
  }
  return std::nullopt;
}

}  // namespace celeriac::tq::detail
