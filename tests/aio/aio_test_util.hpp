// Helpers shared by the aio tests.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio::testing {

/// Loop options with the virtual clock: timers fire as soon as every task
/// sleeps, so timer tests are fast and exact.
inline LoopOptions vclock() {
  LoopOptions o;
  o.virtual_clock = true;
  return o;
}

/// Runs f(loop) (a coroutine taking the loop) to completion on a new loop
/// with the virtual clock, and returns its result.
template <class F>
auto run_v(F f) {
  EventLoop loop(vclock());
  return loop.run_until_complete(f(loop));
}

/// Whether this host can bind ::1 for sockets of `type` (some containers
/// have no IPv6 loopback).
inline bool have_ipv6_loopback(int type = SOCK_STREAM) {
  int fd = ::socket(AF_INET6, type, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace celeriac::aio::testing
