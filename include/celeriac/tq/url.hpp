// Broker and result-backend URLs: memory://, sqlite:///path.db, redis://...
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace celeriac::tq {

/// A parsed URL `scheme://[user[:password]@]host[:port]/path?k=v&...`.
struct Url {
  std::string text;      ///< the URL as given (for error messages)
  std::string scheme;    ///< lower-case, e.g. "sqlite", "redis", "memory"
  std::string user;      ///< percent-decoded
  std::string password;  ///< percent-decoded
  std::string host;      ///< "" when absent
  int port = 0;          ///< 0 when absent
  std::string path;      ///< after the authority, without the leading '/'
                         ///< (sqlite:////abs.db -> "/abs.db", sqlite:///rel.db -> "rel.db")
  std::map<std::string, std::string> query;  ///< percent-decoded query parameters

  /// Parses `text`; throws ConfigError quoting it and saying what is expected.
  static Url parse(std::string_view text);
  /// Query parameter `key`, or `fallback`.
  std::string param(const std::string& key, const std::string& fallback = {}) const;
  /// The URL with any password replaced by "***" (safe to log).
  std::string redacted() const;
};

}  // namespace celeriac::tq
