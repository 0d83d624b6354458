// Test support: a private redis-server on a free 127.0.0.1 port.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "process.hpp"

namespace celeriac::tq::test {

/// A redis-server of our own (no persistence unless `persistent`, files in a
/// temp dir), started in the constructor, answering PING before it returns,
/// stopped by PID in the destructor.
class RedisServer {
 public:
  struct Options {
    /// AOF with fsync on every write: a SIGKILL loses nothing acknowledged.
    bool persistent = false;
    /// requirepass (empty = none).
    std::string password;
  };
  /// TLS only: --tls-port on port(), --port 0 (no plaintext listener).
  struct Tls {
    std::string cert;                  ///< the server's certificate (PEM)
    std::string key;                   ///< its key
    std::string ca;                    ///< CA for client certificates, and for url()/cli()
    bool require_client_cert = false;  ///< --tls-auth-clients yes
    std::string client_cert;           ///< put in url() and used by cli() when set
    std::string client_key;            ///< its key
    bool plaintext_too = false;        ///< also a plaintext port (plain_url()), e.g. to compare
  };
  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options opts);
  /// A TLS-only server (rediss://).
  RedisServer(Options opts, Tls tls);
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  /// The port it listens on.
  int port() const { return port_; }
  /// "redis://127.0.0.1:<port>/<db>" (with the password when there is one);
  /// with TLS "rediss://...?ssl_cert_reqs=required&ssl_ca_certs=<ca>" (and
  /// the client certificate when the options name one).
  std::string url(int db = 0) const;
  /// With Tls::plaintext_too: "redis://127.0.0.1:<plain port>/<db>" on the same server.
  std::string plain_url(int db = 0) const;
  /// SIGKILL (a crash).
  void kill_hard();
  /// Graceful stop (SIGTERM).
  void stop();
  /// Starts again on the same port (and dir); waits for PING.
  void start();
  /// True when it answers PING.
  bool ping() const;
  /// Runs one command through redis-cli and returns its raw output (tests'
  /// side channel that does not depend on the client under test).
  std::string cli(const std::vector<std::string>& args) const;
  /// The server's log so far.
  std::string log() const { return proc_.log(); }

 private:
  std::vector<std::string> tls_cli_args() const;
  Options opts_;
  std::optional<Tls> tls_;
  TempDir dir_;
  int port_;
  int plain_port_ = 0;
  ChildProcess proc_;
};

}  // namespace celeriac::tq::test
