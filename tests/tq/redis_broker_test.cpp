// RedisBroker and RedisResultBackend against a real redis-server: kombu's key
// layout byte for byte, reservation bookkeeping, restore, ETA parking,
// dead letters, reconnect.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "celeriac/redis/connection.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/result_backend.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::tq::redis;
using celeriac::tq::test::RedisServer;
using namespace std::chrono_literals;

namespace {

const std::string kSep = "\x06\x16";

std::string sample(const std::string& name) {
  // copies of ../shared/celery-samples/ (captured from Celery 5.2.6)
  return celeriac::tq::test::read_file(std::string(CELERIAC_SOURCE_DIR) +
                                       "/tests/tq/support/samples/" + name);
}

std::string task(const std::string& id, const std::string& name = "tasks.add",
                 tq::Json args = tq::Json::array({2, 3})) {
  tq::TaskMessage m;
  m.id = id;
  m.task = name;
  m.args = std::move(args);
  return tq::encode(m);
}

std::vector<std::string> queues(std::initializer_list<std::string> q) {
  return q;
}

}  // namespace

TEST(RedisBroker, PublishUsesKombuListsAndBinding) {
  RedisServer server;
  auto url = tq::Url::parse(server.url());
  r::RedisBroker b(url);
  b.publish("celery", 0, task("a"));
  b.publish("celery", 2, task("b"));
  b.publish("celery", 5, task("c"));
  b.publish("celery", 7, task("d"));
  b.publish("celery", 9, task("e"));
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"LLEN", "celery"}).integer(), 2);
  EXPECT_EQ(c.command({"LLEN", "celery" + kSep + "3"}).integer(), 1);
  EXPECT_EQ(c.command({"LLEN", "celery" + kSep + "6"}).integer(), 1);
  EXPECT_EQ(c.command({"LLEN", "celery" + kSep + "9"}).integer(), 1);
  EXPECT_EQ(c.command({"SISMEMBER", "_kombu.binding.celery", "celery" + kSep + kSep + "celery"})
                .integer(),
            1);
  EXPECT_EQ(b.queue_length("celery"), 5u);
  // the bytes on the list are exactly what was published
  std::string env = task("exact");
  b.publish("celery", 1, env);
  EXPECT_EQ(c.command({"LINDEX", "celery", "0"}).str(), env);
  EXPECT_EQ(b.purge("celery"), 6u);
  EXPECT_EQ(b.queue_length("celery"), 0u);
}

TEST(RedisBroker, ReserveRecordsUnackedLikeKombuAndAckDeletes) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  std::string env = sample("task_add.json");
  ASSERT_FALSE(env.empty());
  auto c = r::Connection::connect(server.url());
  c.command({"LPUSH", "celery", env});  // as a Python client does
  auto got = b.reserve(queues({"celery"}), 10, 2s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope, env);
  EXPECT_EQ(got[0].queue, "celery");
  EXPECT_EQ(got[0].priority, 0);
  EXPECT_EQ(got[0].tag, "7090dfd6-abbe-4e82-b13d-3287d526dc0b");
  EXPECT_FALSE(got[0].redelivered);
  // unacked holds [envelope, exchange, routing_key] exactly as Python writes it
  auto entry = c.command({"HGET", "unacked", got[0].tag});
  ASSERT_TRUE(entry.is_string());
  EXPECT_EQ(entry.str(), "[" + env + ", \"\", \"celery\"]");
  auto score = c.command({"ZSCORE", "unacked_index", got[0].tag});
  ASSERT_TRUE(score.is_string());
  double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(std::stod(score.str()), now, 30);
  EXPECT_EQ(b.held_count(), 1u);
  b.ack(got[0]);
  // acks are pipelined: recorded at once, sent with the next round trip
  EXPECT_EQ(b.held_count(), 0u);
  EXPECT_EQ(b.pending_ack_count(), 1u);
  b.flush_acks();
  EXPECT_EQ(b.pending_ack_count(), 0u);
  EXPECT_TRUE(c.command({"HGET", "unacked", got[0].tag}).is_nil());
  EXPECT_TRUE(c.command({"ZSCORE", "unacked_index", got[0].tag}).is_nil());
  EXPECT_EQ(b.held_count(), 0u);
  b.ack(got[0]);  // unknown tags are ignored
}

