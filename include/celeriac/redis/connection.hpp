// A Redis connection: hiredis' RESP reader and command formatter over a
// socket we own (non-blocking, poll with deadlines, TCP_NODELAY), with TLS
// (OpenSSL, through aio's TLS session code) for rediss:// URLs.
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/reply.hpp"
#include "celeriac/redis/url.hpp"

namespace celeriac::redis {

using Duration = std::chrono::steady_clock::duration;

/// A rediss:// connection failed its TLS handshake: the server's certificate
/// was refused (untrusted CA, wrong host name, expired: the message says
/// which), ours was, or the server does not speak TLS there. Not retried by
/// connect_with_retry: it will not get better by waiting.
class TlsError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};

/// Timeouts of a connection.
struct ConnectOptions {
  /// TCP connect + TLS handshake (rediss://) + AUTH + SELECT.
  Duration connect_timeout = std::chrono::seconds(5);
  /// Default bound of every command's write and reply read.
  Duration io_timeout = std::chrono::seconds(10);
};

/// A batch of commands formatted up front and sent in one write; their
/// replies are read back in order (pipelining). Reusable after clear().
class Pipeline {
 public:
  /// Appends one command (each argument binary-safe).
  Pipeline& add(std::initializer_list<std::string_view> args);
  /// Appends one command from a vector of arguments.
  Pipeline& add(const std::vector<std::string>& args);
  /// Number of commands queued.
  size_t size() const { return count_; }
  /// True when no command is queued.
  bool empty() const { return count_ == 0; }
  /// Forgets every queued command.
  void clear() {
    buffer_.clear();
    count_ = 0;
  }
  /// The formatted RESP bytes (for the connection).
  const std::string& bytes() const { return buffer_; }

 private:
  void add_argv(size_t argc, const char** argv, const size_t* lens);
  std::string buffer_;
  size_t count_ = 0;
};

/// One connection to a Redis server. Not thread-safe: one user at a time
/// (callers give each thread of work its own connection, or a pool).
/// Every I/O error closes it (is_open() turns false) and throws
/// ConnectionError / TimeoutError / ProtocolError naming the server; an
/// error *reply* throws ReplyError and leaves it open.
///
/// The socket code is confined to a small transport object so the same
/// protocol code can later run over celeriac::aio streams.
class Connection {
 public:
  /// Connects (with connect_timeout), then AUTH and SELECT as the URL says.
  static Connection connect(const Url& url, ConnectOptions opts = {});
  /// Same, from a redis:// URL string.
  static Connection connect(std::string_view url, ConnectOptions opts = {});

  /// Connections move (the socket goes with them).
  Connection(Connection&&) noexcept;
  /// Closes this connection's socket and takes the other's.
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  /// Sends one command and returns its reply; an error reply throws ReplyError.
  Reply command(std::initializer_list<std::string_view> args);
  /// Same, from a vector of arguments.
  Reply command(const std::vector<std::string>& args);
  /// Same with an explicit reply timeout (for blocking commands such as BRPOP).
  Reply command_timeout(Duration timeout, std::initializer_list<std::string_view> args);

  /// Sends every command of `p` in one write and reads their replies in
  /// order. Error replies are returned, not thrown.
  std::vector<Reply> execute(const Pipeline& p);
  /// MULTI + `p` + EXEC in one round trip. Returns EXEC's replies, or
  /// nullopt when a WATCHed key changed (EXEC returned nil). Throws
  /// ReplyError if a command was rejected when queued (EXECABORT).
  std::optional<std::vector<Reply>> transaction(const Pipeline& p);

  /// Low level: queues already formatted commands for sending.
  void send(const Pipeline& p);
  /// Low level: reads the next reply, waiting at most `timeout` (default:
  /// io_timeout). Returns nullopt on timeout only when `allow_timeout` —
  /// used by pub/sub listeners, where no message is not an error; otherwise
  /// a timeout throws TimeoutError and closes the connection.
  std::optional<Reply> read_reply(std::optional<Duration> timeout = std::nullopt,
                                  bool allow_timeout = false);
  /// True when a complete reply is already buffered (no I/O needed).
  bool reply_buffered();

  /// True until an I/O error or close().
  bool is_open() const;
  /// Closes the socket (idempotent).
  void close();
  /// The server URL (password masked), for messages.
  std::string describe() const;
  /// The URL this connection was made from.
  const Url& url() const;
  /// The options it was made with.
  const ConnectOptions& options() const;

 private:
  struct Impl;
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Exponential backoff for reconnecting: initial, doubled up to max.
struct Backoff {
  Duration initial = std::chrono::milliseconds(50);  ///< first pause
  Duration max = std::chrono::seconds(2);            ///< longest pause
  /// The pause before attempt `n` (0-based).
  Duration delay(int attempt) const;
};

/// Connects, retrying with `backoff` until `deadline`; rethrows the last
/// ConnectionError / TimeoutError when the deadline passes, and TlsError or an
/// AUTH/SELECT refusal at once.
Connection connect_with_retry(const Url& url, std::chrono::steady_clock::time_point deadline,
                              ConnectOptions opts = {}, Backoff backoff = {});

}  // namespace celeriac::redis
