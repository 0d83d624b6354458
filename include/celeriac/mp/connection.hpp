// Pipe and Connection (Python's multiprocessing.Pipe): a message-framed
// channel between two processes.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/serialize.hpp"

namespace celeriac::mp {

/// One end of a Pipe. Messages keep their boundaries. Move-only; not
/// thread-safe (one reader and one writer thread at a time, as Python's).
/// Send a Connection to a child as a Process or task argument: it travels
/// as its descriptor.
class Connection {
 public:
  /// Timeouts of send and receive.
  using Duration = std::chrono::steady_clock::duration;

  /// A closed connection.
  Connection() = default;
  /// Adopts a connected AF_UNIX stream socket.
  explicit Connection(int fd, bool readable = true, bool writable = true);
  /// Takes over `other`'s end of the channel.
  Connection(Connection&&) noexcept = default;
  /// Closes this end, then takes over `other`'s.
  Connection& operator=(Connection&&) noexcept = default;

  /// Sends one message. ConnectionClosed when the peer is gone or this end
  /// is closed; TimeoutError when it could not be written in time (the
  /// peer does not read and the socket buffer is full).
  void send_bytes(std::string_view bytes);
  /// As send_bytes(), waiting at most `timeout` for room (TimeoutError).
  void send_bytes(std::string_view bytes, Duration timeout);
  /// Receives one message. ConnectionClosed at end of stream (the peer
  /// closed and everything sent was read); TimeoutError when none arrives.
  std::string recv_bytes();
  /// As recv_bytes(), waiting at most `timeout` (TimeoutError).
  std::string recv_bytes(Duration timeout);

  /// Sends / receives a serialized value (may hold SharedArray, Connection...).
  template <Serializable T>
  void send(const T& value, std::optional<Duration> timeout = std::nullopt) {
    msgpack::sbuffer buf;
    std::vector<int> fds;
    {
      detail::FdScope scope(&fds, nullptr);
      try {
        msgpack::pack(buf, value);
      } catch (...) {
        detail::close_fds(fds);
        throw;
      }
    }
    send_frame(std::string_view(buf.data(), buf.size()), fds, timeout);
  }
  /// Receives one value of type T (SerializationError if it is not one); waits at most `timeout` if
  /// given.
  template <Serializable T>
  T recv(std::optional<Duration> timeout = std::nullopt) {
    detail::Frame f = recv_frame(timeout);
    detail::FdScope scope(nullptr, &f.fds);
    return unpack<T>(f.body());
  }

  /// Whether a message can be received without blocking (waits up to timeout).
  bool poll(Duration timeout = Duration::zero());
  /// Closes this end (the peer then sees ConnectionClosed). Idempotent.
  void close() noexcept;
  /// Whether this end is closed.
  bool closed() const noexcept { return !ch_ || !ch_->is_open(); }
  /// Whether this end may receive.
  bool readable() const noexcept { return readable_; }
  /// Whether this end may send.
  bool writable() const noexcept { return writable_; }
  /// The socket's file descriptor (-1 when closed).
  int fileno() const noexcept { return ch_ ? ch_->fd() : -1; }

 private:
  void send_frame(std::string_view payload, std::vector<int>& fds, std::optional<Duration> timeout);
  detail::Frame recv_frame(std::optional<Duration> timeout);
  detail::Channel& open_channel(const char* op, bool want_write);
  std::unique_ptr<detail::Channel> ch_;
  bool readable_ = false;
  bool writable_ = false;
};

/// A connected pair of Connections. duplex: both ends send and receive;
/// otherwise first only receives and second only sends (as Python's).
std::pair<Connection, Connection> Pipe(bool duplex = true);

template <>
struct serializable<Connection> : std::true_type {};

}  // namespace celeriac::mp

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {
  template <>
  struct pack<celeriac::mp::Connection> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const celeriac::mp::Connection& c) const {
      o.pack_array(3);
      o.pack(c.closed() ? -1 : celeriac::mp::detail::attach_fd(c.fileno()));
      o.pack(c.readable());
      o.pack(c.writable());
      return o;
    }
  };
  template <>
  struct convert<celeriac::mp::Connection> {
    const msgpack::object& operator()(const msgpack::object& o, celeriac::mp::Connection& c) const {
      if (o.type != msgpack::type::ARRAY || o.via.array.size != 3) throw msgpack::type_error();
      int index = o.via.array.ptr[0].as<int>();
      c = index < 0 ? celeriac::mp::Connection()
                    : celeriac::mp::Connection(celeriac::mp::detail::take_fd(index),
                                               o.via.array.ptr[1].as<bool>(),
                                               o.via.array.ptr[2].as<bool>());
      return o;
    }
  };
  }  // namespace adaptor
}
}  // namespace msgpack