TEST(RedisBroker, PriorityOrderFifoAndBatching) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  b.publish("q", 9, task("p9"));
  b.publish("q", 4, task("p4-1"));
  b.publish("q", 0, task("p0-1"));
  b.publish("q", 4, task("p4-2"));
  b.publish("q", 0, task("p0-2"));
  std::vector<tq::Outgoing> many;
  for (int i = 0; i < 100; ++i) many.push_back({"q", 6, task("p6-" + std::to_string(i))});
  b.publish_many(many);
  auto got = b.reserve(queues({"q"}), 1000, 2s);
  ASSERT_EQ(got.size(), 105u);
  std::vector<std::string> ids;
  for (auto& d : got) ids.push_back(tq::decode(d.envelope).id);
  EXPECT_EQ(ids[0], "p0-1");
  EXPECT_EQ(ids[1], "p0-2");
  EXPECT_EQ(ids[2], "p4-1");
  EXPECT_EQ(ids[3], "p4-2");
  EXPECT_EQ(ids[4], "p6-0");
  EXPECT_EQ(ids[103], "p6-99");
  EXPECT_EQ(ids[104], "p9");
  EXPECT_EQ(got[2].priority, 3);
  EXPECT_EQ(got[104].priority, 9);
  b.ack_many(got);
  b.flush_acks();
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);
  EXPECT_EQ(c.command({"ZCARD", "unacked_index"}).integer(), 0);
}

TEST(RedisBroker, ReserveBlocksUntilAPublishOrTimeout) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  auto none = b.reserve(queues({"q1", "q2"}), 4, 100ms);
  EXPECT_TRUE(none.empty());
  std::thread producer([&] {
    std::this_thread::sleep_for(200ms);
    r::RedisBroker p(tq::Url::parse(server.url()));
    p.publish("q2", 0, task("late"));
  });
  auto got = b.reserve(queues({"q1", "q2"}), 4, 10s);
  producer.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].queue, "q2");
  EXPECT_EQ(tq::decode(got[0].envelope).id, "late");
  b.ack(got[0]);
}

TEST(RedisBroker, RequeueAndRestoreUnackedPutMessagesBackRedelivered) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  b.publish("celery", 0, task("one"));
  b.publish("celery", 0, task("two"));
  b.publish("celery", 0, task("three"));
  auto got = b.reserve(queues({"celery"}), 2, 2s);
  ASSERT_EQ(got.size(), 2u);
  b.requeue(got[0]);
  EXPECT_EQ(b.held_count(), 1u);
  // requeued = consumed next, marked redelivered in headers and delivery_info
  auto again = b.reserve(queues({"celery"}), 1, 2s);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(tq::decode(again[0].envelope).id, "one");
  EXPECT_TRUE(again[0].redelivered);
  auto j = tq::loads(again[0].envelope);
  EXPECT_EQ(j["headers"]["redelivered"], true);
  EXPECT_EQ(j["properties"]["delivery_info"]["redelivered"], true);
  EXPECT_EQ(b.restore_unacked(), 2u);  // "two" and "one" again
  EXPECT_EQ(b.held_count(), 0u);
  EXPECT_EQ(b.queue_length("celery"), 3u);
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);
}

