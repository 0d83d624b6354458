// The blocking half of aio::resolve(): getaddrinfo, run on a worker thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "celeriac/aio/socket.hpp"

namespace celeriac::aio::detail {

/// getaddrinfo(host, port) for stream sockets of `family` (AF_UNSPEC, AF_INET
/// or AF_INET6), deduplicated, in the resolver's order. Throws aio::GaiError.
std::vector<SocketAddress> resolve_blocking(const std::string& host, std::uint16_t port, int family,
                                            int socktype);

}  // namespace celeriac::aio::detail
