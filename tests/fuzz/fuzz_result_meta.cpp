// Fuzz target: the result meta decoder (what a backend reads back, written
// by any Celery or celeriac peer). Properties: from_json returns or throws
// MessageError; what it accepts re-serializes to a meta it accepts again,
// with the same task id and state.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/result_backend.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;
using celeriac::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    ResultMeta m = ResultMeta::from_json(text);
    ResultMeta again = ResultMeta::from_json(m.to_json());
    check(again.task_id == m.task_id && again.status == m.status, "round trip changed id/state");
    check(dumps(again.result) == dumps(m.result), "round trip changed the result");
    (void)is_ready(m.status);
  } catch (const MessageError&) {
  }
  return 0;
}
