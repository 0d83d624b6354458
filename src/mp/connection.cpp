#include "celeriac/mp/connection.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace celeriac::mp {

namespace {
detail::Clock::time_point deadline_of(std::optional<Connection::Duration> timeout) {
  if (!timeout) return detail::Clock::time_point::max();
  return detail::Clock::now() + *timeout;
}
}  // namespace

Connection::Connection(int fd, bool readable, bool writable)
    : ch_(std::make_unique<detail::Channel>(fd)), readable_(readable), writable_(writable) {}

detail::Channel& Connection::open_channel(const char* op, bool want_write) {
  if (closed())
    throw ConnectionClosed(std::string("celeriac::mp::Connection::") + op + ": this end is closed");
  if (want_write && !writable_)
    throw InvalidStateError(std::string("celeriac::mp::Connection::") + op +
                            ": this end of a one-way Pipe only receives");
  if (!want_write && !readable_)
    throw InvalidStateError(std::string("celeriac::mp::Connection::") + op +
                            ": this end of a one-way Pipe only sends");
  return *ch_;
}

void Connection::send_frame(std::string_view payload, std::vector<int>& fds,
                            std::optional<Duration> timeout) {
  detail::Channel* ch;
  try {
    ch = &open_channel("send", true);
  } catch (...) {
    detail::close_fds(fds);
    throw;
  }
  ch->enqueue(detail::kData, 0, payload, {}, &fds);
  try {
    ch->send_all(deadline_of(timeout));
  } catch (const TimeoutError&) {
    throw TimeoutError(
        "celeriac::mp::Connection::send: the peer did not read in time (message of " +
        std::to_string(payload.size()) + " bytes still queued)");
  } catch (const ConnectionClosed&) {
    throw ConnectionClosed("celeriac::mp::Connection::send: the other end is closed");
  }
}

detail::Frame Connection::recv_frame(std::optional<Duration> timeout) {
  auto& ch = open_channel("recv", false);
  detail::Frame f;
  bool got;
  try {
    got = ch.recv_frame(f, deadline_of(timeout));
  } catch (const ConnectionClosed&) {
    throw ConnectionClosed(
        "celeriac::mp::Connection::recv: the other end is closed (end of stream)");
  }
  if (!got) throw TimeoutError("celeriac::mp::Connection::recv: no message within the timeout");
  return f;
}

void Connection::send_bytes(std::string_view bytes) {
  std::vector<int> none;
  send_frame(bytes, none, std::nullopt);
}
void Connection::send_bytes(std::string_view bytes, Duration timeout) {
  std::vector<int> none;
  send_frame(bytes, none, timeout);
}
std::string Connection::recv_bytes() {
  return recv_frame(std::nullopt).take_body();
}
std::string Connection::recv_bytes(Duration timeout) {
  return recv_frame(timeout).take_body();
}

bool Connection::poll(Duration timeout) {
  auto& ch = open_channel("poll", false);
  auto deadline = detail::Clock::now() + timeout;
  for (;;) {
    if (ch.frame_ready()) return true;
    if (!ch.fill()) return true;  // end of stream: recv reports it at once
    if (ch.frame_ready()) return true;
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - detail::Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{ch.fd(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
    if (r == 0) return false;
  }
}

void Connection::close() noexcept {
  if (ch_) ch_->close();
}

std::pair<Connection, Connection> Pipe(bool duplex) {
  int sv[2];
  detail::make_socketpair(sv);
  if (!duplex) {
    ::shutdown(sv[0], SHUT_WR);
    ::shutdown(sv[1], SHUT_RD);
    return {Connection(sv[0], true, false), Connection(sv[1], false, true)};
  }
  return {Connection(sv[0]), Connection(sv[1])};
}

}  // namespace celeriac::mp
