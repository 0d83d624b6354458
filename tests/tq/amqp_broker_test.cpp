// AmqpBroker against a private RabbitMQ node: kombu's layout on the wire,
// real acks, requeue, restore, dead letters, priorities, confirms, ETA
// parking and connection loss.
#include <gtest/gtest.h>

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

amqp::AmqpBroker broker(const std::string& query = "") {
  return amqp::AmqpBroker(tq::Url::parse(rabbit().url(query)));
}

// Joins pieces (g++ 12 warns, -Wrestrict, a false positive, on "literal" +
// std::string temporaries).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}

std::vector<tq::Delivery> reserve_n(amqp::AmqpBroker& b, const std::string& q, std::size_t n,
                                    std::chrono::milliseconds within = 20s) {
  std::vector<tq::Delivery> out;
  std::vector<std::string> qs{q};
  auto deadline = std::chrono::steady_clock::now() + within;
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    for (auto& d : b.reserve(qs, n - out.size(), 500ms)) out.push_back(std::move(d));
  }
  return out;
}

celeriac::tq::amqp::detail::Connection raw() {
  return celeriac::tq::amqp::detail::Connection(
      celeriac::tq::amqp::detail::Endpoint::from_url(tq::Url::parse(rabbit().url())));
}

}  // namespace

TEST(AmqpBroker, PublishReserveAckRoundTrip) {
  auto q = unique_queue("rt");
  auto b = broker();
  b.publish(q, 0, add_task("a", q));
  b.publish(q, 0, add_task("b", q));
  b.publish(q, 0, add_task("c", q));
  EXPECT_EQ(b.queue_length(q), 3u);
  auto got = reserve_n(b, q, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(tq::decode(got[0].envelope).id, "a");
  EXPECT_EQ(tq::decode(got[1].envelope).id, "b");
  EXPECT_EQ(tq::decode(got[2].envelope).id, "c");
  EXPECT_EQ(got[0].queue, q);
  EXPECT_FALSE(got[0].redelivered);
  EXPECT_EQ(b.queue_length(q), 0u);
  b.ack_many(got);
  EXPECT_EQ(b.restore_unacked(), 0u);
  EXPECT_EQ(b.queue_length(q), 0u);
}

TEST(AmqpBroker, MessageOnTheWireIsKombusLayout) {
  auto q = unique_queue("wire");
  auto b = broker();
  tq::TaskMessage m;
  m.id = "id-1";
  m.task = "tasks.mul";
  m.args = tq::Json::array({4, 5});
  m.kwargs = {{"x", "y"}};
  m.queue = q;
  m.expires = tq::Clock::now() + 60s;
  b.publish(q, 0, tq::encode(m));
  auto c = raw();
  c.open();
  auto r = c.get(q);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message.body, m.body_json());  // raw JSON, no base64 envelope
  EXPECT_EQ(r->message.content_type, "application/json");
  EXPECT_EQ(r->message.content_encoding, "utf-8");
  EXPECT_EQ(r->message.correlation_id, "id-1");
  EXPECT_EQ(r->message.delivery_mode, 2);
  // Celery's per-message TTL: milliseconds until headers.expires.
  long long ttl = std::stoll(r->message.expiration);
  EXPECT_GT(ttl, 30000);
  EXPECT_LE(ttl, 60000);
  EXPECT_EQ(r->message.headers.at("task"), "tasks.mul");
  EXPECT_EQ(r->message.headers.at("id"), "id-1");
  EXPECT_TRUE(r->message.headers.at("timelimit").is_array());
  EXPECT_EQ(r->exchange, "");
  EXPECT_EQ(r->routing_key, q);
  c.ack(r->delivery_tag);
  // Declared as Celery declares it: bound to its own direct exchange with
  // key <queue> (a publish there lands in it) ...
  celeriac::tq::amqp::detail::Message probe;
  probe.body = "probe";
  c.publish(q, q, probe, true);
  auto routed = c.get(q);
  ASSERT_TRUE(routed);
  EXPECT_EQ(routed->message.body, "probe");
  EXPECT_EQ(routed->exchange, q);
  c.ack(routed->delivery_tag);
  // ... and durable: redeclaring it transient is refused as inequivalent.
  celeriac::tq::amqp::detail::QueueSpec transient;
  transient.durable = false;
  try {
    c.declare_queue(q, transient);
    ADD_FAILURE() << "the queue is not durable";
  } catch (const tq::BrokerError& e) {
    EXPECT_NE(std::string(e.what()).find("PRECONDITION_FAILED"), std::string::npos) << e.what();
  }
}

