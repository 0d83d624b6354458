// WorkerMetricsServer (`worker --metrics-port`) and the servers a worker
// started with --dashboard/--metrics-port runs beside itself.
#include "celeriac/tq/metrics.hpp"

#include <httplib.h>

#include <thread>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/detail/monitor_cli.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/worker.hpp"

namespace celeriac::tq {

struct WorkerMetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
};

std::string WorkerMetricsServer::render(const Worker& worker) {
  auto c = worker.counters();
  std::string w = worker.hostname();
  std::string out =
      "# HELP celeriac_worker_tasks_total Task messages handled by this worker, by outcome\n"
      "# TYPE celeriac_worker_tasks_total counter\n";
  auto line = [&](const char* outcome, std::uint64_t n) {
    out += "celeriac_worker_tasks_total{worker=\"" + w + "\",outcome=\"" + outcome + "\"} " +
           std::to_string(n) + "\n";
  };
  line("received", c.received);
  line("succeeded", c.succeeded);
  line("failed", c.failed);
  line("retried", c.retried);
  line("revoked", c.revoked);
  line("dead_lettered", c.dead_lettered);
  Json active = worker.active();
  out +=
      "# HELP flower_worker_number_of_currently_executing_tasks Number of tasks currently "
      "executing at a worker\n# TYPE flower_worker_number_of_currently_executing_tasks gauge\n"
      "flower_worker_number_of_currently_executing_tasks{worker=\"" +
      w + "\"} " + std::to_string(active.size()) + "\n";
  out += "# HELP flower_worker_online Worker online status\n# TYPE flower_worker_online gauge\n";
  out += "flower_worker_online{worker=\"" + w + "\"} " + (worker.running() ? "1" : "0") + "\n";
  return out;
}

WorkerMetricsServer::WorkerMetricsServer(const Worker& worker, int port)
    : impl_(std::make_unique<Impl>()) {
  impl_->server.Get("/metrics", [&worker](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(worker), "text/plain; version=0.0.4");
  });
  impl_->server.Get("/healthcheck", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("OK", "text/plain");
  });
  impl_->port = port == 0 ? impl_->server.bind_to_any_port("127.0.0.1")
                          : (impl_->server.bind_to_port("127.0.0.1", port) ? port : -1);
  if (impl_->port < 0)
    throw ConfigError("worker metrics cannot listen on 127.0.0.1:" + std::to_string(port) +
                      " (in use?)");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
}

WorkerMetricsServer::~WorkerMetricsServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int WorkerMetricsServer::port() const noexcept {
  return impl_->port;
}

namespace detail {

namespace {
class WorkerMonitorServers final : public WorkerMonitor {
 public:
  std::unique_ptr<Dashboard> dashboard;
  std::unique_ptr<WorkerMetricsServer> metrics;
  ~WorkerMonitorServers() override {
    if (dashboard) dashboard->stop();
  }
};
}  // namespace

std::unique_ptr<WorkerMonitor> start_worker_monitor(tq::App& app, const Worker& worker,
                                                    const MonitorCliOptions& o) {
  if (o.worker_dashboard_port <= 0 && o.worker_metrics_port <= 0) return nullptr;
  auto m = std::make_unique<WorkerMonitorServers>();
  if (o.worker_metrics_port > 0)
    m->metrics = std::make_unique<WorkerMetricsServer>(worker, o.worker_metrics_port);
  if (o.worker_dashboard_port > 0) {
    DashboardOptions d;
    d.port = o.worker_dashboard_port;
    m->dashboard = std::make_unique<Dashboard>(app, d);
    m->dashboard->start();
  }
  return m;
}

}  // namespace detail

}  // namespace celeriac::tq
