// Fuzz target: what the pidbox consumer and event readers parse from the
// broker's pub/sub channels: a kombu envelope (JSON), its base64 or plain
// body, then the request fields (method, arguments, destination, clock).
// Properties: only MessageError escapes; a decoded body is JSON that
// serializes again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/redis/control.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Json env = loads(text);
    // As RedisWorkerService::run reads the envelope's clock header.
    if (env.is_object() && env.contains("headers") && env["headers"].is_object()) {
      auto& h = env["headers"];
      if (h.contains("clock") && h["clock"].is_number()) (void)h["clock"].get<long>();
    }
    Json req = redis::envelope_body(env);
    (void)dumps(req);
    if (req.is_object()) {
      (void)req.value("method", std::string());
      if (req.contains("destination") && req["destination"].is_array())
        for (const auto& d : req["destination"])
          if (d.is_string()) (void)d.get<std::string>();
      if (req.contains("arguments") && req["arguments"].is_object()) (void)dumps(req["arguments"]);
    }
  } catch (const MessageError&) {
  } catch (const nlohmann::json::exception&) {
    // value() on a wrong-typed "method" throws type_error, which the
    // consumer's catch-all handles (a malformed request is ignored).
  }
  return 0;
}