TEST(AmqpBroker, RequeuePutsBackMarkedRedelivered) {
  auto q = unique_queue("requeue");
  auto b = broker();
  b.publish(q, 0, add_task("r1", q));
  auto got = reserve_n(b, q, 1);
  ASSERT_EQ(got.size(), 1u);
  b.requeue(got[0]);
  auto again = reserve_n(b, q, 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_TRUE(again[0].redelivered);
  auto m = tq::decode(again[0].envelope);
  EXPECT_EQ(m.id, "r1");
  EXPECT_TRUE(m.redelivered);
  b.ack(again[0]);
  b.ack(again[0]);  // unknown tag now: ignored, channel stays usable
  EXPECT_EQ(b.queue_length(q), 0u);
}

TEST(AmqpBroker, RestoreUnackedGivesEverythingBack) {
  auto q = unique_queue("restore");
  auto b = broker();
  for (auto id : {"x1", "x2", "x3"}) b.publish(q, 0, add_task(id, q));
  auto got = reserve_n(b, q, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(b.restore_unacked(), 2u);
  b.ack(got[0]);  // a tag of the closed connection: ignored
  auto other = broker();
  auto all = reserve_n(other, q, 3);
  ASSERT_EQ(all.size(), 3u);
  std::set<std::string> ids;
  for (auto& d : all) ids.insert(tq::decode(d.envelope).id);
  EXPECT_EQ(ids, (std::set<std::string>{"x1", "x2", "x3"}));
  other.ack_many(all);
}

TEST(AmqpBroker, DeadLetterKeepsMessageAndReason) {
  auto q = unique_queue("dlq");
  auto b = broker();
  b.purge(amqp::kDeadLetterQueue);
  b.publish(q, 0, add_task("dead-1", q));
  auto got = reserve_n(b, q, 1);
  ASSERT_EQ(got.size(), 1u);
  b.dead_letter(got[0], "unregistered task 'tasks.add'");
  EXPECT_EQ(b.queue_length(q), 0u);
  auto dl = b.dead_letters();
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_EQ(dl[0].reason, "unregistered task 'tasks.add'");
  EXPECT_EQ(dl[0].queue, q);
  EXPECT_GT(dl[0].time, 0);
  EXPECT_EQ(tq::decode(dl[0].envelope).id, "dead-1");
  EXPECT_EQ(b.dead_letters().size(), 1u);  // reading does not consume
  EXPECT_EQ(b.restore_unacked(), 0u);
  EXPECT_EQ(b.queue_length(q), 0u);  // never redelivered
}

TEST(AmqpBroker, PriorityUsesRabbitMeaningMappedFromRedis) {
  auto q = unique_queue("prio");
  auto b = broker("?max_priority=10");
  b.publish(q, 9, add_task("low", q));   // Redis meaning: 9 = least urgent
  b.publish(q, 0, add_task("high", q));  // 0 = most urgent
  b.publish(q, 5, add_task("mid", q));
  auto c = raw();
  c.open();
  auto first = c.get(q);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->message.headers.at("id"), "high");
  EXPECT_EQ(first->message.priority.value_or(-1), 9);  // AMQP: higher = more urgent
  c.reject(first->delivery_tag, true);
  c.close();
  auto got = reserve_n(b, q, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(tq::decode(got[0].envelope).id, "high");
  EXPECT_EQ(got[0].priority, 0);
  EXPECT_EQ(tq::decode(got[1].envelope).id, "mid");
  EXPECT_EQ(got[1].priority, 3);
  EXPECT_EQ(tq::decode(got[2].envelope).id, "low");
  EXPECT_EQ(got[2].priority, 9);
  b.ack_many(got);
}

TEST(AmqpBroker, PurgeAndLength) {
  auto q = unique_queue("purge");
  auto b = broker();
  EXPECT_EQ(b.queue_length(q), 0u);  // not declared yet
  EXPECT_EQ(b.purge(q), 0u);
  std::vector<tq::Outgoing> batch;
  for (int i = 0; i < 50; ++i) batch.push_back({q, 0, add_task(cat("p", std::to_string(i)), q)});
  b.publish_many(batch);
  EXPECT_EQ(b.queue_length(q), 50u);
  EXPECT_EQ(b.purge(q), 50u);
  EXPECT_EQ(b.queue_length(q), 0u);
}

TEST(AmqpBroker, RefusedPublishIsReportedNamingTheQueue) {
  auto q = unique_queue("full");
  auto policy =
      rabbit().ctl({"set_policy", cat("full-", q), cat("^", q, "$"),
                    R"({"max-length":1,"overflow":"reject-publish"})", "--apply-to", "queues"});
  ASSERT_EQ(policy.exit_code, 0) << policy.output;
  auto b = broker("?publish_window=0");  // each publish waits for its confirm
  b.publish(q, 0, add_task("fits", q));
  try {
    b.publish(q, 0, add_task("refused", q));
    FAIL() << "a publish the broker refused returned normally";
  } catch (const tq::BrokerError& e) {
    EXPECT_NE(std::string(e.what()).find(cat("'", q, "'")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("basic.nack"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b.queue_length(q), 1u);
  auto other = unique_queue("after-nack");
  b.publish(other, 0, add_task("ok", other));  // the channel is still usable
  EXPECT_EQ(b.queue_length(other), 1u);
}

TEST(AmqpBroker, BadUrlsAndUnreachableBrokerAreClearErrors) {
  EXPECT_THROW(amqp::AmqpBroker(tq::Url::parse(rabbit().url("?prefetch_count=abc"))),
               tq::ConfigError);
  EXPECT_THROW(amqp::AmqpBroker(tq::Url::parse(rabbit().url("?max_priority=0"))), tq::ConfigError);
  int port = celeriac::tq::test::free_port();
  amqp::AmqpBroker b(
      tq::Url::parse(cat("amqp://bob:s3cret@127.0.0.1:", std::to_string(port), "//")));
  try {
    b.publish("x", 0, add_task("t", "x"));
    FAIL() << "publish to a closed port succeeded";
  } catch (const tq::BrokerError& e) {
    std::string w = e.what();
    EXPECT_EQ(w.find("s3cret"), std::string::npos) << w;
    EXPECT_NE(w.find("cannot connect"), std::string::npos) << w;
  }
  auto bad_login = amqp::AmqpBroker(
      tq::Url::parse(cat("amqp://bob:s3cret@127.0.0.1:", std::to_string(rabbit().port()), "//")));
  try {
    bad_login.queue_length("x");
    FAIL() << "a wrong password was accepted";
  } catch (const tq::BrokerError& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  }
  auto good = broker();
  EXPECT_THROW(good.publish("x", 0, "not an envelope"), tq::BrokerError);
  good.close();
  EXPECT_THROW(good.queue_length("x"), tq::BrokerError);
}

TEST(AmqpBroker, LongEtaIsParkedInDelayQueueAndComesBack) {
  auto q = unique_queue("eta");
  auto b = broker("?eta_hold_limit=1");
  auto eta = tq::Clock::now() + 3s;
  b.publish(q, 0, add_task("later", q, eta));
  std::vector<std::string> qs{q};
  // The first reserve sees it 3 s early (> hold limit 1 s): parked, not returned.
  std::vector<tq::Delivery> got;
  auto c = raw();
  c.open();
  bool parked = false;
  for (int i = 0; i < 100 && !parked && got.empty(); ++i) {
    got = b.reserve(qs, 1, 50ms);
    parked = c.declare_queue("celeriac_delayed_1", {}, true).value_or(0) == 1;
  }
  ASSERT_TRUE(got.empty()) << "a message 3 s away was handed out instead of parked";
  ASSERT_TRUE(parked);
  got = reserve_n(b, q, 1, 30s);
  ASSERT_EQ(got.size(), 1u);
  auto m = tq::decode(got[0].envelope);
  EXPECT_EQ(m.id, "later");
  EXPECT_FALSE(m.extra_headers.contains("x-death"));
  ASSERT_TRUE(m.eta);
  b.ack(got[0]);
}

TEST(AmqpBroker, ConnectionLossRedeliversUnackedAndRecovers) {
  auto q = unique_queue("loss");
  auto b = broker();
  b.publish(q, 0, add_task("survivor", q));
  auto got = reserve_n(b, q, 1);
  ASSERT_EQ(got.size(), 1u);
  auto closed = rabbit().ctl({"close_all_connections", "test"});
  ASSERT_EQ(closed.exit_code, 0) << closed.output;
  std::vector<tq::Delivery> again;
  std::vector<std::string> qs{q};
  for (int i = 0; i < 200 && again.empty(); ++i) {
    try {
      again = b.reserve(qs, 1, 100ms);
    } catch (const tq::BrokerError&) {
      // the dead connection is reported once; the next call reconnects
    }
  }
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(tq::decode(again[0].envelope).id, "survivor");
  EXPECT_TRUE(again[0].redelivered);
  b.ack(got[0]);  // stale: ignored
  b.ack(again[0]);
  b.publish(q, 0, add_task("after", q));  // the publisher reconnects too
  auto after = reserve_n(b, q, 1);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(tq::decode(after[0].envelope).id, "after");
  b.ack(after[0]);
}
