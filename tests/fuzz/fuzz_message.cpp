// Fuzz target: the kombu envelope and protocol-2 decoder (headers, body,
// embed), the helpers that read undecodable envelopes (peek, redeliver) and
// the ISO-8601 parser behind eta/expires. Properties: decode() either
// returns or throws MessageError; whatever it accepts re-encodes to an
// envelope that decodes to the same message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/tq/message.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;
using celeriac::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  DecodeOptions limits;
  limits.max_size = 64 * 1024;
  (void)peek_id_and_name(text);
  try {
    (void)parse_iso8601(text);
  } catch (const MessageError&) {
  }
  try {
    TaskMessage m = decode(text, limits);
    check(!m.id.empty() && !m.task.empty(), "decode accepted an empty id or task");
    std::string again = encode(m);
    TaskMessage r = decode(again, DecodeOptions{});
    check(r.id == m.id && r.task == m.task && r.queue == m.queue,
          "round trip changed id/task/queue");
    check(dumps(r.args) == dumps(m.args) && dumps(r.kwargs) == dumps(m.kwargs),
          "round trip changed args/kwargs");
    check(r.retries == m.retries && r.priority == m.priority,
          "round trip changed retries/priority");
    TaskMessage red = decode(mark_redelivered(again), DecodeOptions{});
    check(red.redelivered && red.id == m.id, "mark_redelivered lost the message or the flag");
  } catch (const MessageError&) {
    // A clear rejection is the expected outcome for most inputs.
  }
  return 0;
}
