// TlsContext and TlsSession: OpenSSL's SSL_CTX and SSL, non-blocking.
#include "celeriac/aio/tls.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "celeriac/aio/detail/tls_session.hpp"

namespace celeriac::aio {
namespace detail {

struct TlsContextImpl {
  SSL_CTX* ctx = nullptr;
  TlsOptions options;
  bool server = false;
  std::string alpn_wire;  // length-prefixed protocol list, as OpenSSL wants it
  ~TlsContextImpl() { SSL_CTX_free(ctx); }
};

namespace {

// OpenSSL's queued errors as one line (and the queue cleared).
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void context_error(const std::string& what) {
  throw TlsError("TLS context: " + what + ": " + openssl_errors());
}

std::string alpn_wire(const std::vector<std::string>& protocols) {
  std::string wire;
  for (const auto& p : protocols) {
    if (p.empty() || p.size() > 255)
      throw std::invalid_argument("TLS ALPN protocol '" + p + "' must be 1 to 255 bytes");
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  return wire;
}

// Server side of ALPN: the first of our protocols the client offers.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto* impl = static_cast<const TlsContextImpl*>(arg);
  unsigned char* chosen = nullptr;
  const auto* ours = reinterpret_cast<const unsigned char*>(impl->alpn_wire.data());
  if (SSL_select_next_proto(&chosen, outlen, ours, static_cast<unsigned>(impl->alpn_wire.size()),
                            in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // no common protocol: go on without ALPN
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

void load_trust(SSL_CTX* ctx, const TlsOptions& o) {
  if (o.ca_file.empty() && o.ca_path.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) context_error("cannot load the system CAs");
    return;
  }
  const char* file = o.ca_file.empty() ? nullptr : o.ca_file.c_str();
  const char* path = o.ca_path.empty() ? nullptr : o.ca_path.c_str();
  if (SSL_CTX_load_verify_locations(ctx, file, path) != 1)
    context_error("cannot load CA certificates from '" + (file ? o.ca_file : o.ca_path) + "'");
}

void load_identity(SSL_CTX* ctx, const TlsOptions& o) {
  if (o.cert_file.empty()) {
    if (!o.key_file.empty()) throw TlsError("TLS context: key_file given without cert_file");
    return;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, o.cert_file.c_str()) != 1)
    context_error("cannot load the certificate '" + o.cert_file + "'");
  const std::string& key = o.key_file.empty() ? o.cert_file : o.key_file;
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
    context_error("cannot use the private key '" + key + "' with the certificate '" + o.cert_file +
                  "'");
  if (SSL_CTX_check_private_key(ctx) != 1)
    context_error("the private key '" + key + "' does not match the certificate '" + o.cert_file +
                  "'");
}

std::shared_ptr<TlsContextImpl> make_context(TlsOptions o, bool server) {
  auto impl = std::make_shared<TlsContextImpl>();
  impl->server = server;
  impl->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!impl->ctx) context_error("SSL_CTX_new failed");
  SSL_CTX* ctx = impl->ctx;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No renegotiation: a write then never has to wait for a read. A peer that
  // closes without close_notify is an EOF (as most servers do), not an error.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes, and a retried write may come from a moved buffer (the
  // stream's write buffer compacts itself).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Read ahead: one recv() takes every record that is there, instead of a
  // header read and a body read per record. Safe because every reader tries
  // SSL_read first and waits for the fd only when OpenSSL says WANT_READ
  // (its buffer holds no whole record).
  SSL_CTX_set_read_ahead(ctx, 1);
  TlsVerify verify = o.verify.value_or(server ? TlsVerify::none : TlsVerify::required);
  o.verify = verify;
  int mode = SSL_VERIFY_NONE;
  if (verify != TlsVerify::none) {
    mode = SSL_VERIFY_PEER;
    if (server && verify == TlsVerify::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    load_trust(ctx, o);
  }
  // On a client, optional verifies as required does (as Python's
  // CERT_OPTIONAL); only the host-name check is reserved to required.
  SSL_CTX_set_verify(ctx, mode, nullptr);
  load_identity(ctx, o);
  if (server && o.cert_file.empty())
    throw TlsError("TLS server context: cert_file (the server's certificate) is required");
  impl->alpn_wire = alpn_wire(o.alpn);
  if (!impl->alpn_wire.empty()) {
    if (server) {
      SSL_CTX_set_alpn_select_cb(ctx, select_alpn, impl.get());
    } else if (SSL_CTX_set_alpn_protos(
                   ctx, reinterpret_cast<const unsigned char*>(impl->alpn_wire.data()),
                   static_cast<unsigned>(impl->alpn_wire.size())) != 0) {
      context_error("cannot set the ALPN protocols");
    }
  }
  impl->options = std::move(o);
  return impl;
}

// OpenSSL's socket BIO writes with write(2): a peer gone away would raise
// SIGPIPE and kill the program. Ours sends with MSG_NOSIGNAL (as the plain
// streams do); the rest is the socket BIO's behaviour.
struct SocketBio {
  int fd;
  bool eof = false;
};

int bio_write(BIO* b, const char* data, std::size_t n, std::size_t* written) {
  auto* sb = static_cast<SocketBio*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t r = ::send(sb->fd, data, n, MSG_NOSIGNAL);
  if (r >= 0) {
    *written = static_cast<std::size_t>(r);
    return 1;
  }
  if (errno == EAGAIN || errno == EINTR) BIO_set_retry_write(b);
  return 0;
}

int bio_read(BIO* b, char* buf, std::size_t n, std::size_t* got) {
  auto* sb = static_cast<SocketBio*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t r = ::recv(sb->fd, buf, n, 0);
  if (r > 0) {
    *got = static_cast<std::size_t>(r);
    return 1;
  }
  if (r == 0) {
    sb->eof = true;
  } else if (errno == EAGAIN || errno == EINTR) {
    BIO_set_retry_read(b);
  }
  return 0;
}

long bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_EOF:
      return static_cast<SocketBio*>(BIO_get_data(b))->eof ? 1 : 0;
    default:
      return 0;
  }
}

int bio_destroy(BIO* b) {
  delete static_cast<SocketBio*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "celeriac socket");
    if (!m) throw std::bad_alloc();
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_destroy(m, bio_destroy);
    return m;
  }();
  return method;
}

