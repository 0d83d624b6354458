// start_server: accept loops spawning one handler task per connection.
#include "celeriac/aio/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "celeriac/aio/detail/io_wait.hpp"
#include "celeriac/aio/dns.hpp"

namespace celeriac::aio {
namespace detail {

struct Listener {
  int fd = -1;
  SocketAddress addr;
  FdWatch watch;
};

struct ServerState {
  ConnectionHandler handler;
  ServerOptions options;
  std::vector<std::unique_ptr<Listener>> listeners;
  bool serving = true;
  std::size_t accepting = 0;    // accept loops still running
  std::size_t connections = 0;  // handler tasks still running
  List closed_waiters;          // serve_forever / wait_closed

  ~ServerState() { close_listeners(); }
  void close_listeners() noexcept {
    for (auto& l : listeners) {
      l->watch.close();
      if (l->fd >= 0) ::close(l->fd);
      l->fd = -1;
    }
  }
  void maybe_done() noexcept {
    if (!serving) wake_all(closed_waiters);
  }
};

namespace {

Task<void> run_connection(std::shared_ptr<ServerState> st, StreamReader r, StreamWriter w) {
  struct Count {
    ServerState* s;
    ~Count() {
      --s->connections;
      s->maybe_done();
    }
  } count{st.get()};
  if (st->options.tls) {
    // A refused or broken handshake ends this connection only (the stream
    // is already aborted); the handler sees TLS streams only.
    bool ok = true;
    try {
      co_await w.start_tls(*st->options.tls);
    } catch (const CancelledError&) {
      throw;
    } catch (const std::exception&) {
      ok = false;
    }
    if (!ok) co_return;
  }
  try {
    co_await st->handler(std::move(r), w);
  } catch (...) {
    // The handler's error ends this connection only; close it below.
    if (!w.is_closing()) w.abort();
    throw;
  }
}

Task<void> accept_loop(std::shared_ptr<ServerState> st, Listener* l) {
  struct Count {
    ServerState* s;
    ~Count() {
      --s->accepting;
      s->maybe_done();
    }
  } count{st.get()};
  EventLoop& loop = EventLoop::current();
  bool tcp = l->addr.family() != Family::unix_path;
  while (st->serving) {
    int fd = ::accept4(l->fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN) {
        if (!co_await ReadyOrClosed(l->watch.readable())) break;
        continue;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: back off instead of spinning (asyncio pauses too).
        loop.warn("aio server on " + l->addr.to_string() +
                  ": accept failed (out of file descriptors), retrying");
        co_await ReadyOrClosed(l->watch.readable());
        continue;
      }
      break;
    }
    if (tcp) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    Stream s = make_stream(fd, st->options.stream);
    ++st->connections;
    loop.spawn(run_connection(st, std::move(s.reader), std::move(s.writer)), "connection");
  }
}

int listen_on(const SocketAddress& a, const ServerOptions& o) {
  int fd = ::socket(a.native_family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_os_error(errno, "socket() to listen on", a.to_string());
  int one = 1;
  if (a.family() != Family::unix_path) {
    if (o.reuse_address) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (a.family() == Family::ipv6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, a.data(), a.size()) != 0 || ::listen(fd, o.backlog) != 0) {
    int e = errno;
    ::close(fd);
    throw_os_error(e, "cannot listen on", a.to_string());
  }
  return fd;
}

Task<Server> start(ConnectionHandler handler, std::vector<SocketAddress> addrs,
                   ServerOptions options) {
  if (!handler) throw std::invalid_argument("start_server: empty handler");
  if (options.tls && !options.tls->is_server())
    throw std::invalid_argument("start_server: options.tls must be a server TlsContext");
  EventLoop& loop = EventLoop::current();
  auto st = std::make_shared<ServerState>();
  st->handler = std::move(handler);
  st->options = options;
  std::uint16_t chosen_port = 0;
  for (auto a : addrs) {
    // With port 0 and several addresses (IPv4 and IPv6), use one port for all.
    if (chosen_port != 0 && a.port() == 0) {
      if (a.family() == Family::ipv4)
        reinterpret_cast<sockaddr_in*>(a.data())->sin_port = htons(chosen_port);
      else if (a.family() == Family::ipv6)
        reinterpret_cast<sockaddr_in6*>(a.data())->sin6_port = htons(chosen_port);
    }
    auto l = std::make_unique<Listener>();
    l->fd = listen_on(a, options);
    socklen_t len = SocketAddress::capacity();
    SocketAddress bound;
    if (::getsockname(l->fd, bound.data(), &len) == 0) {
      bound.set_size(len);
      l->addr = a.family() == Family::unix_path ? a : bound;
    } else {
      l->addr = a;
    }
    if (chosen_port == 0) chosen_port = l->addr.port();
    l->watch = FdWatch(loop, l->fd);
    st->listeners.push_back(std::move(l));
  }
  for (auto& l : st->listeners) {
    ++st->accepting;
    // No handle kept: the task holds the state, and a handle in the state
    // would make a cycle that keeps both alive (ASan: leak).
    loop.spawn(accept_loop(st, l.get()), "server accept");
  }
  co_return Server(st);
}

}  // namespace
}  // namespace detail

void Server::close() {
  if (!st_ || !st_->serving) return;
  st_->serving = false;
  st_->close_listeners();  // accept loops see the closed watch and end
  st_->maybe_done();
}

Task<void> Server::wait_closed() {
  auto st = st_;
  if (!st) co_return;
  while (st->serving || st->accepting > 0 || st->connections > 0)
    co_await detail::WaitListAwaiter(st->closed_waiters);
}

Task<void> Server::serve_forever() {
  auto st = st_;
  if (!st) co_return;
  while (st->serving) co_await detail::WaitListAwaiter(st->closed_waiters);
}

bool Server::is_serving() const {
  return st_ && st_->serving;
}

std::vector<SocketAddress> Server::sockets() const {
  std::vector<SocketAddress> out;
  if (st_)
    for (auto& l : st_->listeners) out.push_back(l->addr);
  return out;
}

std::uint16_t Server::port() const {
  return st_ && !st_->listeners.empty() ? st_->listeners.front()->addr.port() : 0;
}

std::size_t Server::active_connections() const {
  return st_ ? st_->connections : 0;
}

Task<Server> start_server(ConnectionHandler handler, std::string host, std::uint16_t port,
                          ServerOptions options) {
  std::vector<SocketAddress> addrs;
  if (host.empty() || host == "0.0.0.0") {
    addrs.push_back(SocketAddress::ipv4("0.0.0.0", port));
  } else {
    addrs = co_await resolve(host, port);
  }
  co_return co_await detail::start(std::move(handler), std::move(addrs), options);
}

Task<Server> start_server(ConnectionHandler handler, std::string host, std::uint16_t port,
                          TlsContext tls, ServerOptions options) {
  if (!tls.valid() || !tls.is_server())
    throw std::invalid_argument("start_server on " + host + ":" + std::to_string(port) +
                                ": needs a server TlsContext (TlsContext::server)");
  options.tls = std::move(tls);
  return start_server(std::move(handler), std::move(host), port, std::move(options));
}

Task<Server> start_unix_server(ConnectionHandler handler, std::string path, ServerOptions options) {
  SocketAddress a = SocketAddress::unix_path(path);
  if (path.front() != '@') {
    struct stat sb;
    if (::stat(path.c_str(), &sb) == 0 && S_ISSOCK(sb.st_mode)) ::unlink(path.c_str());
  }
  return detail::start(std::move(handler), {a}, options);
}

}  // namespace celeriac::aio
