// TLS on aio streams: the handshake driven by the loop, start_tls and the
// TLS forms of open_connection.
#include <string>

#include "celeriac/aio/detail/io_wait.hpp"
#include "celeriac/aio/detail/tls_session.hpp"
#include "celeriac/aio/streams.hpp"

namespace celeriac::aio {
namespace detail {

namespace {

std::string seconds_text(Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s";
}

// Checks that `st` can start TLS now; waits for its pending writes.
Task<void> prepare_for_tls(std::shared_ptr<StreamState> st) {
  if (!st->is_socket) throw InvalidStateError("start_tls on " + st->where + ": not a socket");
  if (st->tls) throw InvalidStateError("start_tls on " + st->where + ": already TLS");
  if (!st->rbuf.empty())
    throw InvalidStateError("start_tls on " + st->where + ": " + std::to_string(st->rbuf.size()) +
                            " unread bytes are buffered (read them first)");
  if (st->closing || st->want_eof)
    throw InvalidStateError("start_tls on " + st->where + ": the stream is closing");
  while (!st->wbuf.empty() && !st->write_error && !st->closed)
    co_await WaitListAwaiter(st->drain_waiters);
  if (st->write_error) std::rethrow_exception(st->write_error);
  if (st->closed) throw InvalidStateError("start_tls on " + st->where + ": the stream is closed");
}

// Steps the handshake until done; TimeoutError once `timed_out` was set by
// the timer (which closed the watch to wake us).
Task<void> drive_handshake(StreamState& st, const bool& timed_out, std::optional<Duration> limit) {
  for (;;) {
    TlsWant want = st.tls->handshake();
    if (want == TlsWant::none) co_return;
    // Two co_await statements, not one over a ?: of awaiters: g++ 12 keeps a
    // stray copy of that temporary across the suspension (ASan: the closed
    // watch's state used after free).
    bool ok;
    if (want == TlsWant::write)
      ok = co_await ReadyOrClosed(st.watch.writable());
    else
      ok = co_await ReadyOrClosed(st.watch.readable());
    if (!ok && timed_out)
      throw TimeoutError("TLS handshake with " + st.tls->where() + " timed out after " +
                         seconds_text(*limit));
    if (!ok) throw TlsError("TLS handshake with " + st.tls->where() + ": the stream was closed");
  }
}

}  // namespace

Task<void> tls_handshake(std::shared_ptr<StreamState> st, TlsContext ctx,
                         std::string server_hostname) {
  if (!ctx.valid()) throw std::invalid_argument("start_tls: empty TlsContext");
  co_await prepare_for_tls(st);
  std::string where =
      server_hostname.empty() ? st->where : server_hostname + " (" + st->where + ")";
  std::optional<Duration> limit = ctx.options().handshake_timeout;
  bool timed_out = false;
  TimerHandle timer;
  struct CancelTimer {
    TimerHandle& t;
    ~CancelTimer() { t.cancel(); }
  } cancel_timer{timer};
  std::exception_ptr error;
  try {
    st->tls = std::make_unique<TlsSession>(ctx, st->fd, std::move(server_hostname), where);
    st->drained = false;
    if (limit) {
      timer = st->loop->call_later(*limit, [&timed_out, s = st.get()] {
        timed_out = true;
        s->watch.close();
      });
    }
    co_await drive_handshake(*st, timed_out, limit);
  } catch (...) {
    error = std::current_exception();  // CancelledError too
  }
  if (error) {
    // No half-made TLS stream is left behind: close it, nothing pending.
    st->closing = true;
    st->aborted = true;
    st->finish_close();
    std::rethrow_exception(error);
  }
}

}  // namespace detail

Task<void> StreamWriter::start_tls(TlsContext tls, std::string server_hostname) {
  auto keep = st_;
  st();  // InvalidStateError when empty
  co_await detail::tls_handshake(keep, std::move(tls), std::move(server_hostname));
}

bool StreamWriter::is_tls() const {
  return static_cast<bool>(st().tls);
}

TlsInfo StreamWriter::tls_info() const {
  auto& s = st();
  if (!s.tls || !s.tls->established())
    throw InvalidStateError("tls_info on " + s.where + ": not a TLS stream");
  return s.tls->info();
}

Task<Stream> open_connection(std::string host, std::uint16_t port, TlsContext tls,
                             std::optional<Duration> timeout, StreamOptions options,
                             std::string server_hostname) {
  if (!tls.valid()) throw std::invalid_argument("open_connection: empty TlsContext");
  if (tls.is_server())
    throw std::invalid_argument("open_connection to " + host +
                                ": a server TlsContext (use TlsContext::client)");
  Stream s = co_await open_connection(host, port, timeout, options);
  co_await s.writer.start_tls(std::move(tls), server_hostname.empty() ? host : server_hostname);
  co_return s;
}

}  // namespace celeriac::aio
