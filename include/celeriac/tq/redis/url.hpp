// redis:// URLs as kombu and redis-py accept them.
#pragma once

#include <string>
#include <string_view>

namespace celeriac::tq::redis {

/// A parsed `redis://[[user]:password@]host[:port][/db]` URL (query
/// parameters are accepted and ignored, as kombu's transport options are
/// given separately). A bad URL throws UrlError quoting it.
struct Url {
  std::string host = "127.0.0.1";  ///< host name or address (IPv6 in brackets in the URL)
  int port = 6379;                 ///< TCP port
  int db = 0;                      ///< database number (SELECT)
  std::string username;            ///< ACL user (Redis 6+); empty = default user
  std::string password;            ///< AUTH password; empty = no AUTH

  /// Parses `url`; throws UrlError naming what is wrong.
  static Url parse(std::string_view url);
  /// The URL back as text with the password masked ("redis://:***@h:p/db").
  std::string str() const;
  /// "host:port", for error messages.
  std::string address() const;
};

}  // namespace celeriac::tq::redis
