// Batched publisher confirms on RabbitMQ (BrokerOptions::publish_window):
// publish() returns before its confirm; flush() waits for all; a refusal is
// reported by the next call naming the task; a lost connection's unconfirmed
// publishes are published again, and what cannot be is reported, by task id.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "amqp_env.hpp"
#include "celeriac/tq/amqp/broker.hpp"
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

std::string id_of(int i) {
  return "burst-" + std::to_string(i);
}

// Every message of `q` (reserved and acked through a broker of its own), by
// task id -> how many times; stops at the first empty 500 ms once `expected`
// came (what was published before is in the queue already), or after 30 s
// without a message.
std::map<std::string, int> drain(const std::string& q, std::size_t expected) {
  auto b = broker();
  std::map<std::string, int> seen;
  std::vector<std::string> qs{q};
  std::size_t got = 0;
  for (int idle = 0; idle < 60;) {
    auto ds = b.reserve(qs, 256, 500ms);
    if (ds.empty()) {
      if (got >= expected) break;
      ++idle;
      continue;
    }
    for (auto& d : ds) ++seen[tq::decode(d.envelope).id];
    got += ds.size();
    b.ack_many(ds);
  }
  return seen;
}

// Publishes `id` to `q`. The call that reports an earlier refusal publishes
// nothing, so it is made again; returns what it reported ("" when nothing).
std::string publish_reporting(amqp::AmqpBroker& b, const std::string& q, const std::string& id) {
  try {
    b.publish(q, 0, add_task(id, q));
    return "";
  } catch (const tq::BrokerError& e) {
    b.publish(q, 0, add_task(id, q));
    return e.what();
  }
}

}  // namespace

TEST(AmqpConfirms, BurstArrivesExactlyOnce) {
  auto q = unique_queue("burst");
  auto b = broker();  // publish_window 256
  constexpr int n = 3000;
  for (int i = 0; i < n; ++i) b.publish(q, 0, add_task(id_of(i), q));
  b.flush();
  EXPECT_EQ(b.queue_length(q), static_cast<std::size_t>(n));
  auto seen = drain(q, n);
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) EXPECT_EQ(seen[id_of(i)], 1) << id_of(i);
}

TEST(AmqpConfirms, FlushConfirmsWhatAnotherConnectionThenSees) {
  auto q = unique_queue("flush");
  auto b = broker("?publish_window=64");
  for (int i = 0; i < 100; ++i) b.publish(q, 0, add_task(id_of(i), q));
  b.flush();  // every publish confirmed: stored, whoever looks
  auto other = broker();
  EXPECT_EQ(other.queue_length(q), 100u);
  b.flush();  // nothing left: returns at once, no error
  b.close();
  EXPECT_THROW(b.publish(q, 0, add_task("after-close", q)), tq::BrokerError);
}

