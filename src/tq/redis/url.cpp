#include "celeriac/tq/redis/url.hpp"

#include <charconv>

#include "celeriac/tq/redis/errors.hpp"

namespace celeriac::tq::redis {

namespace {

[[noreturn]] void bad(std::string_view url, const std::string& why) {
  throw UrlError("bad Redis URL '" + std::string(url) + "': " + why +
                 " (expected redis://[[user]:password@]host[:port][/db])");
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

}  // namespace

Url Url::parse(std::string_view url) {
  Url u;
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) bad(url, "scheme must be redis://");
  std::string_view rest = url.substr(scheme.size());
  if (auto q = rest.find('?'); q != std::string_view::npos) rest = rest.substr(0, q);
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
  return "redis://" + auth + address() + "/" + std::to_string(db);
}

}  // namespace celeriac::tq::redis