TEST(RedisBroker, RestoreStaleTakesOnlyOldReservationsOfOthersUnderTheMutex) {
  RedisServer server;
  auto c = r::Connection::connect(server.url());
  // a crashed Python worker's reservation, from the captured sample, 2 h old
  std::string entry = sample("unacked_entry.json");
  ASSERT_FALSE(entry.empty());
  auto j = tq::loads(entry);
  std::string tag = j[0]["properties"]["delivery_tag"];
  double old =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() -
      7200;
  c.command({"HSET", "unacked", tag, entry});
  c.command({"ZADD", "unacked_index", std::to_string(old), tag});
  // a fresh one that must stay
  c.command({"HSET", "unacked", "fresh", entry});
  c.command({"ZADD", "unacked_index", std::to_string(old + 7200), "fresh"});
  r::RedisBroker b(tq::Url::parse(server.url()));
  // someone else holds the mutex: nothing happens
  c.command({"SET", "unacked_mutex", "other", "PX", "300000"});
  EXPECT_EQ(b.restore_stale(3600s), 0u);
  c.command({"DEL", "unacked_mutex"});
  EXPECT_EQ(b.restore_stale(3600s), 1u);
  EXPECT_TRUE(c.command({"HGET", "unacked", tag}).is_nil());
  EXPECT_FALSE(c.command({"HGET", "unacked", "fresh"}).is_nil());
  EXPECT_TRUE(c.command({"GET", "unacked_mutex"}).is_nil());  // released
  auto restored = c.command({"LINDEX", "celery", "0"});
  ASSERT_TRUE(restored.is_string());
  auto rj = tq::loads(restored.str());
  EXPECT_EQ(rj["headers"]["redelivered"], true);
  EXPECT_EQ(rj["properties"]["delivery_tag"], tag);
  EXPECT_EQ(rj["headers"]["id"], j[0]["headers"]["id"]);
}

TEST(RedisBroker, HeldMessagesScoresAreRefreshedSoTheyAreNotStale) {
  RedisServer server;
  auto url = tq::Url::parse(server.url());
  r::BrokerOptions o;
  o.visibility_timeout = 2s;
  o.refresh_interval = 200ms;
  r::RedisBroker worker(url, o);
  worker.publish("celery", 0, task("long"));
  auto got = worker.reserve(queues({"celery"}), 1, 2s);
  ASSERT_EQ(got.size(), 1u);
  auto c = r::Connection::connect(server.url());
  double first = std::stod(c.command({"ZSCORE", "unacked_index", got[0].tag}).str());
  std::this_thread::sleep_for(2500ms);  // longer than the visibility timeout
  double later = std::stod(c.command({"ZSCORE", "unacked_index", got[0].tag}).str());
  EXPECT_GT(later, first + 1.0);
  // another worker's visibility restore does not take the running task
  r::RedisBroker other(url, o);
  EXPECT_EQ(other.restore_stale(2s), 0u);
  EXPECT_EQ(c.command({"LLEN", "celery"}).integer(), 0);
  worker.ack(got[0]);
}

TEST(RedisBroker, FarEtaIsParkedAndComesBackWhenDue) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  tq::TaskMessage m;
  m.id = "later";
  m.task = "tasks.add";
  m.args = tq::Json::array({1, 1});
  m.eta = std::chrono::system_clock::now() + 1500ms;
  b.publish("celery", 0, tq::encode(m));
  b.publish("celery", 0, task("now"));
  auto got = b.reserve(queues({"celery"}), 10, 200ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(tq::decode(got[0].envelope).id, "now");
  b.ack(got[0]);
  b.flush_acks();
  EXPECT_EQ(b.parked_count(), 1u);
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);  // not held: no visibility problem
  std::vector<tq::Delivery> due;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (due.empty() && std::chrono::steady_clock::now() < deadline)
    due = b.reserve(queues({"celery"}), 10, 1s);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(tq::decode(due[0].envelope).id, "later");
  EXPECT_GE(std::chrono::system_clock::now(), *m.eta);
  EXPECT_EQ(b.parked_count(), 0u);
  b.ack(due[0]);
}

