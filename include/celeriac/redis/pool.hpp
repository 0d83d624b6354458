// A small thread-safe pool of Redis connections with reconnect.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "celeriac/redis/connection.hpp"
#include "celeriac/redis/errors.hpp"

namespace celeriac::redis {

class ConnectionPool;

/// A connection borrowed from a pool; returned when destroyed (dropped
/// instead when it was closed by an error).
class PooledConnection {
 public:
  /// Holds `conn`, returned to `pool` when this handle goes.
  PooledConnection(ConnectionPool& pool, Connection conn) : pool_(&pool), conn_(std::move(conn)) {}
  /// Handles move.
  PooledConnection(PooledConnection&&) noexcept = default;
  PooledConnection& operator=(PooledConnection&&) = delete;
  ~PooledConnection();
  /// The connection.
  Connection* operator->() { return &*conn_; }
  /// The connection.
  Connection& operator*() { return *conn_; }

 private:
  ConnectionPool* pool_;
  std::optional<Connection> conn_;
};

/// Hands out connections to one server, creating them on demand and keeping
/// up to `max_idle` idle ones. Thread-safe.
class ConnectionPool {
 public:
  /// Connections to `url`, connected with `opts` (retrying for up to
  /// `reconnect_timeout`), at most `max_idle` kept idle.
  ConnectionPool(Url url, ConnectOptions opts, std::chrono::milliseconds reconnect_timeout,
                 std::size_t max_idle = 8);
  /// An open connection (an idle one, or a new one connected with retry and
  /// backoff for up to reconnect_timeout); throws ConnectionError/TimeoutError.
  PooledConnection acquire();
  /// Like acquire(), but retrying the connect only until `deadline`.
  PooledConnection acquire_until(std::chrono::steady_clock::time_point deadline);
  /// Runs `fn(conn)`; when it fails with a connection error or timeout, the
  /// connection is dropped and `fn` is run once more on a fresh one (use only
  /// for idempotent work or where at-least-once is acceptable).
  template <class F>
  auto run(F&& fn) -> decltype(fn(std::declval<Connection&>()));
  /// Drops every idle connection (e.g. after the server restarted).
  void clear();
  /// The server URL.
  const Url& url() const { return url_; }

 private:
  friend class PooledConnection;
  void give_back(Connection c);
  Url url_;
  ConnectOptions opts_;
  std::chrono::milliseconds reconnect_timeout_;
  std::size_t max_idle_;
  std::mutex mu_;
  std::vector<Connection> idle_;
};

template <class F>
auto ConnectionPool::run(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
  for (int attempt = 0;; ++attempt) {
    auto c = acquire();
    try {
      return fn(*c);
    } catch (const ConnectionError&) {
      (*c).close();
      if (attempt > 0) throw;
      clear();
    } catch (const TimeoutError&) {
      (*c).close();
      if (attempt > 0) throw;
    }
  }
}

}  // namespace celeriac::redis
