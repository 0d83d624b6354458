// A hiredis RESP reader that allocates an array reply's element table as
// the elements arrive, not for the count the server declares; and the
// conversion of its replies into celeriac's owning Reply.
#pragma once

#include "celeriac/redis/reply.hpp"

struct redisReader;  // hiredis
struct redisReply;   // hiredis

namespace celeriac::redis::detail {

/// A hiredis reader (free with redisReaderFree) whose replies are ordinary
/// redisReply objects (freeReplyObject frees them), except that an array's
/// element table starts small and doubles as elements are read: a reply
/// that declares "*2000000000" costs memory only for the elements that
/// actually arrive. Debian's hiredis 0.14 has no maxelements setting and
/// its default reader callocs the declared count up front, so a hostile or
/// broken server could make the client allocate gigabytes with 14 bytes.
/// nullptr when out of memory.
redisReader* make_lazy_reader();

/// A hiredis reply (and its elements) as an owning Reply; nil and unknown
/// types become a nil Reply.
Reply reply_from_hiredis(const redisReply* r);

}  // namespace celeriac::redis::detail