TEST(RedisBroker, BadInputIsHeldThenDeadLettered) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  auto c = r::Connection::connect(server.url());
  c.command({"LPUSH", "celery", "this is not json {"});
  c.command({"LPUSH", "celery", R"({"body": "x", "properties": {}})"});
  auto got = b.reserve(queues({"celery"}), 10, 2s);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].envelope, "this is not json {");
  EXPECT_NE(got[0].tag, got[1].tag);
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 2);
  b.dead_letter(got[0], "not JSON");
  b.dead_letter(got[1], "no delivery_tag");
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);
  auto dl = b.dead_letters(10);
  ASSERT_EQ(dl.size(), 2u);
  EXPECT_EQ(dl[0].envelope, "this is not json {");
  EXPECT_EQ(dl[0].reason, "not JSON");
  EXPECT_EQ(dl[0].queue, "celery");
  EXPECT_EQ(dl[1].reason, "no delivery_tag");
  EXPECT_GT(dl[1].time, 0);
  EXPECT_EQ(c.command({"LLEN", std::string(r::kDeadLetterKey)}).integer(), 2);
}

TEST(RedisBroker, PipelinedPublishesArriveInOrderAndFlushConfirmsThem) {
  RedisServer server;
  r::BrokerOptions o;
  o.publish_window = 16;  // small, so the window fills and waits many times
  r::RedisBroker b(tq::Url::parse(server.url()), o);
  for (int i = 0; i < 1000; ++i) b.publish("celery", 0, task("p" + std::to_string(i)));
  b.flush();
  auto c = r::Connection::connect(server.url());
  ASSERT_EQ(c.command({"LLEN", "celery"}).integer(), 1000);
  // LPUSH order: the oldest is at the tail, where workers pop
  for (int i : {0, 1, 500, 999})
    EXPECT_EQ(tq::decode(c.command({"LINDEX", "celery", std::to_string(-1 - i)}).str()).id,
              "p" + std::to_string(i));
  // a batch published after single publishes lands behind them
  std::vector<tq::Outgoing> batch{{"celery", 0, task("batch")}};
  b.publish("celery", 0, task("single"));
  b.publish_many(batch);
  EXPECT_EQ(tq::decode(c.command({"LINDEX", "celery", "0"}).str()).id, "batch");
  EXPECT_EQ(tq::decode(c.command({"LINDEX", "celery", "1"}).str()).id, "single");
}

TEST(RedisBroker, APublishRedisRefusesIsReportedWithItsTaskId) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  b.publish("celery", 0, task("fits"));
  b.flush();
  auto c = r::Connection::connect(server.url());
  c.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  c.command({"CONFIG", "SET", "maxmemory", "1"});  // every write is refused: OOM
  bool reported = false;
  try {
    b.publish("celery", 0, task("refused-one"));  // written; the reply comes later
    b.flush();
  } catch (const tq::BrokerError& e) {
    reported = true;
    std::string what = e.what();
    EXPECT_NE(what.find("refused-one"), std::string::npos) << what;
    EXPECT_NE(what.find("OOM"), std::string::npos) << what;
  }
  EXPECT_TRUE(reported);
  c.command({"CONFIG", "SET", "maxmemory", "0"});
  b.publish("celery", 0, task("after"));  // the error was reported once; the broker goes on
  b.flush();
  EXPECT_EQ(c.command({"LLEN", "celery"}).integer(), 2);
}

TEST(RedisBroker, UnconfirmedPublishesAreWrittenAgainAfterTheConnectionDies) {
  RedisServer server;
  r::BrokerOptions o;
  o.publish_window = 1000;
  r::RedisBroker b(tq::Url::parse(server.url()), o);
  auto c = r::Connection::connect(server.url());
  std::set<std::string> sent;
  for (int i = 0; i < 300; ++i) {
    if (i == 150) c.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
    sent.insert("k" + std::to_string(i));
    b.publish("celery", 0, task("k" + std::to_string(i)));
  }
  b.flush();
  // at least once: every id is there (the ones in flight at the kill maybe twice)
  std::set<std::string> got;
  r::Reply all = c.command({"LRANGE", "celery", "0", "-1"});
  for (auto& env : all.elements()) got.insert(tq::decode(env.str()).id);
  EXPECT_EQ(got, sent);
}

