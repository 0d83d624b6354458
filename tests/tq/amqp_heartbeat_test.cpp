// AMQP heartbeats: negotiated with the broker, sent while the owner of a
// connection leaves it alone (an idle client, a worker busy with a task that
// holds its message unacknowledged), and a frozen broker detected.
#include <gtest/gtest.h>

#include <thread>

#include "amqp_env.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace tq = celeriac::tq;
namespace amqp = celeriac::tq::amqp;
using celeriac::tq::test::add_task;
using celeriac::tq::test::rabbit;
using celeriac::tq::test::unique_queue;
using namespace std::chrono_literals;

namespace {

std::vector<tq::Delivery> reserve_one(amqp::AmqpBroker& b, const std::string& q,
                                      std::chrono::milliseconds within) {
  std::vector<std::string> qs{q};
  auto deadline = std::chrono::steady_clock::now() + within;
  std::vector<tq::Delivery> out;
  while (out.empty() && std::chrono::steady_clock::now() < deadline) out = b.reserve(qs, 1, 200ms);
  return out;
}

// Thaws the node even when an assertion fails.
struct Frozen {
  Frozen() { rabbit().pause(); }
  ~Frozen() { rabbit().resume(); }
};

}  // namespace

TEST(AmqpHeartbeat, IntervalIsNegotiated) {
  amqp::detail::Connection one(
      amqp::detail::Endpoint::from_url(tq::Url::parse(rabbit().url("?heartbeat=1"))));
  one.open();
  EXPECT_EQ(one.heartbeat(), 1);
  amqp::detail::Connection dflt(amqp::detail::Endpoint::from_url(tq::Url::parse(rabbit().url())));
  dflt.open();
  EXPECT_EQ(dflt.heartbeat(), 60);  // ours and RabbitMQ's default agree
  amqp::detail::Connection none(
      amqp::detail::Endpoint::from_url(tq::Url::parse(rabbit().url("?heartbeat=0"))));
  none.open();
  EXPECT_EQ(none.heartbeat(), 0);
  try {
    amqp::detail::Endpoint::from_url(tq::Url::parse(rabbit().url("?heartbeat=soon")));
    ADD_FAILURE() << "heartbeat=soon accepted";
  } catch (const tq::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("heartbeat='soon'"), std::string::npos) << e.what();
  }
}

// A worker busy for several intervals holds its message unacknowledged and
// calls nothing on the broker: both connections must survive, or the broker
// closes them (missed heartbeats), the ack is lost and the task redelivered.
TEST(AmqpHeartbeat, IdleConnectionsSurviveSeveralIntervals) {
  auto q = unique_queue("hb-idle");
  amqp::AmqpBroker b(tq::Url::parse(rabbit().url("?heartbeat=1")));
  b.publish(q, 0, add_task("hb-1", q));
  auto got = reserve_one(b, q, 20s);
  ASSERT_EQ(got.size(), 1u);
  std::this_thread::sleep_for(4s);  // the scenario itself: 4 intervals of silence
  b.ack(got[0]);
  b.publish(q, 0, add_task("hb-2", q));  // the publisher connection, idle as long
  auto next = reserve_one(b, q, 20s);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(tq::decode(next[0].envelope).id, "hb-2") << "hb-1 was redelivered: its ack was lost";
  EXPECT_FALSE(next[0].redelivered);
  b.ack(next[0]);
  EXPECT_EQ(b.queue_length(q), 0u);
  EXPECT_EQ(rabbit().log().find("missed heartbeats from client"), std::string::npos);
}

TEST(AmqpHeartbeat, FrozenBrokerIsDetectedAndTheConsumerReconnects) {
  auto q = unique_queue("hb-dead");
  amqp::AmqpBroker b(tq::Url::parse(rabbit().url("?heartbeat=1&connect_timeout=2")));
  std::vector<std::string> qs{q};
  EXPECT_TRUE(b.reserve(qs, 1, 100ms).empty());  // consuming
  std::string error;
  {
    Frozen frozen;
    // Without heartbeats a silent peer looks like an idle queue forever;
    // the bound here is only for a broken build.
    auto give_up = std::chrono::steady_clock::now() + 60s;
    while (error.empty() && std::chrono::steady_clock::now() < give_up) {
      try {
        b.reserve(qs, 1, 200ms);
      } catch (const tq::BrokerError& e) {
        error = e.what();
      }
    }
  }
  EXPECT_NE(error.find("heartbeat timeout"), std::string::npos) << error;
  // Back to normal once the broker answers again.
  b.publish(q, 0, add_task("hb-after", q));
  std::vector<tq::Delivery> got;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (got.empty() && std::chrono::steady_clock::now() < deadline) {
    try {
      got = b.reserve(qs, 1, 200ms);
    } catch (const tq::BrokerError&) {
      // reconnecting
    }
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(tq::decode(got[0].envelope).id, "hb-after");
  b.ack(got[0]);
}
