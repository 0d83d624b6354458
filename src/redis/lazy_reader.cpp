// hiredis reply-object functions that grow an array's element table as its
// elements arrive (see lazy_reader.hpp for why).
#include "celeriac/redis/detail/lazy_reader.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace celeriac::redis::detail {

namespace {

// An element table is first sized for this many elements (or fewer when
// fewer are declared), then doubled as needed.
constexpr std::size_t kFirstTable = 16;

// While an array is being read, the fields hiredis leaves unused for arrays
// hold its bookkeeping: `len` the table's capacity, `integer` the declared
// count. `elements` counts the elements attached so far, so freeReplyObject
// is right at every step (also for a reply abandoned half-way).
redisReply* new_reply(int type) {
  auto* r = static_cast<redisReply*>(std::calloc(1, sizeof(redisReply)));
  if (r) r->type = type;
  return r;
}

// Appends `child` to its parent array (hiredis fills elements in order);
// false when the table cannot grow.
bool attach(const redisReadTask* task, redisReply* child) {
  if (!task->parent) return true;
  auto* parent = static_cast<redisReply*>(task->parent->obj);
  const auto idx = static_cast<std::size_t>(task->idx);
  if (parent->type != REDIS_REPLY_ARRAY || idx != parent->elements) return false;
  if (idx == parent->len) {
    const auto declared = static_cast<std::size_t>(std::max<long long>(parent->integer, 0));
    std::size_t cap = std::max(kFirstTable, parent->len * 2);
    if (declared > idx) cap = std::min(cap, declared);
    cap = std::max(cap, idx + 1);
    void* grown = std::realloc(parent->element, cap * sizeof(redisReply*));
    if (!grown) return false;
    parent->element = static_cast<redisReply**>(grown);
    parent->len = cap;
  }
  parent->element[parent->elements++] = child;
  if (static_cast<long long>(parent->elements) == parent->integer) {
    parent->len = 0;  // complete: an ordinary array reply again
    parent->integer = 0;
  }
  return true;
}

void* finish(const redisReadTask* task, redisReply* r) {
  if (r && !attach(task, r)) {
    freeReplyObject(r);
    return nullptr;
  }
  return r;
}

void* create_string(const redisReadTask* task, char* str, size_t len) {
  redisReply* r = new_reply(task->type);
  if (!r) return nullptr;
  r->str = static_cast<char*>(std::malloc(len + 1));
  if (!r->str) {
    std::free(r);
    return nullptr;
  }
  std::memcpy(r->str, str, len);
  r->str[len] = '\0';
  r->len = len;
  return finish(task, r);
}

void* create_array(const redisReadTask* task, int elements) {
  if (elements < 0) return nullptr;  // hiredis reports it as an error
  redisReply* r = new_reply(REDIS_REPLY_ARRAY);
  if (!r) return nullptr;
  r->integer = elements;
  return finish(task, r);
}

void* create_integer(const redisReadTask* task, long long value) {
  redisReply* r = new_reply(REDIS_REPLY_INTEGER);
  if (!r) return nullptr;
  r->integer = value;
  return finish(task, r);
}

void* create_nil(const redisReadTask* task) {
  return finish(task, new_reply(REDIS_REPLY_NIL));
}

void free_object(void* r) {
  freeReplyObject(r);
}

redisReplyObjectFunctions lazy_functions = {create_string, create_array, create_integer, create_nil,
                                            free_object};

}  // namespace

redisReader* make_lazy_reader() {
  return redisReaderCreateWithFunctions(&lazy_functions);
}

Reply reply_from_hiredis(const redisReply* r) {
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
      for (size_t i = 0; i < r->elements; ++i) e.push_back(reply_from_hiredis(r->element[i]));
      return Reply::make_array(std::move(e));
    }
    default:
      return Reply();
  }
}

}  // namespace celeriac::redis::detail
