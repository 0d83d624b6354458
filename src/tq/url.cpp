#include "celeriac/tq/url.hpp"

#include <algorithm>
#include <cctype>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {
namespace {

// `text` with the password of its userinfo replaced by "***". Finds the
// userinfo exactly as Url::parse does (the last '@' of the authority, the
// first ':' before it), so a password containing '@' or ':' stays hidden.
std::string redact_userinfo(std::string_view text) {
  auto sep = text.find("://");
  if (sep == std::string_view::npos) return std::string(text);
  std::size_t start = sep + 3;
  std::size_t end = text.find_first_of("/?", start);
  if (end == std::string_view::npos) end = text.size();
  auto at = text.substr(start, end - start).rfind('@');
  if (at == std::string_view::npos) return std::string(text);
  at += start;
  auto colon = text.substr(start, at - start).find(':');
  if (colon == std::string_view::npos || colon + start + 1 == at) return std::string(text);
  colon += start;
  return std::string(text.substr(0, colon + 1)) + "***" + std::string(text.substr(at));
}

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw ConfigError(
      "bad URL '" + redact_userinfo(text) + "': " + why +
      " (expected e.g. memory://, sqlite:///path/to/file.db, redis://[:password@]host:port/db)");
}

std::string pct_decode(std::string_view s, std::string_view whole) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        bad(whole, "invalid percent escape");
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// A port number 1..65535 (both host forms, plain and [IPv6], use this).
int parse_port(std::string_view digits, std::string_view whole) {
  std::string port(digits);
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit))
    bad(whole, "port '" + port + "' must be a number");
  int value = std::stoi(port);
  if (value <= 0 || value > 65535) bad(whole, "port " + port + " out of range 1-65535");
  return value;
}

}  // namespace

Url Url::parse(std::string_view text) {
  Url u;
  u.text = std::string(text);
  auto sep = text.find("://");
  if (sep == std::string_view::npos || sep == 0) bad(text, "missing 'scheme://'");
  for (char c : text.substr(0, sep)) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.')
      bad(text, "invalid character in scheme");
    u.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  std::string_view rest = text.substr(sep + 3);
  std::string_view query;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) u.path = pct_decode(rest.substr(slash + 1), text);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = authority.substr(0, at);
    authority = authority.substr(at + 1);
    auto colon = cred.find(':');
    u.user = pct_decode(cred.substr(0, colon), text);
    if (colon != std::string_view::npos) u.password = pct_decode(cred.substr(colon + 1), text);
  }
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) bad(text, "unterminated '[' in host");
    host = authority.substr(1, close - 1);
    authority = authority.substr(close + 1);
    if (!authority.empty() && authority.front() != ':') bad(text, "junk after ']'");
    if (!authority.empty()) {
      authority.remove_prefix(1);
      host = std::string_view(host);
      u.port = parse_port(authority, text);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    u.port = parse_port(authority.substr(colon + 1), text);
  }
  u.host = pct_decode(host, text);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    auto eq = kv.find('=');
    std::string key = pct_decode(kv.substr(0, eq), text);
    std::string value = eq == std::string_view::npos ? "" : pct_decode(kv.substr(eq + 1), text);
    if (!key.empty()) u.query[key] = value;
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return u;
}

std::string Url::param(const std::string& key, const std::string& fallback) const {
  auto it = query.find(key);
  return it == query.end() ? fallback : it->second;
}

std::string Url::redacted() const {
  if (password.empty()) return text;
  return redact_userinfo(text);
}

}  // namespace celeriac::tq