TEST(RedisBroker, PublishWindowZeroWaitsForEachReply) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url() + "?publish_window=0"));
  EXPECT_EQ(b.options().publish_window, 0u);
  auto c = r::Connection::connect(server.url());
  c.command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  c.command({"CONFIG", "SET", "maxmemory", "1"});
  // refused at once, by the call itself
  EXPECT_THROW(b.publish("celery", 0, task("x")), tq::BrokerError);
  EXPECT_THROW(r::RedisBroker(tq::Url::parse(server.url() + "?publish_window=-1")),
               tq::ConfigError);
}

TEST(RedisBroker, BadUrlsAndClosedBroker) {
  EXPECT_THROW(r::RedisBroker(tq::Url::parse("redis://localhost:6379/notadb")), tq::ConfigError);
  EXPECT_THROW(r::RedisBroker(tq::Url::parse("redis://localhost:6379/0?visibility_timeout=abc")),
               tq::ConfigError);
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  b.close();
  b.close();
  EXPECT_THROW(b.publish("celery", 0, task("x")), tq::BrokerError);
  EXPECT_THROW(b.reserve(queues({"celery"}), 1, 10ms), tq::BrokerError);
}

TEST(RedisBroker, UnreachableServerIsABrokerErrorNamingIt) {
  int port = celeriac::tq::test::free_port();
  r::BrokerOptions o;
  o.reconnect_timeout = 300ms;
  r::RedisBroker b(tq::Url::parse("redis://127.0.0.1:" + std::to_string(port) + "/0"), o);
  try {
    b.publish("celery", 0, task("x"));
    ADD_FAILURE() << "published to nowhere";
  } catch (const tq::BrokerError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
  EXPECT_THROW(b.reserve(queues({"celery"}), 1, 200ms), tq::BrokerError);
}

TEST(RedisBroker, SurvivesAServerRestartWithoutLosingHeldMessages) {
  RedisServer server(RedisServer::Options{true, ""});
  r::RedisBroker b(tq::Url::parse(server.url()));
  for (int i = 0; i < 10; ++i)
    b.publish("celery", 0, task(std::string("m").append(std::to_string(i))));
  auto first = b.reserve(queues({"celery"}), 4, 2s);
  ASSERT_EQ(first.size(), 4u);
  server.kill_hard();
  std::thread restarter([&] {
    std::this_thread::sleep_for(300ms);
    server.start();
  });
  // reserve() reconnects by itself within its timeout
  std::vector<tq::Delivery> rest;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (rest.size() < 6 && std::chrono::steady_clock::now() < deadline) {
    try {
      auto got = b.reserve(queues({"celery"}), 10, 1s);
      rest.insert(rest.end(), got.begin(), got.end());
    } catch (const tq::BrokerError&) {
      // down for now: the worker would log and retry
    }
  }
  restarter.join();
  EXPECT_EQ(rest.size(), 6u);
  b.ack_many(first);
  b.ack_many(rest);
  b.flush_acks();
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);
  EXPECT_EQ(c.command({"LLEN", "celery"}).integer(), 0);
}

