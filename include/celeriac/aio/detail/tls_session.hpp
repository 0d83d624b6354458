// One TLS connection over a non-blocking fd (an OpenSSL SSL object), with no
// I/O waiting of its own: each call does what it can and says whether it
// needs the fd readable or writable before being tried again. aio streams
// drive it from the event loop (FdWatch); tq's Redis connection drives it
// with poll() and deadlines. One place turns OpenSSL's errors into
// TlsError / CertificateVerifyError subclasses.
#pragma once

#include <cstddef>
#include <string>

#include "celeriac/aio/tls.hpp"

namespace celeriac::aio::detail {

/// What a TlsSession call needs next.
enum class TlsWant {
  none,   ///< done (bytes moved, or the handshake finished)
  read,   ///< retry once the fd is readable
  write,  ///< retry once the fd is writable
  eof,    ///< the peer closed the TLS session (close_notify or plain EOF)
};

/// Outcome of TlsSession::read/write: bytes moved (0 unless want == none).
struct TlsIo {
  std::size_t bytes = 0;
  TlsWant want = TlsWant::none;
};

class TlsSession {
 public:
  /// A client (`ctx` is a client context; `server_hostname` is sent as SNI
  /// unless it is an IP address, and checked against the certificate when
  /// the context verifies host names) or server session over `fd` (not
  /// owned). `where` names the peer in errors.
  TlsSession(const TlsContext& ctx, int fd, std::string server_hostname, std::string where);
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  ~TlsSession();

  /// Advances the handshake: none when finished. Throws the classified
  /// error (CertificateVerifyError subclasses, TlsError, OSError).
  TlsWant handshake();
  /// Decrypts up to n bytes into buf. want eof at the end of the session.
  TlsIo read(char* buf, std::size_t n);
  /// Encrypts and sends up to n bytes; may take fewer (partial writes).
  /// After want read/write, call again with the same first bytes.
  TlsIo write(const char* data, std::size_t n);
  /// Sends close_notify (once, best effort, never waits).
  void shutdown() noexcept;
  /// True once handshake() returned none.
  bool established() const noexcept { return established_; }
  /// What was negotiated (valid after the handshake).
  TlsInfo info() const;
  /// The peer as named in errors.
  const std::string& where() const noexcept { return where_; }

 private:
  [[noreturn]] void fail(const char* op, int ret);
  void* ssl_ = nullptr;  // SSL*
  TlsContext ctx_;       // keeps the SSL_CTX alive
  std::string host_;
  std::string where_;
  bool established_ = false;
  bool shut_ = false;
};

}  // namespace celeriac::aio::detail