BIO* socket_bio(int fd) {
  BIO* b = BIO_new(socket_bio_method());
  if (!b) throw std::bad_alloc();
  BIO_set_data(b, new SocketBio{fd});
  BIO_set_init(b, 1);
  return b;
}

bool is_ip_address(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

// ------------------------------------------------------------ TlsSession

TlsSession::TlsSession(const TlsContext& ctx, int fd, std::string server_hostname,
                       std::string where)
    : ctx_(ctx), host_(std::move(server_hostname)), where_(std::move(where)) {
  if (!ctx.valid()) throw InvalidStateError("TLS: empty TlsContext");
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx.native_handle()));
  if (!ssl) throw TlsError("TLS with " + where_ + ": SSL_new failed: " + openssl_errors());
  ssl_ = ssl;
  BIO* bio = socket_bio(fd);
  SSL_set_bio(ssl, bio, bio);  // the SSL owns it now
  if (ctx.is_server()) {
    SSL_set_accept_state(ssl);
    return;
  }
  SSL_set_connect_state(ssl);
  const TlsOptions& o = ctx.options();
  bool ip = is_ip_address(host_);
  if (!host_.empty() && !ip) SSL_set_tlsext_host_name(ssl, host_.c_str());  // SNI
  if (o.verify == TlsVerify::required && o.check_hostname) {
    if (host_.empty())
      throw std::invalid_argument("TLS with " + where_ +
                                  ": check_hostname needs a server_hostname");
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host_.c_str())
                : SSL_set1_host(ssl, host_.c_str());
    if (ok != 1)
      throw TlsError("TLS with " + where_ + ": cannot check the host name '" + host_ +
                     "': " + openssl_errors());
  }
}

TlsSession::~TlsSession() {
  SSL_free(static_cast<SSL*>(ssl_));
}

