// The lazy hiredis reader (src/redis/lazy_reader.cpp): an array reply
// declaring a huge element count allocates nothing for it before the
// elements arrive; replies that do arrive read exactly as hiredis' own.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <malloc.h>

#include <cstring>
#include <memory>
#include <string>

#include "celeriac/redis/detail/lazy_reader.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define READER_TEST_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define READER_TEST_SANITIZER 1
#endif
#endif
#ifdef READER_TEST_SANITIZER
// From the sanitizer runtime (gcc's and clang's alike); declared here because
// Debian ships <sanitizer/allocator_interface.h> only with clang.
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif

namespace {

using ReaderPtr = std::unique_ptr<redisReader, decltype(&redisReaderFree)>;
using ReplyPtr = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

ReaderPtr lazy_reader() {
  return ReaderPtr(celeriac::redis::detail::make_lazy_reader(), &redisReaderFree);
}

// Bytes currently allocated by malloc and friends (mmapped blocks included).
std::size_t allocated_bytes() {
#ifdef READER_TEST_SANITIZER
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#endif
}

// Feeds `bytes`; returns the reply (null when incomplete); fails the test on a reader error.
ReplyPtr feed(redisReader* r, const std::string& bytes) {
  EXPECT_EQ(redisReaderFeed(r, bytes.data(), bytes.size()), REDIS_OK) << r->errstr;
  void* raw = nullptr;
  EXPECT_EQ(redisReaderGetReply(r, &raw), REDIS_OK) << r->errstr;
  return ReplyPtr(static_cast<redisReply*>(raw), &freeReplyObject);
}

TEST(RedisLazyReader, AHugeDeclaredArrayAllocatesNothingBeforeItsElements) {
  for (const char* header : {"*2000000000\r\n", "*2147483647\r\n", "*1\r\n*2000000000\r\n"}) {
    auto reader = lazy_reader();
    ASSERT_TRUE(reader);
    const std::size_t before = allocated_bytes();
    auto reply = feed(reader.get(), header);
    const std::size_t grew = allocated_bytes() - before;
    EXPECT_EQ(reply, nullptr) << header << ": no reply before the elements arrive";
    EXPECT_LT(grew, std::size_t{1} << 20)
        << header << " made the reader allocate " << grew << " bytes up front";
    // Some elements arrive: memory follows them, not the declared count.
    std::string some;
    for (int i = 0; i < 1000; ++i) {
      some += ':';
      some += std::to_string(i);
      some += "\r\n";
    }
    EXPECT_EQ(feed(reader.get(), some), nullptr);
    EXPECT_LT(allocated_bytes() - before, std::size_t{1} << 20);
  }  // the half-read reply is freed with the reader (ASan checks the leak)
}

TEST(RedisLazyReader, ArraysReadAsHiredisReadsThem) {
  auto reader = lazy_reader();
  auto r = feed(reader.get(), "*4\r\n:7\r\n$3\r\nabc\r\n$-1\r\n*2\r\n+OK\r\n-ERR bad\r\n");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(r->elements, 4u);
  EXPECT_EQ(r->element[0]->type, REDIS_REPLY_INTEGER);
  EXPECT_EQ(r->element[0]->integer, 7);
  EXPECT_EQ(std::string(r->element[1]->str, r->element[1]->len), "abc");
  EXPECT_EQ(r->element[2]->type, REDIS_REPLY_NIL);
  ASSERT_EQ(r->element[3]->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(r->element[3]->elements, 2u);
  EXPECT_EQ(r->element[3]->element[0]->type, REDIS_REPLY_STATUS);
  EXPECT_STREQ(r->element[3]->element[1]->str, "ERR bad");
  auto empty = feed(reader.get(), "*0\r\n");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(empty->elements, 0u);
  auto nil = feed(reader.get(), "*-1\r\n");
  ASSERT_TRUE(nil);
  EXPECT_EQ(nil->type, REDIS_REPLY_NIL);
}

// The table grows past its first size while the reply arrives in 7-byte pieces.
TEST(RedisLazyReader, ALongArrayArrivingInPiecesIsComplete) {
  constexpr int kCount = 100000;
  auto reader = lazy_reader();
  std::string bytes = "*";
  bytes += std::to_string(kCount);
  bytes += "\r\n";
  for (int i = 0; i < kCount; ++i) {
    const std::string n = std::to_string(i);
    bytes += '$';
    bytes += std::to_string(n.size());
    bytes += "\r\n";
    bytes += n;
    bytes += "\r\n";
  }
  std::size_t at = 0;
  for (; at + 7 < bytes.size(); at += 7)
    ASSERT_EQ(feed(reader.get(), bytes.substr(at, 7)), nullptr);
  auto r = feed(reader.get(), bytes.substr(at));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->elements, static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; i += 997)
    EXPECT_EQ(std::string(r->element[i]->str), std::to_string(i));
}

TEST(RedisLazyReader, ANegativeOrOverflowingCountIsAnError) {
  for (const char* bad : {"*-5\r\n", "*99999999999999999999\r\n"}) {
    auto reader = lazy_reader();
    ASSERT_EQ(redisReaderFeed(reader.get(), bad, std::strlen(bad)), REDIS_OK);
    void* raw = nullptr;
    int rc = redisReaderGetReply(reader.get(), &raw);
    if (raw) freeReplyObject(raw);
    EXPECT_EQ(rc, REDIS_ERR) << bad << " was accepted";
    EXPECT_NE(std::string(reader->errstr), "") << bad;
  }
}

}  // namespace
