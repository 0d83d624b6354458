// Fuzz target: broker and backend URLs (memory, sqlite, redis, rediss, amqp)
// through the generic parser and the Redis one. Properties: a bad URL throws
// ConfigError / UrlError; a password never appears in redacted() or str().
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/redis/errors.hpp"
#include "celeriac/tq/redis/url.hpp"
#include "celeriac/tq/url.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;
using celeriac::fuzz::check;

namespace {

// The password is hidden when it is long enough not to occur by chance in
// the rest of the URL: it must not be shown unless the URL's text holds it
// twice (e.g. also as part of the host) or the parsed fields hold it.
bool hidden(const std::string& shown, const std::string& password, const std::string& rest,
            std::string_view text) {
  if (password.size() < 6 || rest.find(password) != std::string::npos) return true;
  if (text.find(password) != text.rfind(password)) return true;
  // A password that itself contains the mask can be rebuilt from the
  // masked text ("u:***" when the password is "...:***"): not a leak.
  if (password.find("***") != std::string::npos) return true;
  return shown.find(password) == std::string::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Url u = Url::parse(text);
    std::string shown = u.redacted();
    std::string rest = u.scheme + u.user + u.host + u.path;
    for (const auto& [k, v] : u.query) rest += k + v;
    check(hidden(shown, u.password, rest, text), "Url::redacted() shows the password");
    (void)u.param("visibility_timeout", "3600");
  } catch (const ConfigError&) {
  }
  try {
    redis::Url r = redis::Url::parse(text);
    check(r.port > 0 && r.port < 65536, "redis::Url accepted a port outside 1..65535");
    check(hidden(r.str(), r.password, r.host + r.username, text),
          "redis::Url::str() shows the password");
    (void)r.address();
  } catch (const redis::UrlError&) {
  }
  return 0;
}