void TlsSession::fail(const char* op, int ret) {
  SSL* ssl = static_cast<SSL*>(ssl_);
  shut_ = true;  // after a fatal error OpenSSL forbids SSL_shutdown
  int err = SSL_get_error(ssl, ret);
  int sys_errno = errno;
  long verify = SSL_get_verify_result(ssl);
  std::string head = std::string("TLS ") + op + " with " + where_ + " failed: ";
  if (err == SSL_ERROR_SSL && verify != X509_V_OK && !established_) {
    ERR_clear_error();
    std::string reason = X509_verify_cert_error_string(verify);
    std::string what = head + "certificate verify failed: " + reason;
    switch (verify) {
      case X509_V_ERR_HOSTNAME_MISMATCH:
      case X509_V_ERR_IP_ADDRESS_MISMATCH:
        throw HostnameMismatchError(what + " (the certificate is not valid for '" + host_ + "')",
                                    verify, reason);
      case X509_V_ERR_CERT_HAS_EXPIRED:
      case X509_V_ERR_CERT_NOT_YET_VALID:
        throw CertificateExpiredError(what, verify, reason);
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      case X509_V_ERR_CERT_UNTRUSTED:
        throw CertificateUntrustedError(what + " (not signed by a trusted CA)", verify, reason);
      default:
        throw CertificateVerifyError(what, verify, reason);
    }
  }
  if (err == SSL_ERROR_SYSCALL) {
    std::string queued = ERR_peek_error() ? openssl_errors() : std::string();
    if (sys_errno != 0 && queued.empty())
      throw_os_error(sys_errno, std::string("TLS ") + op + " with", where_);
    throw TlsError(head + (queued.empty() ? "connection closed by the peer" : queued));
  }
  throw TlsError(head + openssl_errors());
}

TlsWant TlsSession::handshake() {
  SSL* ssl = static_cast<SSL*>(ssl_);
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(ssl);
  if (r == 1) {
    established_ = true;
    return TlsWant::none;
  }
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return TlsWant::read;
    case SSL_ERROR_WANT_WRITE:
      return TlsWant::write;
    default:
      fail("handshake", r);
  }
}

TlsIo TlsSession::read(char* buf, std::size_t n) {
  SSL* ssl = static_cast<SSL*>(ssl_);
  ERR_clear_error();
  errno = 0;
  std::size_t got = 0;
  int r = SSL_read_ex(ssl, buf, n, &got);
  if (r == 1) return {got, TlsWant::none};
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return {0, TlsWant::read};
    case SSL_ERROR_WANT_WRITE:
      return {0, TlsWant::write};
    case SSL_ERROR_ZERO_RETURN:
      return {0, TlsWant::eof};
    case SSL_ERROR_SYSCALL:
      if (errno == 0 && ERR_peek_error() == 0) return {0, TlsWant::eof};
      [[fallthrough]];
    default:
      fail("read", r);
  }
}

TlsIo TlsSession::write(const char* data, std::size_t n) {
  SSL* ssl = static_cast<SSL*>(ssl_);
  ERR_clear_error();
  errno = 0;
  std::size_t put = 0;
  int r = SSL_write_ex(ssl, data, n, &put);
  if (r == 1) return {put, TlsWant::none};
  switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return {0, TlsWant::read};
    case SSL_ERROR_WANT_WRITE:
      return {0, TlsWant::write};
    default:
      fail("write", r);
  }
}

void TlsSession::shutdown() noexcept {
  if (shut_ || !established_) return;
  shut_ = true;
  ERR_clear_error();
  SSL_shutdown(static_cast<SSL*>(ssl_));  // sends close_notify if the socket takes it
  ERR_clear_error();
}

TlsInfo TlsSession::info() const {
  SSL* ssl = static_cast<SSL*>(ssl_);
  TlsInfo i;
  i.version = SSL_get_version(ssl);
  if (const char* c = SSL_get_cipher_name(ssl)) i.cipher = c;
  const unsigned char* alpn = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &len);
  if (alpn) i.alpn.assign(reinterpret_cast<const char*>(alpn), len);
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    BIO* bio = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char* p = nullptr;
    long l = BIO_get_mem_data(bio, &p);
    if (p && l > 0) i.peer_subject.assign(p, static_cast<std::size_t>(l));
    BIO_free(bio);
  }
  return i;
}

}  // namespace detail

// ------------------------------------------------------------ TlsContext

TlsContext TlsContext::client(TlsOptions options) {
  return TlsContext(detail::make_context(std::move(options), false));
}

TlsContext TlsContext::server(TlsOptions options) {
  return TlsContext(detail::make_context(std::move(options), true));
}

bool TlsContext::is_server() const {
  return impl_ && impl_->server;
}

const TlsOptions& TlsContext::options() const {
  if (!impl_) throw InvalidStateError("TlsContext: empty (default-constructed)");
  return impl_->options;
}

void* TlsContext::native_handle() const {
  return impl_ ? impl_->ctx : nullptr;
}

}  // namespace celeriac::aio
