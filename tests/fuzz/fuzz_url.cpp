// Fuzz target: broker and backend URLs (memory, sqlite, redis, rediss, amqp)
// through the generic parser and the Redis one. Properties: a bad URL throws
// ConfigError / UrlError; a password never appears in redacted() or str().
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/url.hpp"
#include "celeriac/tq/url.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;
namespace redis = celeriac::redis;
using celeriac::fuzz::check;

namespace {

// The password is hidden when it is long enough not to occur by chance in
// the rest of the URL: it must not be shown unless the URL's text holds it
// twice (e.g. also as part of the host) or the parsed fields hold it.
bool hidden(const std::string& shown, const std::string& password, const std::string& rest,
            std::string_view text) {
  if (password.size() < 6 || rest.find(password) != std::string::npos) return true;
  if (text.find(password) != text.rfind(password)) return true;
  // A password with a '*' in it can be rebuilt from the masked text
  // ("u:***" when the password is "<end of u>:*"): not a leak.
  if (password.find('*') != std::string::npos) return true;
  return shown.find(password) == std::string::npos;
}

// The heuristic above cannot tell a shown password from one that happens
// to be rebuilt from the mask and its neighbours ("@" + the host's first
// characters): redacted() must then read the same when the raw password
// (after the first ':' of the userinfo, before the authority's last '@')
// is replaced by other characters of the same length.
bool same_without_password(std::string_view text, const std::string& shown) {
  auto sep = text.find("://");
  if (sep == std::string_view::npos) return false;
  std::size_t start = sep + 3, end = text.find_first_of("/?", start);
  if (end == std::string_view::npos) end = text.size();
  auto at = text.substr(start, end - start).rfind('@');
  if (at == std::string_view::npos) return false;
  auto colon = text.substr(start, at).find(':');
  if (colon == std::string_view::npos) return false;
  std::string other(text);
  for (std::size_t i = start + colon + 1; i < start + at; ++i)
    other[i] = other[i] == 'x' ? 'y' : 'x';
  try {
    return Url::parse(other).redacted() == shown;
  } catch (const ConfigError&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Url u = Url::parse(text);
    std::string shown = u.redacted();
    std::string rest = u.scheme + u.user + u.host + u.path;
    for (const auto& [k, v] : u.query) rest += k + v;
    check(hidden(shown, u.password, rest, text) || same_without_password(text, shown),
          "Url::redacted() shows the password");
    (void)u.param("visibility_timeout", "3600");
  } catch (const ConfigError&) {
  }
  try {
    redis::Url r = redis::Url::parse(text);
    check(r.port > 0 && r.port < 65536, "redis::Url accepted a port outside 1..65535");
    // str() must not depend on the password at all: the same URL with
    // another password of the same length reads the same.
    redis::Url other = r;
    other.password = std::string(r.password.size(),
                                 r.password == std::string(r.password.size(), 'x') ? 'y' : 'x');
    check(r.str() == other.str(), "redis::Url::str() shows the password");
    (void)r.address();
  } catch (const redis::UrlError&) {
  }
  return 0;
}
