// TLS for aio streams (Python's ssl.SSLContext), with OpenSSL underneath:
// a TlsContext holds the settings and the loaded certificates; pass it to
// open_connection(host, port, tls), start_server(..., tls) or
// StreamWriter::start_tls(). Verification and host-name checking are on by
// default for clients, as with ssl.create_default_context().
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/socket.hpp"

namespace celeriac::aio {

/// A TLS failure (Python's ssl.SSLError): what() names the operation, the
/// peer and OpenSSL's reason ("TLS handshake with 127.0.0.1:443 failed: ...").
class TlsError : public OSError {
 public:
  /// An error described by `what`.
  explicit TlsError(const std::string& what) : OSError(0, what) {}
};

/// The peer's certificate was refused (ssl.SSLCertVerificationError).
/// verify_code() is OpenSSL's X509_V_ERR_* value, reason() its text.
class CertificateVerifyError : public TlsError {
 public:
  /// `what` for the message, OpenSSL's `code` and its `reason` text.
  CertificateVerifyError(const std::string& what, long code, std::string reason)
      : TlsError(what), code_(code), reason_(std::move(reason)) {}
  /// OpenSSL's verification result (X509_V_ERR_...).
  long verify_code() const noexcept { return code_; }
  /// OpenSSL's text for verify_code() ("certificate has expired").
  const std::string& reason() const noexcept { return reason_; }

 private:
  long code_;
  std::string reason_;
};

/// The certificate chain does not lead to a trusted CA (unknown issuer,
/// self-signed, wrong CA file).
class CertificateUntrustedError : public CertificateVerifyError {
 public:
  /// Same arguments as CertificateVerifyError.
  using CertificateVerifyError::CertificateVerifyError;
};

/// The certificate is valid but not for the host name (or IP) we connected to.
class HostnameMismatchError : public CertificateVerifyError {
 public:
  /// Same arguments as CertificateVerifyError.
  using CertificateVerifyError::CertificateVerifyError;
};

/// The certificate (or one in its chain) has expired or is not yet valid.
class CertificateExpiredError : public CertificateVerifyError {
 public:
  /// Same arguments as CertificateVerifyError.
  using CertificateVerifyError::CertificateVerifyError;
};

/// How the peer's certificate is checked (ssl.CERT_NONE / OPTIONAL / REQUIRED).
enum class TlsVerify {
  none,      ///< not asked for (server) / not checked (client): encryption only
  optional,  ///< server: asked for, checked when presented; client: as required
             ///< without the host-name check
  required,  ///< must be presented and valid
};

/// Settings of a TlsContext. Empty strings mean "not set".
struct TlsOptions {
  /// Peer verification; unset = the side's default (client: required,
  /// server: none, i.e. no client certificates asked for).
  std::optional<TlsVerify> verify;
  /// Client: the server's certificate must name the host we connect to
  /// (ssl's check_hostname). Ignored unless verify is required.
  bool check_hostname = true;
  /// PEM file of trusted CAs (cafile). With neither ca_file nor ca_path,
  /// the system's trust store is used.
  std::string ca_file;
  /// Directory of hashed CA certificates (capath, `openssl rehash`).
  std::string ca_path;
  /// Our certificate chain, PEM (server: required; client: a client certificate).
  std::string cert_file;
  /// The private key of cert_file, PEM; empty = in cert_file.
  std::string key_file;
  /// ALPN protocols ("h2", "http/1.1"): offered by a client, accepted by a
  /// server in its own order of preference. Empty = no ALPN.
  std::vector<std::string> alpn;
  /// Bound of the handshake (asyncio's ssl_handshake_timeout, 60 s); nullopt = none.
  std::optional<Duration> handshake_timeout = std::chrono::seconds(60);
};

namespace detail {
struct TlsContextImpl;
}

/// Loaded TLS settings (ssl.SSLContext): certificates read and checked once,
/// shared by every connection made with it. Copies share the context.
/// Thread-safe to share; immutable after creation.
class TlsContext {
 public:
  /// An empty context (valid() false); use client() or server().
  TlsContext() = default;
  /// A client context (ssl.create_default_context()): verifies the server
  /// and its host name unless `options` say otherwise. TlsError naming the
  /// file when a CA, certificate or key cannot be loaded.
  static TlsContext client(TlsOptions options = {});
  /// A server context: options.cert_file (and key_file) are required;
  /// set verify to required to demand client certificates (signed by
  /// ca_file/ca_path). TlsError naming the file on a bad certificate or key.
  static TlsContext server(TlsOptions options);

  /// True for a server context.
  bool is_server() const;
  /// The options it was made with.
  const TlsOptions& options() const;
  /// The OpenSSL SSL_CTX* (for code that needs more of OpenSSL).
  void* native_handle() const;
  /// False for a default-constructed (empty) context.
  bool valid() const noexcept { return static_cast<bool>(impl_); }

 private:
  explicit TlsContext(std::shared_ptr<detail::TlsContextImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::TlsContextImpl> impl_;
};

/// What was negotiated on a TLS stream (ssl.SSLObject's accessors).
struct TlsInfo {
  std::string version;       ///< "TLSv1.3"
  std::string cipher;        ///< "TLS_AES_256_GCM_SHA384"
  std::string alpn;          ///< the protocol ALPN chose ("" when none)
  std::string peer_subject;  ///< the peer certificate's subject ("" when none), RFC 2253
};

}  // namespace celeriac::aio
