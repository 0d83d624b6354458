// Datagram endpoints: a non-blocking datagram socket and its FdWatch.
#include "celeriac/aio/udp.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "celeriac/aio/detail/io_wait.hpp"
#include "celeriac/aio/dns.hpp"
#include "celeriac/aio/fd_watch.hpp"

namespace celeriac::aio {
namespace detail {

struct DatagramState {
  int fd = -1;
  FdWatch watch;
  SocketAddress local, peer;
  ~DatagramState() { close(); }
  void close() noexcept {
    watch.close();  // waiters resume with EBADF
    if (fd >= 0) ::close(std::exchange(fd, -1));
  }
};

}  // namespace detail

namespace {

[[noreturn]] void throw_closed(const char* op) {
  throw OSError(EBADF, std::string(op) + ": the datagram endpoint is closed");
}

// Waits until the socket is readable (or writable); OSError(EBADF) when it
// is closed meanwhile.
Task<void> wait_ready(detail::DatagramState& st, bool write, const char* op) {
  if (st.fd < 0) throw_closed(op);
  // A named awaiter: g++ 12 mishandles the temporary that a conditional
  // expression inside the co_await would create (ASan: use after free).
  detail::ReadyOrClosed ready(write ? st.watch.writable() : st.watch.readable());
  bool ok = co_await ready;
  if (!ok || st.fd < 0) throw_closed(op);
}

std::string where_of(const detail::DatagramState& st) {
  if (st.peer.family() != Family::unspecified) return st.peer.to_string();
  return "on " + st.local.to_string();
}

// One receive; nullopt when it would block.
std::optional<Datagram> try_receive(detail::DatagramState& st, std::size_t max_size) {
  Datagram d;
  d.data.resize(max_size);
  socklen_t len = SocketAddress::capacity();
  ssize_t n;
  do {
    n = ::recvfrom(st.fd, d.data.data(), max_size, MSG_TRUNC, d.from.data(), &len);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    throw_os_error(errno, "recvfrom", where_of(st));
  }
  d.from.set_size(len);
  // MSG_TRUNC: n is the datagram's real length.
  d.truncated = static_cast<std::size_t>(n) > max_size;
  d.data.resize(d.truncated ? max_size : static_cast<std::size_t>(n));
  return d;
}

// One send; false when it would block.
bool try_send(detail::DatagramState& st, const std::string& data, const SocketAddress* to) {
  ssize_t n;
  do {
    n = to ? ::sendto(st.fd, data.data(), data.size(), 0, to->data(), to->size())
           : ::send(st.fd, data.data(), data.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) return true;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return false;
  throw_os_error(errno, to ? "sendto" : "send", to ? to->to_string() : where_of(st));
}

int open_socket(int family, const DatagramOptions& o) {
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_os_error(errno, "socket() for a datagram endpoint");
  int one = 1;
  if (o.reuse_address) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (o.reuse_port) ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (o.allow_broadcast) ::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  return fd;
}

}  // namespace

detail::DatagramState& DatagramEndpoint::st() const {
  if (!st_) throw InvalidStateError("DatagramEndpoint: empty handle");
  return *st_;
}

Task<Datagram> DatagramEndpoint::recvfrom(std::size_t max_size) {
  auto keep = st_;
  auto& s = st();
  for (;;) {
    if (s.fd < 0) throw_closed("recvfrom");
    if (auto d = try_receive(s, max_size)) co_return std::move(*d);
    co_await wait_ready(s, false, "recvfrom");
  }
}

Task<std::string> DatagramEndpoint::recv(std::size_t max_size) {
  Datagram d = co_await recvfrom(max_size);
  co_return std::move(d.data);
}

Task<void> DatagramEndpoint::sendto(std::string data, SocketAddress to) {
  auto keep = st_;
  auto& s = st();
  for (;;) {
    if (s.fd < 0) throw_closed("sendto");
    if (try_send(s, data, &to)) co_return;
    co_await wait_ready(s, true, "sendto");
  }
}

Task<void> DatagramEndpoint::send(std::string data) {
  auto keep = st_;
  auto& s = st();
  for (;;) {
    if (s.fd < 0) throw_closed("send");
    if (try_send(s, data, nullptr)) co_return;
    co_await wait_ready(s, true, "send");
  }
}

const SocketAddress& DatagramEndpoint::sockname() const {
  return st().local;
}
const SocketAddress& DatagramEndpoint::peername() const {
  return st().peer;
}
int DatagramEndpoint::fd() const {
  return st().fd;
}
void DatagramEndpoint::close() {
  st().close();
}
bool DatagramEndpoint::is_closed() const {
  return st().fd < 0;
}

DatagramEndpoint create_datagram_endpoint(std::optional<SocketAddress> local,
                                          std::optional<SocketAddress> remote,
                                          DatagramOptions options) {
  if (!local && !remote)
    throw std::invalid_argument("create_datagram_endpoint: give a local or a remote address");
  if (local && remote && local->native_family() != remote->native_family())
    throw std::invalid_argument("create_datagram_endpoint: local " + local->to_string() +
                                " and remote " + remote->to_string() + " differ in family");
  EventLoop& loop = EventLoop::current();
  auto st = std::make_shared<detail::DatagramState>();
  st->fd = open_socket((local ? *local : *remote).native_family(), options);
  if (local && ::bind(st->fd, local->data(), local->size()) != 0)
    throw_os_error(errno, "bind datagram endpoint to", local->to_string());
  if (remote) {
    if (::connect(st->fd, remote->data(), remote->size()) != 0)
      throw_os_error(errno, "connect datagram endpoint to", remote->to_string());
    st->peer = *remote;
  }
  socklen_t len = SocketAddress::capacity();
  if (::getsockname(st->fd, st->local.data(), &len) == 0) st->local.set_size(len);
  st->watch = FdWatch(loop, st->fd);
  return DatagramEndpoint(std::move(st));
}

Task<DatagramEndpoint> create_datagram_endpoint(std::string local_host, std::uint16_t local_port,
                                                std::string remote_host, std::uint16_t remote_port,
                                                DatagramOptions options) {
  std::optional<SocketAddress> local, remote;
  int family = AF_UNSPEC;
  if (!remote_host.empty()) {
    auto addrs = co_await resolve(remote_host, remote_port, AF_UNSPEC, SOCK_DGRAM);
    remote = addrs.at(0);
    family = remote->native_family();
  }
  if (!local_host.empty()) {
    auto addrs = co_await resolve(local_host, local_port, family, SOCK_DGRAM);
    local = addrs.at(0);
  }
  co_return create_datagram_endpoint(local, remote, options);
}

}  // namespace celeriac::aio
