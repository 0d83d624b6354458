// Name resolution that does not block the loop: getaddrinfo runs on a worker
// thread and the awaiting task resumes on the loop.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "celeriac/aio/socket.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// getaddrinfo failed (Python's socket.gaierror): gai_code() is the EAI_*
/// value; errno_value() is set for EAI_SYSTEM.
class GaiError : public OSError {
 public:
  /// getaddrinfo() failed with `gai_code` (EAI_*), `err` holding errno for EAI_SYSTEM.
  GaiError(int gai_code, int err, const std::string& what) : OSError(err, what), gai_(gai_code) {}
  /// The EAI_* code of the failure.
  int gai_code() const noexcept { return gai_; }

 private:
  int gai_;
};

/// Resolves host:port to addresses (IPv4 and IPv6 unless `family` is AF_INET
/// or AF_INET6) without blocking the loop. Numeric hosts return at once.
/// Cancellable: the worker thread's answer is then dropped. GaiError when
/// the name does not resolve.
Task<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port,
                                         int family = AF_UNSPEC, int socktype = SOCK_STREAM);

}  // namespace celeriac::aio
