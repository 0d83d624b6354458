// Fuzz target: the Redis reply reader path. Bytes from the server go through
// hiredis' RESP reader with the lazy element tables of
// detail::make_lazy_reader() (a declared "*2000000000" allocates nothing
// up front; libFuzzer's -rss_limit_mb and the replay's
// max_allocation_size_mb catch a regression), then are converted into
// celeriac's owning Reply by the connection's own conversion and inspected
// as the broker does (str, integer, elements, describe).
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/redis/detail/lazy_reader.hpp"
#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/reply.hpp"
#include "fuzz_check.hpp"

using celeriac::fuzz::check;
using celeriac::redis::ProtocolError;
using celeriac::redis::Reply;

namespace {

// Uses every accessor the way broker code does: the right one succeeds, the
// wrong ones throw ProtocolError (never anything else).
void inspect(const Reply& r) {
  (void)r.describe();
  try {
    (void)r.str();
    check(r.type() == Reply::Type::String || r.type() == Reply::Type::Status ||
              r.type() == Reply::Type::Error,
          "str() succeeded on a non-string reply");
  } catch (const ProtocolError&) {
  }
  try {
    (void)r.integer();
  } catch (const ProtocolError&) {
  }
  try {
    for (const auto& e : r.elements()) inspect(e);
    check(r.size() == r.elements().size(), "size() disagrees with elements()");
    (void)r[r.size()];
    celeriac::fuzz::property_failed("operator[] past the end did not throw");
  } catch (const ProtocolError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  redisReader* reader = celeriac::redis::detail::make_lazy_reader();
  if (!reader) return 0;
  if (redisReaderFeed(reader, reinterpret_cast<const char*>(data), size) == REDIS_OK) {
    for (int i = 0; i < 64; ++i) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr) break;
      inspect(celeriac::redis::detail::reply_from_hiredis(static_cast<redisReply*>(raw)));
      freeReplyObject(raw);
    }
  }
  redisReaderFree(reader);
  return 0;
}