TEST(RedisBroker, AcksTravelWithTheNextReserveOrAfterTheDelay) {
  RedisServer server;
  r::BrokerOptions o;
  o.ack_delay = std::chrono::seconds(30);  // only reserve()/close() send them here
  r::RedisBroker b(tq::Url::parse(server.url()), o);
  for (int i = 0; i < 3; ++i) b.publish("celery", 0, task("a" + std::to_string(i)));
  auto got = b.reserve(queues({"celery"}), 2, 2s);
  ASSERT_EQ(got.size(), 2u);
  b.ack_many(got);
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 2);  // not sent yet
  auto next = b.reserve(queues({"celery"}), 2, 2s);        // carries the 2 acks
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(b.pending_ack_count(), 0u);
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 1);
  EXPECT_EQ(c.command({"HEXISTS", "unacked", next[0].tag}).integer(), 1);
  b.ack(next[0]);
  b.close();  // close sends the last ones and removes the consumer's receipt
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);
  EXPECT_EQ(c.command({"ZCARD", "unacked_index"}).integer(), 0);
  EXPECT_EQ(c.command({"KEYS", "celeriac.receipt.*"}).elements().size(), 0u);
  // the default delay sends acks by itself, without another reserve()
  r::RedisBroker d(tq::Url::parse(server.url()));
  d.publish("celery", 0, task("b"));
  auto one = d.reserve(queues({"celery"}), 1, 2s);
  ASSERT_EQ(one.size(), 1u);
  d.ack(one[0]);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (c.command({"HLEN", "unacked"}).integer() != 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 0);
}

TEST(RedisBroker, AReserveWhoseReplyTimesOutLosesNothing) {
  RedisServer server;
  r::RedisBroker b(tq::Url::parse(server.url()));
  for (int i = 0; i < 5; ++i)
    b.publish("celery", 0, task(std::string("r").append(std::to_string(i))));
  // A client paused mid-reply is what a killed server looks like to reserve():
  // CLIENT PAUSE holds the reply past the io timeout, the script has run.
  r::BrokerOptions o;
  o.connect.io_timeout = 300ms;
  r::RedisBroker lossy(tq::Url::parse(server.url()), o);
  auto c = r::Connection::connect(server.url());
  (void)lossy.queue_length("celery");  // connect before the pause
  std::thread pauser([&] {
    std::this_thread::sleep_for(50ms);
    c.command({"CLIENT", "PAUSE", "700", "WRITE"});
  });
  std::vector<tq::Delivery> got;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::this_thread::sleep_for(100ms);
  while (got.size() < 5 && std::chrono::steady_clock::now() < deadline) {
    try {
      auto more = lossy.reserve(queues({"celery"}), 5, 200ms);
      got.insert(got.end(), more.begin(), more.end());
    } catch (const tq::BrokerError&) {
    }
  }
  pauser.join();
  std::set<std::string> ids;
  for (auto& d : got) ids.insert(tq::decode(d.envelope).id);
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(c.command({"HLEN", "unacked"}).integer(), 5);
  EXPECT_EQ(lossy.held_count(), 5u);
}

TEST(RedisResultBackend, StoresLikeCeleryAndNeverOverwritesSuccess) {
  RedisServer server;
  r::RedisResultBackend be(tq::Url::parse(server.url()));
  EXPECT_EQ(be.expires(), 86400s);
  tq::ResultMeta m;
  m.task_id = "t1";
  m.status = tq::State::Success;
  m.result = 5;
  m.date_done = "2026-11-25T04:43:28.248215";
  r::Subscriber sub(r::Url::parse(server.url()));
  sub.subscribe({"celery-task-meta-t1"});
  EXPECT_TRUE(be.store(m));
  auto c = r::Connection::connect(server.url());
  std::string stored = c.command({"GET", "celery-task-meta-t1"}).str();
  EXPECT_EQ(
      stored,
      R"({"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-11-25T04:43:28.248215", "task_id": "t1"})");
  auto ttl = c.command({"TTL", "celery-task-meta-t1"}).integer();
  EXPECT_GT(ttl, 86000);
  auto msg = sub.get_message(5s);
  ASSERT_TRUE(msg);
  EXPECT_EQ(msg->data, stored);  // the identical JSON is PUBLISHed
  tq::ResultMeta f = m;
  f.status = tq::State::Failure;
  EXPECT_FALSE(be.store(f));
  EXPECT_EQ(be.get("t1")->status, tq::State::Success);
  EXPECT_FALSE(be.get("missing").has_value());
  std::vector<std::string> ids{"t1", "missing"};
  auto many = be.get_many(ids);
  ASSERT_EQ(many.size(), 2u);
  EXPECT_TRUE(many[0].has_value());
  EXPECT_FALSE(many[1].has_value());
  be.forget("t1");
  EXPECT_FALSE(be.get("t1").has_value());
}

