// properties.expiration: the per-message TTL that AMQP brokers enforce.
// kombu writes it in milliseconds; a worker on RabbitMQ would otherwise drop
// a task with expires=60 after 60 ms.
#include <gtest/gtest.h>

#include <string>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/message.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using tqtest::read_sample;

namespace {

// Whole milliseconds since `t`, rounded up.
long long elapsed_ms(Clock::time_point t) {
  return std::chrono::ceil<std::chrono::milliseconds>(Clock::now() - t).count();
}

// task_expires_60s.json was captured from Celery 5.2 / kombu 5.2:
// app.send_task('tasks.add', (1, 1), expires=60) on a Redis broker, LRANGE.
TEST(TqExpiration, CeleryWritesMilliseconds) {
  TaskMessage celery = decode(read_sample("task_expires_60s.json"));
  ASSERT_TRUE(celery.expires);
  ASSERT_TRUE(celery.expiration);
  EXPECT_EQ(*celery.expiration, "60000");
}

TEST(TqExpiration, ExpiresInIsWrittenInMillisecondsAsCeleryDoes) {
  App app{"memory://expiration-test", ""};
  CallOptions o;
  o.expires_in = 60;
  auto before = Clock::now();
  TaskMessage ours = app.build_message("tasks.add", Json::array({1, 1}), Json::object(), o);
  auto spent = elapsed_ms(before);
  ASSERT_TRUE(ours.expiration);
  long long celery_ms = std::stoll(*decode(read_sample("task_expires_60s.json")).expiration);
  long long ours_ms = std::stoll(*ours.expiration);
  // Same unit as the captured message: 60,000 less at most the time the call took.
  EXPECT_LE(ours_ms, celery_ms);
  EXPECT_GE(ours_ms, celery_ms - spent - 1);
}

TEST(TqExpiration, AbsoluteExpiresGivesTheRemainingMilliseconds) {
  App app{"memory://expiration-test-abs", ""};
  CallOptions o;
  auto before = Clock::now();
  o.expires = before + std::chrono::milliseconds(2500);
  TaskMessage m = app.build_message("tasks.add", Json::array(), Json::object(), o);
  auto spent = elapsed_ms(before);
  ASSERT_TRUE(m.expiration);
  long long ms = std::stoll(*m.expiration);
  EXPECT_LE(ms, 2500);
  EXPECT_GE(ms, 2500 - spent - 1);
  // Round trip through the wire format keeps it.
  EXPECT_EQ(decode(encode(m)).expiration, m.expiration);
}

TEST(TqExpiration, PastExpiresIsZeroAsInCelerysSample) {
  App app{"memory://expiration-test-past", ""};
  CallOptions o;
  o.expires_in = -5;
  TaskMessage m = app.build_message("tasks.add", Json::array(), Json::object(), o);
  ASSERT_TRUE(m.expiration);
  EXPECT_EQ(*m.expiration, "0");
  EXPECT_EQ(*decode(read_sample("task_expires.json")).expiration, "0");
}

TEST(TqExpiration, NoExpiresNoExpiration) {
  App app{"memory://expiration-test-none", ""};
  TaskMessage m = app.build_message("tasks.add", Json::array(), Json::object(), {});
  EXPECT_FALSE(m.expiration);
}

}  // namespace