TEST(AmqpConfirms, NackIsReportedByTaskIdAndNothingElseIsLost) {
  auto q = unique_queue("full-window");
  auto ok_q = unique_queue("ok-window");
  auto policy =
      rabbit().ctl({"set_policy", "full-" + q, "^" + q + "$",
                    R"({"max-length":2,"overflow":"reject-publish"})", "--apply-to", "queues"});
  ASSERT_EQ(policy.exit_code, 0) << policy.output;
  auto b = broker();
  std::string errors;
  errors += publish_reporting(b, q, "fits-1");
  errors += publish_reporting(b, q, "fits-2");
  errors += publish_reporting(b, q, "refused-3");  // nacked: the queue is full
  for (int i = 0; i < 20; ++i) errors += publish_reporting(b, ok_q, id_of(i));
  try {
    b.flush();
  } catch (const tq::BrokerError& e) {
    errors += e.what();
  }
  EXPECT_NE(errors.find("task refused-3 to queue '" + q + "'"), std::string::npos) << errors;
  EXPECT_NE(errors.find("basic.nack"), std::string::npos) << errors;
  EXPECT_EQ(errors.find("fits-"), std::string::npos) << errors;
  EXPECT_EQ(errors.find("burst-"), std::string::npos) << errors;
  EXPECT_NO_THROW(b.flush());  // reported once
  EXPECT_EQ(b.queue_length(q), 2u);
  auto seen = drain(ok_q, 20);
  ASSERT_EQ(seen.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(seen[id_of(i)], 1) << id_of(i);
}

TEST(AmqpConfirms, UnroutablePublishIsReportedByTaskId) {
  // The default exchange routes by queue name: a queue deleted after the
  // broker declared it makes the next publish unroutable (basic.return).
  auto q = unique_queue("gone");
  auto b = broker();
  b.publish(q, 0, add_task("first", q));
  b.flush();
  auto del = rabbit().ctl({"delete_queue", q});
  ASSERT_EQ(del.exit_code, 0) << del.output;
  b.publish(q, 0, add_task("into-the-void", q));
  try {
    b.flush();
    FAIL() << "an unroutable publish was not reported";
  } catch (const tq::BrokerError& e) {
    std::string w = e.what();
    EXPECT_NE(w.find("task into-the-void to queue '" + q + "'"), std::string::npos) << w;
    EXPECT_NE(w.find("unroutable"), std::string::npos) << w;
  }
}

TEST(AmqpConfirms, ConnectionClosedMidWindowIsRepublishedNotLost) {
  auto q = unique_queue("closed-window");
  auto b = broker("?publish_window=1024");
  constexpr int n = 600;
  for (int i = 0; i < n; ++i) {
    if (i == n / 2) {
      auto closed = rabbit().ctl({"close_all_connections", "celeriac test: mid-window"});
      ASSERT_EQ(closed.exit_code, 0) << closed.output;
    }
    b.publish(q, 0, add_task(id_of(i), q));
  }
  b.flush();
  // At least once: a publish stored whose confirm the close swallowed is
  // published again; none is missing.
  auto seen = drain(q, n);
  for (int i = 0; i < n; ++i) EXPECT_GE(seen[id_of(i)], 1) << id_of(i);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(n));
}

TEST(AmqpConfirms, UnconfirmedWithinTimeoutAreReportedByTaskId) {
  auto q = unique_queue("frozen");
  auto b = broker("?confirm_timeout=1&heartbeat=0");
  b.publish(q, 0, add_task("before-freeze", q));
  b.flush();
  rabbit().pause();  // the node stops answering; writes still go into the socket
  // The confirmer may give up on some before flush() does: its report comes
  // with the next call, which then publishes nothing itself.
  std::string errors;
  std::vector<std::string> written;
  for (int i = 0; i < 5; ++i) {
    std::string id = "frozen-" + std::to_string(i);
    try {
      b.publish(q, 0, add_task(id, q));
      written.push_back(id);
    } catch (const tq::BrokerError& e) {
      errors += e.what();
    }
  }
  try {
    b.flush();
  } catch (const tq::BrokerError& e) {
    errors += e.what();
  }
  rabbit().resume();
  EXPECT_NE(errors.find("not confirmed within 1 s"), std::string::npos) << errors;
  ASSERT_FALSE(written.empty());
  for (auto& id : written) EXPECT_NE(errors.find(id), std::string::npos) << id << ": " << errors;
  EXPECT_EQ(errors.find("before-freeze"), std::string::npos) << errors;
  EXPECT_EQ(errors.find("guest:guest"), std::string::npos) << errors;
}

TEST(AmqpConfirms, WindowZeroWaitsForEachConfirmAndBadWindowIsNamed) {
  auto q = unique_queue("window0");
  auto b = broker("?publish_window=0");
  b.publish(q, 0, add_task("one", q));
  EXPECT_EQ(broker().queue_length(q), 1u);  // confirmed before publish() returned
  try {
    broker("?publish_window=lots");
    FAIL() << "publish_window=lots accepted";
  } catch (const tq::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("publish_window='lots'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(amqp::BrokerOptions::from_url(tq::Url::parse(rabbit().url())).publish_window, 256u);
}
