// Streams as asyncio's: open_connection / open_unix_connection return a
// (StreamReader, StreamWriter) pair over a non-blocking socket registered
// once with the loop's epoll (edge triggered). Reads and writes try the
// syscall first and suspend only on EAGAIN. Loop thread only. With a
// TlsContext (open_connection(host, port, tls), start_server(..., tls),
// StreamWriter::start_tls) the same streams carry TLS (see tls.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "celeriac/aio/detail/io_buffer.hpp"
#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/fd_watch.hpp"
#include "celeriac/aio/socket.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/tls.hpp"

namespace celeriac::aio {

/// read_exactly()/read_until() hit EOF first (asyncio.IncompleteReadError):
/// partial() holds the bytes read, which are consumed from the stream.
class IncompleteReadError : public Error {
 public:
  /// EOF after `partial` of `expected` bytes (0: read_until), in `where`.
  IncompleteReadError(std::string partial, std::size_t expected, const std::string& where);
  /// The bytes that were read before EOF.
  const std::string& partial() const noexcept { return partial_; }
  /// How many bytes were wanted (0 for read_until).
  std::size_t expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::size_t expected_;
};

/// read_until() found no separator within the stream's limit
/// (asyncio.LimitOverrunError); the data stays in the buffer.
class LimitOverrunError : public Error {
 public:
  /// No separator within the limit; `consumed` bytes must be dropped to get past them.
  LimitOverrunError(const std::string& what, std::size_t consumed)
      : Error(what), consumed_(consumed) {}
  /// Bytes to consume to get past the data that did not match.
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

/// Settings of a stream.
struct StreamOptions {
  /// The most read_until()/readline() buffer without finding the separator
  /// (asyncio's limit, 64 KiB).
  std::size_t limit = 64 * 1024;
  /// drain() suspends while more than high_water bytes are unsent, until
  /// they fall to low_water (asyncio's defaults: 64 KiB and 16 KiB).
  std::size_t high_water = 64 * 1024;
  /// drain() resumes once unsent bytes fall to this.
  std::size_t low_water = 16 * 1024;
};

namespace detail {

class TlsSession;

/// What a StreamReader and its StreamWriter share: the fd, its epoll
/// registration and both buffers. Loop thread only.
struct StreamState {
  StreamState(EventLoop& loop, int fd, bool is_socket, StreamOptions opts);
  StreamState(const StreamState&) = delete;
  StreamState& operator=(const StreamState&) = delete;
  ~StreamState();

  EventLoop* loop;
  std::weak_ptr<StreamState> self;  // for the flusher's reference
  int fd;
  bool is_socket;
  FdWatch watch;
  StreamOptions opts;
  std::string where;  // the peer, for error messages
  SocketAddress peer, local;

  // read side
  ByteBuffer rbuf;
  bool eof = false;
  bool drained = false;  // last read was short: wait for the next edge
  std::exception_ptr read_error;

  // TLS (null for plain streams): reads and writes go through it.
  std::unique_ptr<TlsSession> tls;
  bool tls_read_wants_write = false;  // the last TLS read waits for writability
  bool aborted = false;               // abort(): no close_notify

  // write side
  ByteBuffer wbuf;
  std::exception_ptr write_error;
  bool flushing = false;  // a flusher task runs
  bool want_eof = false;  // write_eof() asked: shutdown(SHUT_WR) once flushed
  bool closing = false;   // close() asked
  bool closed = false;    // fd closed
  List drain_waiters;
  List close_waiters;

  /// Reads once into rbuf; false when it would block (or `drained` says so).
  /// Sets eof; throws (and records) the read error.
  bool fill();
  /// Sends from wbuf until EAGAIN; records write errors.
  void flush_some() noexcept;
  /// Queues bytes, sending at once when nothing is pending.
  void write(std::string_view data);
  /// Spawns the flusher when bytes are pending.
  void ensure_flusher();
  /// Closes the fd now (abort) or once flushed (close).
  void finish_close() noexcept;
  /// The write side's EOF once flushed: shutdown(SHUT_WR), or TLS close_notify.
  void send_eof() noexcept;

 private:
  bool fill_tls();
  bool flush_tls() noexcept;  // false: would block
};

Task<void> flusher(std::shared_ptr<StreamState> st);

/// Runs the TLS handshake on `st` (client or server as `ctx` is), bounded by
/// the context's handshake_timeout. On any failure or cancellation the
/// stream is aborted (closed, nothing left pending) and the error rethrown.
Task<void> tls_handshake(std::shared_ptr<StreamState> st, TlsContext ctx,
                         std::string server_hostname);

}  // namespace detail

/// The reading half of a stream (asyncio.StreamReader).
class StreamReader {
 public:
  StreamReader() = default;
  /// The reading half of stream `st` (internal: made by open_connection and servers).
  explicit StreamReader(std::shared_ptr<detail::StreamState> st) noexcept : st_(std::move(st)) {}

  /// Up to n bytes (at least 1 unless at EOF, then ""). n == 0 returns "".
  Task<std::string> read(std::size_t n);
  /// Everything until EOF (asyncio's read(-1)).
  Task<std::string> read();
  /// Exactly n bytes; IncompleteReadError (with the partial bytes) at EOF.
  Task<std::string> read_exactly(std::size_t n);
  /// Bytes up to and including `separator`; LimitOverrunError when more than
  /// the limit arrives without it (data kept), IncompleteReadError at EOF.
  Task<std::string> read_until(std::string separator = "\n");
  /// A line including "\n"; at EOF the rest (maybe ""); LimitOverrunError
  /// (the line is dropped, as asyncio) for a line over the limit.
  Task<std::string> readline();
  /// Reads into [buf, buf+n): returns the count, 0 at EOF. No allocation.
  Task<std::size_t> read_into(char* buf, std::size_t n);
  /// EOF seen and nothing buffered.
  bool at_eof() const { return st().eof && st().rbuf.empty(); }
  /// Bytes buffered and not yet returned.
  std::size_t buffered() const { return st().rbuf.size(); }
  /// The stream's limit for read_until.
  std::size_t limit() const { return st().opts.limit; }
  /// Whether it holds a stream.
  bool valid() const noexcept { return static_cast<bool>(st_); }

