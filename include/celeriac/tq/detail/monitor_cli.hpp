// The monitoring verbs of App::main(): `events`, `control`, `dashboard`,
// and the worker's `--dashboard`/`--metrics-port` (src/tq/monitor), kept
// out of cli.cpp.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace celeriac::tq {
class App;
class Worker;
}  // namespace celeriac::tq

namespace celeriac::tq::detail {

/// Values of the monitoring subcommands.
struct MonitorCliOptions {
  CLI::App* events = nullptr;             ///< `events`
  bool dump = false;                      ///< events --dump: a line per event
  long long max_events = 0;               ///< events --count N: exit after N events (0 = never)
  double run_for = 0;                     ///< events --timeout S: exit after S seconds (0 = never)
  CLI::App* control = nullptr;            ///< `control`
  std::string control_method;             ///< e.g. rate_limit
  std::vector<std::string> control_args;  ///< positional arguments of the method
  double control_timeout = 1.0;           ///< seconds to wait for replies
  std::vector<std::string> control_destination;  ///< -d node names
  CLI::App* dashboard = nullptr;                 ///< `dashboard`
  std::string address = "127.0.0.1";             ///< dashboard --address
  int port = 5555;                               ///< dashboard --port
  std::string auth_token;         ///< dashboard --auth-token (or CELERIAC_DASHBOARD_TOKEN)
  std::string db_path;            ///< dashboard --db (task history file)
  int worker_dashboard_port = 0;  ///< worker --dashboard PORT
  int worker_metrics_port = 0;    ///< worker --metrics-port PORT
};

/// Adds `events`, `control` and `dashboard` to `cli`.
void add_monitor_commands(CLI::App& cli, MonitorCliOptions& o);
/// Adds --dashboard/--metrics-port to a `worker` subcommand.
void add_worker_monitor_options(CLI::App& worker, MonitorCliOptions& o);
/// Runs whichever monitoring subcommand was parsed; nullopt when none was.
std::optional<int> run_monitor_command(tq::App& app, const MonitorCliOptions& o);

/// What a worker started with --dashboard/--metrics-port runs beside it.
class WorkerMonitor {
 public:
  virtual ~WorkerMonitor() = default;
};
/// Starts the servers `o` asks a worker for (nullptr when none).
std::unique_ptr<WorkerMonitor> start_worker_monitor(tq::App& app, const Worker& worker,
                                                    const MonitorCliOptions& o);

}  // namespace celeriac::tq::detail
