// Fuzz target: the Redis reply reader path. Bytes from the server go through
// hiredis' RESP reader with the lazy element tables of
// detail::make_lazy_reader() (a declared "*2000000000" allocates nothing
// up front; libFuzzer's -rss_limit_mb and the replay's
// max_allocation_size_mb catch a regression), then are converted into
// celeriac's owning Reply and inspected as the broker does (str, integer,
// elements, describe). The conversion mirrors the one in
// src/redis/connection.cpp, which is internal to that file.
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

Reply convert(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
      return Reply::make_string(Reply::Type::String, std::string(r->str, r->len));
    case REDIS_REPLY_STATUS:
      return Reply::make_string(Reply::Type::Status, std::string(r->str, r->len));
    case REDIS_REPLY_ERROR:
      return Reply::make_string(Reply::Type::Error, std::string(r->str, r->len));
    case REDIS_REPLY_INTEGER:
      return Reply::make_integer(r->integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<Reply> e;
      e.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) e.push_back(convert(r->element[i]));
      return Reply::make_array(std::move(e));
    }
    default:
      return Reply();
  }
}

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
      inspect(convert(static_cast<redisReply*>(raw)));
      freeReplyObject(raw);
    }
  }
  redisReaderFree(reader);
  return 0;
}