 private:
  detail::StreamState& st() const;
  std::shared_ptr<detail::StreamState> st_;
};

/// The writing half of a stream (asyncio.StreamWriter).
class StreamWriter {
 public:
  StreamWriter() = default;
  /// The writing half of stream `st` (internal: made by open_connection and servers).
  explicit StreamWriter(std::shared_ptr<detail::StreamState> st) noexcept : st_(std::move(st)) {}

  /// Queues bytes: sent at once if possible, the rest in the background.
  /// Never blocks; call drain() to respect the high-water mark.
  /// InvalidStateError after close() or write_eof(); an earlier connection
  /// error is raised by drain().
  void write(std::string_view data);
  /// write() of each piece.
  void writelines(const std::vector<std::string>& pieces);
  /// Waits while more than high_water bytes are unsent, until they fall to
  /// low_water; raises the connection error (ConnectionResetError,
  /// BrokenPipeError...) if sending failed.
  Task<void> drain();
  /// Closes the write side once everything is sent (shutdown(SHUT_WR)).
  void write_eof();
  /// Whether write_eof() is possible (sockets; not pipes, which close).
  bool can_write_eof() const { return st().is_socket; }
  /// Closes the stream once pending bytes are sent; reads then see EOF.
  void close();
  /// Closes now, dropping unsent bytes.
  void abort();
  /// Whether close() or abort() was called.
  bool is_closing() const { return st().closing; }
  /// Waits until the fd is closed (pending bytes sent or failed).
  Task<void> wait_closed();
  /// Unsent bytes.
  std::size_t write_buffer_size() const { return st().wbuf.size(); }
  /// Changes the drain() marks; low defaults to high / 4.
  void set_write_buffer_limits(std::size_t high, std::optional<std::size_t> low = std::nullopt);
  /// The peer's address (get_extra_info("peername")).
  const SocketAddress& peername() const { return st().peer; }
  /// Our address (get_extra_info("sockname")).
  const SocketAddress& sockname() const { return st().local; }
  /// The fd (get_extra_info("socket")); owned by the stream.
  int fd() const { return st().fd; }
  /// Whether it holds a stream.
  bool valid() const noexcept { return static_cast<bool>(st_); }

  /// Upgrades the connection to TLS (asyncio's StreamWriter.start_tls), e.g.
  /// after a STARTTLS exchange: waits for pending writes, then handshakes.
  /// `server_hostname` (client contexts) is sent as SNI and checked against
  /// the certificate. InvalidStateError when unread bytes are buffered or the
  /// stream is already TLS; on failure or cancellation the stream is aborted.
  Task<void> start_tls(TlsContext tls, std::string server_hostname = {});
  /// True once the stream carries TLS.
  bool is_tls() const;
  /// What TLS negotiated (version, cipher, ALPN, peer subject); InvalidStateError
  /// on a plain stream.
  TlsInfo tls_info() const;

 private:
  detail::StreamState& st() const;
  std::shared_ptr<detail::StreamState> st_;
};

/// A connected pair, as asyncio's open_connection returns.
struct Stream {
  /// The reading half.
  StreamReader reader;
  /// The writing half.
  StreamWriter writer;
  /// writer.start_tls(tls, server_hostname).
  Task<void> start_tls(TlsContext tls, std::string server_hostname = {}) {
    return writer.start_tls(std::move(tls), std::move(server_hostname));
  }
};

/// Connects over TCP: resolves `host` (numeric hosts without a thread),
/// tries each address in turn. ConnectionRefusedError (naming the address)
/// when nothing listens, TimeoutError after `timeout` (all attempts), OSError
/// or GaiError otherwise.
Task<Stream> open_connection(std::string host, std::uint16_t port,
                             std::optional<Duration> timeout = std::nullopt,
                             StreamOptions options = {});
/// Connects to a Unix socket path ('@name': abstract namespace).
Task<Stream> open_unix_connection(std::string path, std::optional<Duration> timeout = std::nullopt,
                                  StreamOptions options = {});
/// Connects to one address.
Task<Stream> open_connection(SocketAddress address, std::optional<Duration> timeout = std::nullopt,
                             StreamOptions options = {});

/// Connects over TCP, then TLS (asyncio.open_connection(host, port, ssl=ctx)):
/// `server_hostname` ("" = host) is sent as SNI and, when `tls` verifies
/// host names, must match the certificate. `timeout` bounds the TCP connect,
/// the context's handshake_timeout the handshake. Errors: those of the plain
/// open_connection, CertificateVerifyError (CertificateUntrustedError,
/// HostnameMismatchError, CertificateExpiredError), TlsError, TimeoutError.
Task<Stream> open_connection(std::string host, std::uint16_t port, TlsContext tls,
                             std::optional<Duration> timeout = std::nullopt,
                             StreamOptions options = {}, std::string server_hostname = {});

/// Wraps a connected non-blocking socket (taken over: the stream closes it).
Stream make_stream(int fd, StreamOptions options = {});

}  // namespace celeriac::aio
