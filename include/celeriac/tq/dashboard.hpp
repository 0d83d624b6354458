// The built-in web dashboard (`celeriac dashboard`): pages, Flower's REST
// API and Prometheus metrics, fed by the broker's events, with task history
// kept in a SQLite file.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace celeriac::tq {

class App;

/// Dashboard settings.
struct DashboardOptions {
  std::string address = "127.0.0.1";  ///< bind address; off loopback needs auth_token
  int port = 5555;                    ///< 0 = any free port (see Dashboard::port())
  /// Bearer token (or basic-auth password, any user). Required when the
  /// address is not a loopback one; when set, every request must carry it.
  std::string auth_token;
  std::string history_path = "celeriac-dashboard.db";  ///< task history; "" = in memory only
  std::size_t max_tasks = 100000;                      ///< history retention by count
  std::chrono::hours max_age{24 * 7};                  ///< history retention by age
};

/// The dashboard server. start() binds and returns; stop() joins.
class Dashboard {
 public:
  /// Checks the options (throws ConfigError, e.g. off loopback without a token).
  Dashboard(App& app, DashboardOptions options);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;
  /// Binds, loads the history, starts receiving events; throws ConfigError
  /// when the address cannot be bound.
  void start();
  /// Stops serving and receiving; flushes the history. Idempotent.
  void stop();
  /// The port bound (after start()).
  int port() const noexcept;
  /// Events applied so far.
  std::uint64_t events_seen() const;
  /// Malformed event messages skipped so far.
  std::uint64_t malformed_events() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_address(const std::string& address);

}  // namespace celeriac::tq
