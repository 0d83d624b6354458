// Socket addresses (IPv4, IPv6, Unix) and the OS errors of the aio I/O layer,
// named like Python's OSError subclasses.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/error.hpp"

namespace celeriac::aio {

/// An error reported by the operating system (Python's OSError): errno() is
/// the errno value, what() says which operation failed, on what address.
class OSError : public Error {
 public:
  /// A system call failed with errno `err`; `what` names the operation and address.
  OSError(int err, const std::string& what) : Error(what), errno_(err) {}
  /// The errno value of the failed call.
  int errno_value() const noexcept { return errno_; }

 private:
  int errno_;
};

/// Base of the connection errors (Python's ConnectionError).
class ConnectionError : public OSError {
 public:
  /// OSError's constructors.
  using OSError::OSError;
};

/// Nothing listens at the address (ECONNREFUSED).
class ConnectionRefusedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

/// The peer reset the connection (ECONNRESET), e.g. closed it with SO_LINGER 0.
class ConnectionResetError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

/// Writing to a connection or pipe whose other end is closed (EPIPE).
class BrokenPipeError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

/// Throws the OSError subclass that matches `err`, with message
/// "<op> <where>: <strerror>".
[[noreturn]] void throw_os_error(int err, std::string_view op, std::string_view where = {});

/// Address family of a SocketAddress.
enum class Family { unspecified, ipv4, ipv6, unix_path };

/// A socket address of any family we use: IPv4, IPv6 or a Unix socket path
/// (a leading '@' names an abstract Unix socket).
class SocketAddress {
 public:
  /// The unspecified address (family() == Family::unspecified).
  SocketAddress() = default;
  /// Copies a raw address of `len` bytes.
  SocketAddress(const sockaddr* addr, socklen_t len);

  /// Parses a numeric IPv4 or IPv6 host ("127.0.0.1", "::1", "[::1]",
  /// "fe80::1%lo") with a port; throws std::invalid_argument naming the text
  /// when it is not a numeric address (use resolve() for names).
  static SocketAddress parse(std::string_view host, std::uint16_t port);
  /// Parses "host:port", "[v6]:port" or "unix:/path".
  static SocketAddress parse(std::string_view host_and_port);
  /// An IPv4 address from a numeric host; throws std::invalid_argument.
  static SocketAddress ipv4(std::string_view host, std::uint16_t port);
  /// An IPv6 address from a numeric host; throws std::invalid_argument.
  static SocketAddress ipv6(std::string_view host, std::uint16_t port);
  /// A Unix socket path ('@' first: abstract); throws std::invalid_argument
  /// when it is empty or longer than sun_path.
  static SocketAddress unix_path(std::string_view path);

  /// The address family.
  Family family() const noexcept;
  /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
  int native_family() const noexcept { return static_cast<int>(storage_.ss_family); }
  /// The numeric host ("127.0.0.1", "::1"); the path for Unix sockets.
  std::string host() const;
  /// The port (0 for Unix sockets).
  std::uint16_t port() const noexcept;
  /// "127.0.0.1:80", "[::1]:80", "unix:/path" ("unix:@name" abstract).
  std::string to_string() const;

  /// The raw address for syscalls.
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  /// The address as a sockaddr, for system calls.
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&storage_); }
  /// Length of the raw address.
  socklen_t size() const noexcept { return len_; }
  /// Capacity for calls that fill the address (accept, recvfrom).
  static constexpr socklen_t capacity() noexcept { return sizeof(sockaddr_storage); }
  /// Sets the length after a call filled data().
  void set_size(socklen_t len) noexcept { len_ = len; }

  /// Whether both hold the same address.
  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

}  // namespace celeriac::aio
