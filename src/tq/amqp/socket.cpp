// amqp[s]:// endpoints and their sockets.
#include "celeriac/tq/amqp/detail/socket.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <charconv>
#include <mutex>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::amqp::detail {

namespace {

timeval to_timeval(std::chrono::milliseconds ms) {
  if (ms.count() < 0) ms = std::chrono::milliseconds(0);
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

[[noreturn]] void bad_option(const Url& url, const std::string& key, const std::string& value,
                             const std::string& expected) {
  throw ConfigError("bad AMQP URL '" + url.redacted() + "': " + key + "='" + value + "' " +
                    expected);
}

bool bool_option(const Url& url, const std::string& key, bool fallback) {
  std::string v = url.param(key);
  if (v.empty()) return fallback;
  if (v == "true" || v == "1" || v == "yes" || v == "True") return true;
  if (v == "false" || v == "0" || v == "no" || v == "False") return false;
  bad_option(url, key, v, "is not a boolean (true/false)");
}

// redis-py / Celery's spellings of ssl.CERT_*.
bool verify_option(const Url& url) {
  std::string v = url.param("ssl_cert_reqs");
  if (v.empty() || v == "required" || v == "CERT_REQUIRED") return true;
  if (v == "none" || v == "CERT_NONE") return false;
  bad_option(url, "ssl_cert_reqs", v, "must be required or none (CERT_REQUIRED, CERT_NONE)");
}

TlsOptions tls_options(const Url& url) {
  TlsOptions t;
  t.enabled = url.scheme == "amqps";
  if (!t.enabled) return t;
  t.verify_peer = verify_option(url);
  t.verify_hostname = t.verify_peer && bool_option(url, "ssl_check_hostname", true);
  t.ca_certs = url.param("ssl_ca_certs");
  t.certfile = url.param("ssl_certfile");
  t.keyfile = url.param("ssl_keyfile");
  if (!t.keyfile.empty() && t.certfile.empty())
    throw ConfigError("bad AMQP URL '" + url.redacted() +
                      "': ssl_keyfile given without ssl_certfile");
  return t;
}

// OpenSSL's reason for the last failure on this thread ("certificate verify
// failed", ...), or "".
std::string openssl_reason() {
  unsigned long e = 0, last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (!last) return {};
  const char* r = ERR_reason_error_string(last);
  return r ? r : "";
}

// Why OpenSSL refused the broker's certificate during this thread's last
// handshake (X509_V_OK when it did not): the handshake error itself only says
// "certificate verify failed".
thread_local int last_verify_error = X509_V_OK;

int record_verify_error(int ok, X509_STORE_CTX* store) {
  if (!ok && last_verify_error == X509_V_OK) last_verify_error = X509_STORE_CTX_get_error(store);
  return ok;
}

std::string configure_tls(amqp_socket_t* socket, const Endpoint& ep) {
  const TlsOptions& t = ep.tls;
  amqp_ssl_socket_set_verify_peer(socket, t.verify_peer);
  // rabbitmq-c's own host check reads DNS names only; OpenSSL's, set on the
  // context, also matches an IP address against the certificate's IP names.
  amqp_ssl_socket_set_verify_hostname(socket, false);
  auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
  // rabbitmq-c sets no verify callback of its own, so the store's is called.
  if (ctx) X509_STORE_set_verify_cb(SSL_CTX_get_cert_store(ctx), record_verify_error);
  if (t.verify_hostname) {
    X509_VERIFY_PARAM* param = ctx ? SSL_CTX_get0_param(ctx) : nullptr;
    bool is_ip = X509_VERIFY_PARAM_set1_ip_asc(param, ep.host.c_str()) == 1;
    if (!param || (!is_ip && X509_VERIFY_PARAM_set1_host(param, ep.host.c_str(), 0) != 1))
      return "cannot set up host name verification for '" + ep.host + "'";
  }
  if (t.ca_certs.empty()) {
    if (t.verify_peer && ctx && SSL_CTX_set_default_verify_paths(ctx) != 1)
      return "cannot load the system's CA certificates";
  } else {
    struct stat st {};
    bool is_dir = ::stat(t.ca_certs.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    int ok = is_dir ? (ctx ? SSL_CTX_load_verify_locations(ctx, nullptr, t.ca_certs.c_str()) : 0)
                    : (amqp_ssl_socket_set_cacert(socket, t.ca_certs.c_str()) == AMQP_STATUS_OK);
    if (ok != 1) return "cannot read ssl_ca_certs '" + t.ca_certs + "' (" + openssl_reason() + ")";
  }
  if (!t.certfile.empty()) {
    const std::string& key = t.keyfile.empty() ? t.certfile : t.keyfile;
    if (amqp_ssl_socket_set_key(socket, t.certfile.c_str(), key.c_str()) != AMQP_STATUS_OK)
      return "cannot read ssl_certfile '" + t.certfile + "' / ssl_keyfile '" + key + "' (" +
             openssl_reason() + ")";
  }
  return {};
}

// What a failed TLS connect means, in the user's terms.
std::string tls_failure(int status, const Endpoint& ep) {
  std::string reason = openssl_reason();
  std::string where = "TLS handshake with " + ep.host + ":" + std::to_string(ep.port) + " failed";
  switch (last_verify_error) {
    case X509_V_OK:
      break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return where + ": certificate verify failed: the broker's certificate is not valid for '" +
             ep.host + "' (connect with a name it was issued for, or ssl_check_hostname=false)";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return where + ": certificate verify failed: the broker's certificate has expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return where + ": certificate verify failed: the broker's certificate is not yet valid";
    default:
      return where +
             ": certificate verify failed: " + X509_verify_cert_error_string(last_verify_error) +
             " (is it signed by a CA in ssl_ca_certs" +
             (ep.tls.ca_certs.empty() ? std::string(" (the system's)")
                                      : " '" + ep.tls.ca_certs + "'") +
             "?)";
  }
  if (status == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED ||
      reason.find("hostname") != std::string::npos)
    return where + ": the broker's certificate does not name host '" + ep.host + "'";
  if (status == AMQP_STATUS_SSL_PEER_VERIFY_FAILED || reason == "certificate verify failed")
    return where + ": certificate verify failed (signed by a CA not in ssl_ca_certs" +
           (ep.tls.ca_certs.empty() ? std::string() : " '" + ep.tls.ca_certs + "'") +
           ", expired, or not issued for '" + ep.host + "')";
  return where + ": " + (reason.empty() ? amqp_error_string2(status) : reason) +
         " (is this port a TLS listener?)";
}

}  // namespace

Endpoint Endpoint::from_url(const Url& url) {
  Endpoint e;
  e.tls = tls_options(url);
  if (e.tls.enabled) e.port = 5671;
  // The certificate names the host as written; plain connections skip the
  // resolver's ::1 for localhost.
  if (!url.host.empty())
    e.host = url.host == "localhost" && !e.tls.enabled ? "127.0.0.1" : url.host;
  if (url.port) e.port = url.port;
  if (!url.user.empty()) e.user = url.user;
  if (!url.password.empty() || !url.user.empty()) e.password = url.password;
  if (!url.path.empty()) e.vhost = url.path;
  e.redacted = url.redacted();
  if (std::string v = url.param("heartbeat"); !v.empty()) {
    unsigned out = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), out);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || out > 65535)
      bad_option(url, "heartbeat", v, "is not a number of seconds in [0, 65535]");
    e.heartbeat = static_cast<std::uint16_t>(out);
  }
  return e;
}

std::string open_socket(amqp_connection_state_t state, const Endpoint& ep) {
  amqp_socket_t* socket = nullptr;
  if (ep.tls.enabled) {
    // rabbitmq-c initialises OpenSSL itself; its error queue is per thread.
    ERR_clear_error();
    last_verify_error = X509_V_OK;
    socket = amqp_ssl_socket_new(state);
    if (!socket) return "cannot create a TLS socket (" + openssl_reason() + ")";
    if (std::string why = configure_tls(socket, ep); !why.empty()) return why;
  } else {
    socket = amqp_tcp_socket_new(state);
    if (!socket) return "cannot create a TCP socket";
  }
  timeval tv = to_timeval(ep.connect_timeout);
  int status = amqp_socket_open_noblock(socket, ep.host.c_str(), ep.port, &tv);
  if (status == AMQP_STATUS_OK) return {};
  if (ep.tls.enabled && status <= AMQP_STATUS_SSL_ERROR && status > _AMQP_STATUS_SSL_NEXT_VALUE)
    return tls_failure(status, ep);
  return "cannot connect to " + ep.host + ":" + std::to_string(ep.port) + ": " +
         amqp_error_string2(status);
}

}  // namespace celeriac::tq::amqp::detail
