#include "celeriac/redis/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "celeriac/redis/errors.hpp"

namespace celeriac::redis {

namespace {

// The URL with the password (between "://user:" and "@") masked.
std::string masked(std::string_view url) {
  std::string s(url);
  auto scheme = s.find("://");
  auto at = s.rfind('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return s;
  auto colon = s.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) colon = scheme + 2;  // "redis://secret@host"
  return s.substr(0, colon + 1) + "***" + s.substr(at);
}

[[noreturn]] void bad(std::string_view url, const std::string& why) {
  throw UrlError("bad Redis URL '" + masked(url) + "': " + why +
                 " (expected redis[s]://[[user]:password@]host[:port][/db][?ssl_cert_reqs=...])");
}

std::string percent_decode(std::string_view s, std::string_view url) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) bad(url, "truncated %-escape");
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec != std::errc() || r.ptr != s.data() + i + 3) bad(url, "bad %-escape");
      out.push_back(static_cast<char>(v));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

int parse_int(std::string_view s, std::string_view url, const char* what, int lo, int hi) {
  int v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || v < lo || v > hi)
    bad(url, std::string(what) + " '" + std::string(s) + "' is not a number in [" +
                 std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// redis-py's spellings: "required", "CERT_REQUIRED", "optional", "none"...
CertReqs parse_cert_reqs(const std::string& v, std::string_view url) {
  std::string l = lower(v);
  if (l.rfind("cert_", 0) == 0) l = l.substr(5);
  if (l == "required") return CertReqs::required;
  if (l == "optional") return CertReqs::optional;
  if (l == "none") return CertReqs::none;
  bad(url,
      "ssl_cert_reqs='" + v + "' is not one of required, optional, none (or CERT_REQUIRED...)");
}

bool parse_bool(const std::string& key, const std::string& v, std::string_view url) {
  std::string l = lower(v);
  if (l == "true" || l == "1" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "0" || l == "no" || l == "off") return false;
  bad(url, key + "='" + v + "' is not a boolean (true/false)");
}

// The query string as key -> value (percent-decoded).
std::map<std::string, std::string> parse_query(std::string_view q, std::string_view url) {
  std::map<std::string, std::string> out;
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view item = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (item.empty()) continue;
    auto eq = item.find('=');
    std::string key = percent_decode(item.substr(0, eq), url);
    out[key] =
        eq == std::string_view::npos ? std::string() : percent_decode(item.substr(eq + 1), url);
  }
  return out;
}

}  // namespace

void Url::apply_tls_options(std::string_view scheme,
                            const std::map<std::string, std::string>& query,
                            const std::string& url_for_errors) {
  tls = scheme == "rediss";
  tls_settings = TlsSettings{};
  auto get = [&](const char* key) -> const std::string* {
    auto it = query.find(key);
    return it == query.end() ? nullptr : &it->second;
  };
  if (auto v = get("ssl_cert_reqs")) tls_settings.cert_reqs = parse_cert_reqs(*v, url_for_errors);
  if (auto v = get("ssl_ca_certs")) tls_settings.ca_certs = *v;
  if (auto v = get("ssl_certfile")) tls_settings.certfile = *v;
  if (auto v = get("ssl_keyfile")) tls_settings.keyfile = *v;
  if (auto v = get("ssl_check_hostname"))
    tls_settings.check_hostname = parse_bool("ssl_check_hostname", *v, url_for_errors);
  if (!tls_settings.keyfile.empty() && tls_settings.certfile.empty())
    bad(url_for_errors, "ssl_keyfile given without ssl_certfile");
}

Url Url::parse(std::string_view url) {
  Url u;
  std::string_view scheme;
  if (url.substr(0, 8) == "redis://") scheme = "redis";
  if (url.substr(0, 9) == "rediss://") scheme = "rediss";
  if (scheme.empty()) bad(url, "scheme must be redis:// or rediss://");
  std::string_view rest = url.substr(scheme.size() + 3);
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  u.apply_tls_options(scheme, parse_query(query, url), masked(url));
  std::string_view authority = rest;
  std::string_view path;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      u.username = percent_decode(userinfo.substr(0, colon), url);
      u.password = percent_decode(userinfo.substr(colon + 1), url);
    } else {
      // redis-py: "redis://secret@host" means the password
      u.password = percent_decode(userinfo, url);
    }
  }
  if (!authority.empty()) {
    std::string_view host = authority;
    std::string_view port;
    if (authority.front() == '[') {
      auto close = authority.find(']');
      if (close == std::string_view::npos) bad(url, "unclosed '[' in IPv6 host");
      host = authority.substr(1, close - 1);
      auto after = authority.substr(close + 1);
      if (!after.empty()) {
        if (after.front() != ':') bad(url, "junk after IPv6 host");
        port = after.substr(1);
      }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (!host.empty()) u.host = std::string(host);
    if (!port.empty() || authority.back() == ':') u.port = parse_int(port, url, "port", 1, 65535);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (!path.empty()) u.db = parse_int(path, url, "database number", 0, 1 << 20);
  return u;
}

std::string Url::address() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::str() const {
  std::string auth;
  if (!password.empty() || !username.empty())
    auth = username + ":" + (password.empty() ? "" : "***") + "@";
  return std::string(tls ? "rediss://" : "redis://") + auth + address() + "/" + std::to_string(db);
}

}  // namespace celeriac::redis
