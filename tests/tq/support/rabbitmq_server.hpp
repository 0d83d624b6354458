// Test support: a private rabbitmq-server node on a free 127.0.0.1 port, with
// its own data directory, Erlang cookie and epmd; never the system service.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "process.hpp"
#include "tls_certs.hpp"

namespace celeriac::tq::test {

/// A RabbitMQ node of our own, started in the constructor (it takes several
/// seconds to boot: share one per test binary), stopped by PID in the
/// destructor. Management plugin disabled.
class RabbitMqServer {
 public:
  /// With `certs`, the node also has a TLS listener (tls_port()) serving
  /// `served` (default certs->server()), trusting certs->ca() for client
  /// certificates.
  explicit RabbitMqServer(const TlsCerts* certs = nullptr, const CertPair* served = nullptr);
  ~RabbitMqServer();
  RabbitMqServer(const RabbitMqServer&) = delete;
  RabbitMqServer& operator=(const RabbitMqServer&) = delete;

  /// The AMQP port.
  int port() const { return port_; }
  /// The TLS (amqps) port; 0 without certificates.
  int tls_port() const { return tls_port_; }
  /// "amqps://guest:guest@127.0.0.1:<tls_port>//" + `query`.
  std::string tls_url(const std::string& query = "") const;
  /// Freezes (SIGSTOP) / thaws (SIGCONT) the node: a peer that stops
  /// answering without closing its sockets.
  void pause();
  void resume();
  /// "amqp://guest:guest@127.0.0.1:<port>//" + `query` ("?k=v...").
  std::string url(const std::string& query = "") const;
  /// Same with the scheme Python's Celery uses ("pyamqp://...").
  std::string pyamqp_url() const;
  /// Graceful stop (SIGTERM to the node's process group).
  void stop();
  /// Starts again on the same ports and data directory; waits until ready.
  void start();
  /// Runs rabbitmqctl against this node; returns {exit code, output}.
  RunResult ctl(const std::vector<std::string>& args) const;
  /// The node's log so far.
  std::string log() const { return node_.log(); }

 private:
  std::map<std::string, std::string> env() const;
  TempDir dir_;
  int port_;
  int tls_port_ = 0;
  int dist_port_;
  int epmd_port_;
  std::string nodename_;
  ChildProcess epmd_;
  ChildProcess node_;
};

}  // namespace celeriac::tq::test
