// redis:// and rediss:// (TLS) URLs as kombu and redis-py accept them.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace celeriac::redis {

/// How a rediss:// connection checks the server's certificate (redis-py's
/// ssl_cert_reqs: "required"/"CERT_REQUIRED", "optional", "none").
enum class CertReqs { none, optional, required };

/// The TLS settings of a rediss:// URL, from its query options spelled as
/// redis-py and Celery spell them. Empty strings mean "not set".
struct TlsSettings {
  CertReqs cert_reqs = CertReqs::required;  ///< ssl_cert_reqs (default: required)
  std::string ca_certs;  ///< ssl_ca_certs: PEM file of trusted CAs (default: the system's)
  std::string certfile;  ///< ssl_certfile: client certificate (PEM)
  std::string keyfile;   ///< ssl_keyfile: its private key (default: in certfile)
  /// ssl_check_hostname: the certificate must name the host (only with
  /// required). On by default here (redis-py defaults it off).
  bool check_hostname = true;
};

/// A parsed `redis[s]://[[user]:password@]host[:port][/db][?options]` URL.
/// For rediss:// the ssl_* query options fill `tls_settings`; other query
/// parameters are accepted and ignored (kombu's transport options are given
/// separately). A bad URL throws UrlError quoting it (password masked).
struct Url {
  std::string host = "127.0.0.1";  ///< host name or address (IPv6 in brackets in the URL)
  int port = 6379;                 ///< TCP port
  int db = 0;                      ///< database number (SELECT)
  std::string username;            ///< ACL user (Redis 6+); empty = default user
  std::string password;            ///< AUTH password; empty = no AUTH
  bool tls = false;                ///< rediss://: TLS to the server
  TlsSettings tls_settings;        ///< used when `tls`

  /// Parses `url`; throws UrlError naming what is wrong.
  static Url parse(std::string_view url);
  /// Sets `tls` from `scheme` ("redis" or "rediss") and `tls_settings` from
  /// the ssl_* entries of `query`; UrlError naming `url_for_errors` (which
  /// must not hold a password) on a bad value.
  void apply_tls_options(std::string_view scheme, const std::map<std::string, std::string>& query,
                         const std::string& url_for_errors);
  /// The URL back as text with the password masked ("redis://:***@h:p/db").
  std::string str() const;
  /// "host:port", for error messages.
  std::string address() const;
};

}  // namespace celeriac::redis