TEST(RedisResultBackend, ReadsPythonMetasAndWaitsForPublish) {
  RedisServer server;
  r::RedisResultBackend be(tq::Url::parse(server.url() + "?expires=0"));
  EXPECT_EQ(be.expires(), 0s);
  auto c = r::Connection::connect(server.url());
  std::string failure = sample("result_failure.json");
  auto fj = tq::loads(failure);
  std::string fid = fj["task_id"];
  c.command({"SET", "celery-task-meta-" + fid, failure});
  auto got = be.wait(fid, 2s);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, tq::State::Failure);
  EXPECT_EQ(got->result["exc_type"], "ValueError");
  // a result published later wakes the waiter
  std::thread writer([&] {
    std::this_thread::sleep_for(200ms);
    r::RedisResultBackend w(tq::Url::parse(server.url()));
    tq::ResultMeta m;
    m.task_id = "later";
    m.status = tq::State::Success;
    m.result = "ok";
    m.date_done = "2026-11-25T04:43:28.248215";
    w.store(m);
  });
  auto later = be.wait("later", 10s);
  writer.join();
  ASSERT_TRUE(later);
  EXPECT_EQ(later->result, "ok");
  EXPECT_EQ(c.command({"TTL", "celery-task-meta-later"}).integer() > 0, true);
  EXPECT_EQ(c.command({"TTL", "celery-task-meta-" + fid}).integer(), -1);
  // a timeout returns what is there (nothing)
  EXPECT_FALSE(be.wait("never", 100ms).has_value());
  std::uint64_t cursor = 0;
  be.wait_for_change(&cursor, 10ms);
  EXPECT_FALSE(be.wait_for_change(&cursor, 50ms));
  be.close();
  EXPECT_THROW(be.get("x"), tq::BackendError);
  EXPECT_THROW(r::RedisResultBackend(tq::Url::parse(server.url() + "?expires=-3")),
               tq::ConfigError);
}

TEST(RedisResultBackend, ReadyMetasSeenOnTheSubscriptionNeedNoRoundTrip) {
  RedisServer server;
  r::RedisResultBackend be(tq::Url::parse(server.url()));
  std::uint64_t cursor = 0;
  be.wait_for_change(&cursor, 10ms);  // starts the subscriber
  auto c = r::Connection::connect(server.url());
  auto publish = [&](const std::string& id, const std::string& status) {
    std::string meta = R"({"status": ")" + status +
                       R"(", "result": 1, "traceback": null, "children": [], )" +
                       R"("date_done": null, "task_id": ")" + id + R"("})";
    c.command({"SET", "celery-task-meta-" + id, meta});
    c.command({"PUBLISH", "celery-task-meta-" + id, meta});
  };
  publish("done", "SUCCESS");
  publish("retrying", "RETRY");
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (be.wait_for_change(&cursor, 100ms) && std::chrono::steady_clock::now() < deadline) {
  }
  // the key is gone from Redis, yet the ready meta seen on the channel answers;
  // a non-ready one is always asked of Redis
  c.command({"DEL", "celery-task-meta-done", "celery-task-meta-retrying"});
  ASSERT_TRUE(be.get("done"));
  EXPECT_EQ(be.get("done")->status, tq::State::Success);
  EXPECT_FALSE(be.get("retrying"));
  std::vector<std::string> ids{"retrying", "done", "absent"};
  auto many = be.get_many(ids);
  ASSERT_EQ(many.size(), 3u);
  EXPECT_FALSE(many[0]);
  ASSERT_TRUE(many[1]);
  EXPECT_EQ(many[1]->task_id, "done");
  EXPECT_FALSE(many[2]);
  // forget() forgets it here too
  be.forget("done");
  EXPECT_FALSE(be.get("done"));
}
