// start_server / start_unix_server, as asyncio's: a listening socket whose
// connections each run `handler(reader, writer)` as a task.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/aio/socket.hpp"
#include "celeriac/aio/streams.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// Called for each accepted connection; runs as its own task.
using ConnectionHandler = std::function<Task<void>(StreamReader, StreamWriter)>;

/// Settings of start_server.
struct ServerOptions {
  /// listen() backlog.
  int backlog = 1024;
  bool reuse_address = true;  ///< SO_REUSEADDR (TCP)
  bool reuse_port = false;    ///< SO_REUSEPORT (TCP)
  StreamOptions stream;       ///< for each connection's streams
  /// A server TlsContext: each connection handshakes before the handler
  /// runs; a failed handshake closes that connection (the handler never runs).
  std::optional<TlsContext> tls;
};

namespace detail {
struct ServerState;
}

/// A listening server (asyncio.Server). Copies share the server. Loop thread only.
class Server {
 public:
  Server() = default;
  /// A handle on a server's state (internal: made by start_server).
  explicit Server(std::shared_ptr<detail::ServerState> st) noexcept : st_(std::move(st)) {}

  /// Stops listening (closes the listening sockets). Connections already
  /// accepted keep running. Idempotent.
  void close();
  /// Waits until close() has taken effect and every connection handler
  /// task has finished.
  Task<void> wait_closed();
  /// Waits until the server is closed (asyncio's serve_forever, which
  /// returns when close() is called, e.g. from a signal handler).
  Task<void> serve_forever();
  /// Whether the server is accepting connections.
  bool is_serving() const;
  /// The listening addresses (get_extra_info("sockets")).
  std::vector<SocketAddress> sockets() const;
  /// The port of the first listening socket (0 for Unix servers).
  std::uint16_t port() const;
  /// Connection handler tasks still running.
  std::size_t active_connections() const;

 private:
  std::shared_ptr<detail::ServerState> st_;
};

/// Listens on host:port (host resolved; "" or "0.0.0.0" all IPv4, "::" all
/// IPv6; port 0 picks a free port, see Server::port()).
Task<Server> start_server(ConnectionHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options = {});
/// Listens on host:port with TLS (asyncio.start_server(..., ssl=ctx)): as
/// start_server with options.tls = tls (a server context).
Task<Server> start_server(ConnectionHandler handler, std::string host, std::uint16_t port,
                          TlsContext tls, ServerOptions options = {});
/// Listens on a Unix socket path ('@name': abstract). An existing socket
/// file at the path is replaced (as asyncio does).
Task<Server> start_unix_server(ConnectionHandler handler, std::string path,
                               ServerOptions options = {});

}  // namespace celeriac::aio
