// UDP datagram endpoints (asyncio's loop.create_datagram_endpoint), as
// awaitable sockets instead of protocol callbacks: recvfrom()/sendto() on an
// unconnected endpoint, recv()/send() on a connected one. IPv4, IPv6 and
// Unix datagram sockets. The socket is non-blocking and registered once with
// the loop's epoll; each call tries the syscall first and suspends only on
// EAGAIN. Loop thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "celeriac/aio/socket.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// One datagram received, with its sender.
struct Datagram {
  std::string data;        ///< the payload (truncated to the receive size)
  SocketAddress from;      ///< the sender's address
  bool truncated = false;  ///< the datagram was longer than the receive size
};

/// Settings of a datagram endpoint.
struct DatagramOptions {
  bool reuse_address = false;    ///< SO_REUSEADDR
  bool reuse_port = false;       ///< SO_REUSEPORT
  bool allow_broadcast = false;  ///< SO_BROADCAST
};

namespace detail {
struct DatagramState;
}

/// A UDP (or Unix datagram) socket on the loop. Copies share it; the socket
/// closes when close() is called or the last copy goes.
///
/// Errors are OSError subclasses naming the operation and the address: on a
/// connected endpoint, a datagram that the peer's host refused (ICMP port
/// unreachable) makes the next recv()/send() raise ConnectionRefusedError,
/// as in asyncio. At most one task may wait to receive at a time, and one to
/// send (InvalidStateError otherwise).
class DatagramEndpoint {
 public:
  DatagramEndpoint() = default;
  /// A handle on an endpoint's state (internal: made by create_datagram_endpoint).
  explicit DatagramEndpoint(std::shared_ptr<detail::DatagramState> st) noexcept
      : st_(std::move(st)) {}

  /// Receives one datagram of up to `max_size` bytes, with its sender.
  Task<Datagram> recvfrom(std::size_t max_size = 65536);
  /// Receives one datagram's payload (connected endpoints: from the peer).
  Task<std::string> recv(std::size_t max_size = 65536);
  /// Sends `data` as one datagram to `to` (waits only while the socket's
  /// send buffer is full).
  Task<void> sendto(std::string data, SocketAddress to);
  /// Sends `data` as one datagram to the connected peer.
  Task<void> send(std::string data);

  /// Our address (port chosen by the system when bound to port 0).
  const SocketAddress& sockname() const;
  /// The connected peer (unspecified when not connected).
  const SocketAddress& peername() const;
  /// The fd (owned by the endpoint).
  int fd() const;
  /// Closes the socket; tasks waiting on it get OSError(EBADF). Idempotent.
  void close();
  /// Whether close() was called.
  bool is_closed() const;
  /// Whether it holds an endpoint.
  bool valid() const noexcept { return static_cast<bool>(st_); }

 private:
  detail::DatagramState& st() const;
  std::shared_ptr<detail::DatagramState> st_;
};

/// Opens a datagram socket bound to `local` (when given) and connected to
/// `remote` (when given); at least one is needed, and both must be of the
/// same family. OSError naming the address when bind or connect fails;
/// std::invalid_argument when neither address is given or they differ in
/// family. Loop thread, while the loop runs.
DatagramEndpoint create_datagram_endpoint(std::optional<SocketAddress> local,
                                          std::optional<SocketAddress> remote = std::nullopt,
                                          DatagramOptions options = {});

/// As above with host names, resolved without blocking the loop: binds to
/// local_host:local_port (skipped when local_host is empty) and connects to
/// remote_host:remote_port (skipped when remote_host is empty).
Task<DatagramEndpoint> create_datagram_endpoint(std::string local_host, std::uint16_t local_port,
                                                std::string remote_host = {},
                                                std::uint16_t remote_port = 0,
                                                DatagramOptions options = {});

}  // namespace celeriac::aio
