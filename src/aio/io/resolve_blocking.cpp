// getaddrinfo wrapper used by aio::resolve() on a worker thread.
#include <netdb.h>

#include "celeriac/aio/detail/io_resolve.hpp"
#include "celeriac/aio/dns.hpp"

namespace celeriac::aio::detail {

std::vector<SocketAddress> resolve_blocking(const std::string& host, std::uint16_t port, int family,
                                            int socktype) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  // Loopback names must resolve even on a host with no configured address
  // of that family, so skip AI_ADDRCONFIG for them.
  if (host == "localhost" || host.empty()) hints.ai_flags &= ~AI_ADDRCONFIG;
  std::string service = std::to_string(port);
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0) {
    int err = rc == EAI_SYSTEM ? errno : 0;
    std::string msg = "cannot resolve '" + host + "' port " + service + ": " + ::gai_strerror(rc);
    throw GaiError(rc, err, msg);
  }
  std::vector<SocketAddress> out;
  for (addrinfo* p = res; p != nullptr; p = p->ai_next) {
    SocketAddress a(p->ai_addr, p->ai_addrlen);
    bool dup = false;
    for (const auto& b : out) dup = dup || b == a;
    if (!dup) out.push_back(a);
  }
  ::freeaddrinfo(res);
  return out;
}

}  // namespace celeriac::aio::detail
