// A worker's own Prometheus endpoint (`worker --metrics-port`).
#pragma once

#include <memory>
#include <string>

namespace celeriac::tq {

class Worker;

/// Serves GET /metrics (per-worker counters) and /healthcheck on
/// 127.0.0.1:port for as long as it lives.
class WorkerMetricsServer {
 public:
  /// Starts serving `worker`'s counters; port 0 picks a free port. Throws
  /// ConfigError when the port cannot be bound.
  WorkerMetricsServer(const Worker& worker, int port);
  ~WorkerMetricsServer();
  /// The port bound.
  int port() const noexcept;
  /// The metrics text served (Prometheus format).
  static std::string render(const Worker& worker);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace celeriac::tq
