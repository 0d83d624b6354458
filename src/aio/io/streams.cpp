// StreamReader / StreamWriter / open_connection.
#include "celeriac/aio/streams.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "celeriac/aio/detail/io_wait.hpp"
#include "celeriac/aio/detail/tls_session.hpp"
#include "celeriac/aio/dns.hpp"

namespace celeriac::aio {

IncompleteReadError::IncompleteReadError(std::string partial, std::size_t expected,
                                         const std::string& where)
    : Error(std::to_string(partial.size()) + " bytes read on a total of " +
            (expected ? std::to_string(expected) + " expected bytes" : std::string("undefined")) +
            " before EOF from " + where),
      partial_(std::move(partial)),
      expected_(expected) {}

namespace detail {

StreamState::StreamState(EventLoop& l, int f, bool sock, StreamOptions o)
    : loop(&l), fd(f), is_socket(sock), watch(l, f), opts(o) {
  if (opts.low_water > opts.high_water) opts.low_water = opts.high_water;
  if (is_socket) {
    SocketAddress a;
    socklen_t len = SocketAddress::capacity();
    if (::getpeername(fd, a.data(), &len) == 0) {
      a.set_size(len);
      peer = a;
    }
    len = SocketAddress::capacity();
    SocketAddress b;
    if (::getsockname(fd, b.data(), &len) == 0) {
      b.set_size(len);
      local = b;
    }
    where = peer.family() == Family::unspecified ? "fd " + std::to_string(fd) : peer.to_string();
  } else {
    where = "pipe fd " + std::to_string(fd);
  }
}

StreamState::~StreamState() {
  watch.close();
  if (!closed && fd >= 0) ::close(fd);
}

bool StreamState::fill() {
  if (read_error) std::rethrow_exception(read_error);
  if (eof || closed) {
    eof = true;
    return true;
  }
  if (tls) return fill_tls();
  if (drained) {
    drained = false;
    return false;
  }
  // Read straight into the buffer's free space (at least 16 KiB of it).
  std::size_t want = std::max<std::size_t>(16 * 1024, rbuf.tail_room());
  char* p = rbuf.prepare(want);
  for (;;) {
    ssize_t n = ::read(fd, p, want);
    if (n > 0) {
      rbuf.commit(static_cast<std::size_t>(n));
      // A short read drained the fd: the next edge will tell of more data,
      // so the next fill() waits for it instead of a read failing with
      // EAGAIN (one syscall per message saved). Not after a hang-up: a
      // FIN/RST that came with the data's edge raises no new edge.
      if (static_cast<std::size_t>(n) < want && !watch.hup_seen()) drained = true;
      return true;
    }
    if (n == 0) {
      eof = true;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return false;
    int err = errno;
    try {
      throw_os_error(err, err == ECONNRESET ? "connection reset by" : "read from", where);
    } catch (...) {
      read_error = std::current_exception();
      eof = true;
      throw;
    }
  }
}

// TLS never uses `drained`: OpenSSL may hold a whole record while the fd is
// empty, so only its WANT_READ (it met EAGAIN) means "wait for an edge".
bool StreamState::fill_tls() {
  constexpr std::size_t kWant = 16 * 1024;  // a TLS record's plaintext at most
  char* p = rbuf.prepare(kWant);
  detail::TlsIo io;
  try {
    io = tls->read(p, kWant);
  } catch (...) {
    read_error = std::current_exception();
    eof = true;
    throw;
  }
  tls_read_wants_write = io.want == TlsWant::write;
  switch (io.want) {
    case TlsWant::none:
      rbuf.commit(io.bytes);
      return true;
    case TlsWant::eof:
      eof = true;
      return true;
    default:
      return false;
  }
}

bool StreamState::flush_tls() noexcept {
  while (!wbuf.empty() && !write_error) {
    auto v = wbuf.view();
    try {
      auto io = tls->write(v.data(), v.size());
      if (io.want != TlsWant::none) return false;
      wbuf.consume(io.bytes);
    } catch (...) {
      write_error = std::current_exception();
      wbuf.consume(wbuf.size());
    }
  }
  return true;
}

void StreamState::flush_some() noexcept {
  if (tls) {
    flush_tls();
    if (wbuf.empty()) wbuf.shrink_if_empty(1 << 20);
    return;
  }
  while (!wbuf.empty() && !write_error) {
    auto v = wbuf.view();
    ssize_t n =
        is_socket ? ::send(fd, v.data(), v.size(), MSG_NOSIGNAL) : ::write(fd, v.data(), v.size());
    if (n >= 0) {
      wbuf.consume(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return;
    int err = errno;
    try {
      throw_os_error(err, err == EPIPE ? "broken pipe writing to" : "write to", where);
    } catch (...) {
      write_error = std::current_exception();
    }
    wbuf.consume(wbuf.size());
  }
  if (wbuf.empty()) wbuf.shrink_if_empty(1 << 20);
}

void StreamState::write(std::string_view data) {
  if (closing || want_eof)
    throw InvalidStateError("StreamWriter::write after " +
                            std::string(closing ? "close()" : "write_eof()") + " on " + where);
  if (write_error || data.empty()) return;
  if (wbuf.empty() && tls) {
    // Fast path as below; a write that must wait is retried from wbuf with
    // the same first bytes, as OpenSSL requires.
    try {
      while (!data.empty()) {
        auto io = tls->write(data.data(), data.size());
        if (io.want != TlsWant::none) break;
        data.remove_prefix(io.bytes);
      }
    } catch (...) {
      write_error = std::current_exception();
      return;
    }
    if (data.empty()) return;
  } else if (wbuf.empty()) {
    // Fast path: straight from the caller's bytes, no copy.
    for (;;) {
      ssize_t n = is_socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL)
                            : ::write(fd, data.data(), data.size());
      if (n >= 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        if (data.empty()) return;
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      int err = errno;
      try {
        throw_os_error(err, err == EPIPE ? "broken pipe writing to" : "write to", where);
      } catch (...) {
        write_error = std::current_exception();
      }
      return;
    }
  }
  wbuf.append(data);
  ensure_flusher();
}

void StreamState::ensure_flusher() {
  if (flushing || wbuf.empty()) return;
  flushing = true;
  // The flusher holds a reference: the state lives until the bytes are out.
  loop->spawn(flusher(std::shared_ptr<StreamState>(self.lock())), "stream flusher");
}

void StreamState::finish_close() noexcept {
  if (closed) return;
  closed = true;
  eof = true;
  watch.close();                                         // a reader waiting resumes and sees EOF
  if (tls && !aborted && !write_error) tls->shutdown();  // close_notify, best effort
  if (fd >= 0) ::close(fd);
  wbuf.consume(wbuf.size());
  wake_all(drain_waiters);
  wake_all(close_waiters);
}

void StreamState::send_eof() noexcept {
  if (closed) return;
  if (tls)
    tls->shutdown();  // TLS's EOF; reading goes on (TLS 1.3 half-close)
  else
    ::shutdown(fd, SHUT_WR);
}

Task<void> flusher(std::shared_ptr<StreamState> st) {
  struct Done {
    StreamState* s;
    ~Done() {
      s->flushing = false;
      wake_all(s->drain_waiters);
      if (s->closing || s->write_error) {
        if (s->closing) s->finish_close();
      } else if (s->want_eof && s->wbuf.empty() && s->is_socket) {
        s->send_eof();
      }
    }
  } done{st.get()};
  while (!st->wbuf.empty() && !st->write_error && !st->closed) {
    bool ok = co_await ReadyOrClosed(st->watch.writable());
    if (!ok) break;
    st->flush_some();
    if (st->wbuf.size() <= st->opts.low_water) wake_all(st->drain_waiters);
  }
}

}  // namespace detail

// ---- StreamReader ----

detail::StreamState& StreamReader::st() const {
  if (!st_) throw InvalidStateError("StreamReader: empty (default-constructed or moved-from)");
  return *st_;
}

namespace {

// Waits for the next edge; false if the stream was closed meanwhile. A TLS
// read may need to send first (a key update's answer): then writability,
// unless the flusher already waits for it and will retry the read's cause.
detail::ReadyOrClosed readable(detail::StreamState& s) {
  if (s.tls_read_wants_write && !s.flushing) return detail::ReadyOrClosed(s.watch.writable());
  return detail::ReadyOrClosed(s.watch.readable());
}

}  // namespace

Task<std::string> StreamReader::read(std::size_t n) {
  auto keep = st_;
  auto& s = st();
  if (s.read_error) std::rethrow_exception(s.read_error);  // as asyncio
  if (n == 0) co_return std::string();
  for (;;) {
    if (!s.rbuf.empty()) co_return s.rbuf.take(std::min(n, s.rbuf.size()));
    if (s.eof) {
      if (s.read_error) std::rethrow_exception(s.read_error);
      co_return std::string();
    }
    if (s.fill()) continue;
    if (!co_await readable(s)) s.eof = true;
  }
}

Task<std::size_t> StreamReader::read_into(char* buf, std::size_t n) {
  auto keep = st_;
  auto& s = st();
  if (s.read_error) std::rethrow_exception(s.read_error);  // as asyncio
  if (n == 0) co_return 0;
  for (;;) {
    if (!s.rbuf.empty()) {
      std::size_t k = std::min(n, s.rbuf.size());
      std::memcpy(buf, s.rbuf.view().data(), k);
      s.rbuf.consume(k);
      co_return k;
    }
    if (s.eof) {
      if (s.read_error) std::rethrow_exception(s.read_error);
      co_return 0;
    }
    if (s.fill()) continue;
    if (!co_await readable(s)) s.eof = true;
  }
}

Task<std::string> StreamReader::read() {
  auto keep = st_;
  auto& s = st();
  if (s.read_error) std::rethrow_exception(s.read_error);  // as asyncio
  for (;;) {
    if (s.eof) {
      if (s.read_error) std::rethrow_exception(s.read_error);
      co_return s.rbuf.take(s.rbuf.size());
    }
    if (s.fill()) continue;
    if (!co_await readable(s)) s.eof = true;
  }
}

Task<std::string> StreamReader::read_exactly(std::size_t n) {
  auto keep = st_;
  auto& s = st();
  if (s.read_error) std::rethrow_exception(s.read_error);  // as asyncio
  for (;;) {
    if (s.rbuf.size() >= n) co_return s.rbuf.take(n);
    if (s.eof) {
      if (s.read_error) std::rethrow_exception(s.read_error);
      throw IncompleteReadError(s.rbuf.take(s.rbuf.size()), n, s.where);
    }
    if (s.fill()) continue;
    if (!co_await readable(s)) s.eof = true;
  }
}

Task<std::string> StreamReader::read_until(std::string separator) {
  auto keep = st_;
  auto& s = st();
  if (s.read_error) std::rethrow_exception(s.read_error);  // as asyncio
  if (separator.empty()) throw std::invalid_argument("read_until: empty separator");
  std::size_t offset = 0;  // bytes already searched
  for (;;) {
    auto v = s.rbuf.view();
    if (v.size() >= separator.size()) {
      auto pos = v.find(separator, offset);
      if (pos != std::string_view::npos) {
        if (pos > s.opts.limit)
          throw LimitOverrunError("separator found after " + std::to_string(pos) +
                                      " bytes, over the limit of " + std::to_string(s.opts.limit) +
                                      " (reading from " + s.where + ")",
                                  pos);
        co_return s.rbuf.take(pos + separator.size());
      }
      offset = v.size() - separator.size() + 1;
      if (offset > s.opts.limit)
        throw LimitOverrunError("separator not found in the first " + std::to_string(v.size()) +
                                    " bytes, over the limit of " + std::to_string(s.opts.limit) +
                                    " (reading from " + s.where + ")",
                                offset);
    }
    if (s.eof) {
      if (s.read_error) std::rethrow_exception(s.read_error);
      throw IncompleteReadError(s.rbuf.take(s.rbuf.size()), 0, s.where);
    }
    if (s.fill()) continue;
    if (!co_await readable(s)) s.eof = true;
  }
}

Task<std::string> StreamReader::readline() {
  auto keep = st_;
  auto& s = st();
  if (s.read_error) std::rethrow_exception(s.read_error);  // as asyncio
  try {
    co_return co_await read_until("\n");
  } catch (IncompleteReadError& e) {
    co_return e.partial();
  } catch (LimitOverrunError& e) {
    // As asyncio: drop the overlong line (through the separator if buffered).
    auto v = s.rbuf.view();
    auto pos = v.find('\n', e.consumed());
    s.rbuf.consume(pos == std::string_view::npos ? v.size() : pos + 1);
    throw;
  }
}

// ---- StreamWriter ----

detail::StreamState& StreamWriter::st() const {
  if (!st_) throw InvalidStateError("StreamWriter: empty (default-constructed or moved-from)");
  return *st_;
}

void StreamWriter::write(std::string_view data) {
  st().write(data);
}

void StreamWriter::writelines(const std::vector<std::string>& pieces) {
  for (const auto& p : pieces) st().write(p);
}

Task<void> StreamWriter::drain() {
  auto keep = st_;
  auto& s = st();
  if (s.write_error) std::rethrow_exception(s.write_error);
  if (s.wbuf.size() > s.opts.high_water) {
    while (s.wbuf.size() > s.opts.low_water && !s.write_error && !s.closed)
      co_await detail::WaitListAwaiter(s.drain_waiters);
    if (s.write_error) std::rethrow_exception(s.write_error);
  }
  // The peer reset the connection: a writer learns of it here (asyncio).
  if (s.read_error) std::rethrow_exception(s.read_error);
}

void StreamWriter::write_eof() {
  auto& s = st();
  if (s.closing || s.want_eof) return;
  if (!s.is_socket) {  // a pipe has no half-close: closing it is the EOF
    close();
    return;
  }
  s.want_eof = true;
  if (s.wbuf.empty()) s.send_eof();
}

void StreamWriter::close() {
  auto& s = st();
  if (s.closing) return;
  s.closing = true;
  if (s.wbuf.empty() || s.write_error) s.finish_close();
  // else the flusher closes once the bytes are out.
}

void StreamWriter::abort() {
  auto& s = st();
  s.closing = true;
  s.aborted = true;
  s.finish_close();
}

Task<void> StreamWriter::wait_closed() {
  auto keep = st_;
  auto& s = st();
  while (!s.closed) co_await detail::WaitListAwaiter(s.close_waiters);
}

void StreamWriter::set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low) {
  auto& s = st();
  s.opts.high_water = high;
  s.opts.low_water = std::min(high, low.value_or(high / 4));
}

// ---- connecting ----

namespace {

struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::shared_ptr<detail::StreamState> make_state(EventLoop& loop, int fd, bool is_socket,
                                                StreamOptions options) {
  auto st = std::make_shared<detail::StreamState>(loop, fd, is_socket, options);
  st->self = st;
  return st;
}

// Connects one address; TimeoutError when `deadline` passes first.
Task<std::shared_ptr<detail::StreamState>> connect_one(SocketAddress addr,
                                                       std::optional<TimePoint> deadline,
                                                       StreamOptions options) {
  EventLoop& loop = EventLoop::current();
  FdGuard g;
  g.fd = ::socket(addr.native_family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (g.fd < 0) throw_os_error(errno, "socket() for", addr.to_string());
  int rc;
  do {
    rc = ::connect(g.fd, addr.data(), addr.size());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno != EINPROGRESS && errno != EAGAIN)
    throw_os_error(errno, "connect to", addr.to_string());
  auto st = make_state(loop, g.release(), true, options);
  if (rc != 0) {
    // Wait for writability; a timer closes the watch at the deadline.
    bool timed_out = false;
    TimerHandle timer;
    if (deadline) {
      timer = loop.call_at(*deadline, [&timed_out, s = st.get()] {
        timed_out = true;
        s->watch.close();
      });
    }
    struct CancelTimer {
      TimerHandle& t;
      ~CancelTimer() { t.cancel(); }
    } cancel_timer{timer};
    for (;;) {
      bool ok = co_await detail::ReadyOrClosed(st->watch.writable());
      if (!ok || timed_out) throw TimeoutError("connect to " + addr.to_string() + " timed out");
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) throw_os_error(err, "connect to", addr.to_string());
      // Connected when the peer address is known (a spurious wake-up leaves
      // the connect in progress).
      sockaddr_storage ss;
      socklen_t sl = sizeof ss;
      if (::getpeername(st->fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) break;
    }
  }
  if (addr.family() != Family::unix_path) set_nodelay(st->fd);
  // Refresh the addresses now that the connection is up.
  socklen_t len = SocketAddress::capacity();
  SocketAddress local;
  if (::getsockname(st->fd, local.data(), &len) == 0) {
    local.set_size(len);
    st->local = local;
  }
  st->peer = addr;
  st->where = addr.to_string();
  co_return st;
}

}  // namespace

Stream make_stream(int fd, StreamOptions options) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) throw_os_error(errno, "make_stream: fcntl on fd", std::to_string(fd));
  ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  int type = 0;
  socklen_t len = sizeof type;
  bool is_socket = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
  auto st = make_state(EventLoop::current(), fd, is_socket, options);
  return Stream{StreamReader(st), StreamWriter(st)};
}

Task<Stream> open_connection(SocketAddress address, std::optional<Duration> timeout,
                             StreamOptions options) {
  std::optional<TimePoint> deadline;
  if (timeout) deadline = EventLoop::current().time() + *timeout;
  auto st = co_await connect_one(address, deadline, options);
  co_return Stream{StreamReader(st), StreamWriter(st)};
}

Task<Stream> open_connection(std::string host, std::uint16_t port, std::optional<Duration> timeout,
                             StreamOptions options) {
  EventLoop& loop = EventLoop::current();
  std::optional<TimePoint> deadline;
  if (timeout) deadline = loop.time() + *timeout;
  std::vector<SocketAddress> addrs = co_await resolve(host, port);
  std::exception_ptr last;
  for (const auto& a : addrs) {
    try {
      auto st = co_await connect_one(a, deadline, options);
      co_return Stream{StreamReader(st), StreamWriter(st)};
    } catch (const TimeoutError&) {
      throw TimeoutError("open_connection to " + host + ":" + std::to_string(port) + " timed out");
    } catch (const OSError&) {
      last = std::current_exception();
    }
  }
  if (last) std::rethrow_exception(last);
  throw OSError(0, "open_connection: '" + host + "' resolved to no address");
}

Task<Stream> open_unix_connection(std::string path, std::optional<Duration> timeout,
                                  StreamOptions options) {
  return open_connection(SocketAddress::unix_path(path), timeout, options);
}

}  // namespace celeriac::aio
