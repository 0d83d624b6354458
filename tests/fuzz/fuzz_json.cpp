// Fuzz target: the JSON layer as Python's json reads and writes it,
// including the bare NaN/Infinity/-Infinity tokens, and base64. Properties:
// loads() returns or throws MessageError; dumps(loads(x)) is a fixed point
// (loads then dumps again gives the same text); base64 round-trips.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;
using celeriac::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    Json j = loads(text);
    std::string once = dumps(j);
    std::string twice = dumps(loads(once));
    check(once == twice, "dumps(loads(dumps(x))) differs from dumps(x)");
    OrderedJson o = loads_ordered(text);
    std::string ordered = dumps(o);
    check(dumps(loads(ordered)) == once, "ordered and plain parse disagree");
  } catch (const MessageError&) {
  }
  try {
    std::string raw = base64_decode(text);
    check(base64_decode(base64_encode(raw)) == raw, "base64 round trip changed the bytes");
  } catch (const MessageError&) {
  }
  std::string quoted;
  dump_string(quoted, text);
  try {
    Json s = loads(quoted);
    check(s.is_string(), "dump_string did not produce a JSON string");
  } catch (const MessageError&) {
    celeriac::fuzz::property_failed("dump_string produced text loads() rejects");
  }
  return 0;
}
