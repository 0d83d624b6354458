// Brokers and result backends: memory:// and sqlite:// behave the same
// (publish/reserve/ack/requeue/priority/dead letters/restore), and SQLite is
// shared by two processes on one file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/result_backend.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;

namespace {

// The envelope only needs to be text for the broker; a tag inside tells
// messages apart.
std::string env(const std::string& tag) {
  return "{\"tag\": \"" + tag + "\"}";
}

std::vector<std::string> envelopes(const std::vector<Delivery>& ds) {
  std::vector<std::string> out;
  for (auto& d : ds) out.push_back(d.envelope);
  return out;
}

class TqBroker : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    url_ = GetParam() == "memory" ? "memory://broker-test-" + make_uuid() : db_.url();
    broker_ = make_broker(url_);
  }
  std::vector<std::string> q(const std::string& name = "celery") { return {name}; }

  tqtest::TempDb db_;
  std::string url_;
  std::unique_ptr<Broker> broker_;
};

}  // namespace

TEST_P(TqBroker, PublishReserveAckIsFifo) {
  for (int i = 0; i < 5; ++i) broker_->publish("celery", 0, env(std::to_string(i)));
  EXPECT_EQ(broker_->queue_length("celery"), 5u);
  auto got = broker_->reserve(q(), 3, 100ms);
  EXPECT_EQ(envelopes(got), (std::vector<std::string>{env("0"), env("1"), env("2")}));
  EXPECT_EQ(got[0].queue, "celery");
  EXPECT_FALSE(got[0].redelivered);
  EXPECT_EQ(broker_->queue_length("celery"), 2u);  // reserved ones are not waiting
  broker_->ack_many(got);
  auto rest = broker_->reserve(q(), 10, 100ms);
  EXPECT_EQ(envelopes(rest), (std::vector<std::string>{env("3"), env("4")}));
  for (auto& d : rest) broker_->ack(d);
  EXPECT_TRUE(broker_->reserve(q(), 10, 10ms).empty());
  EXPECT_EQ(broker_->restore_unacked(), 0u);  // acked messages are gone for good
}

TEST_P(TqBroker, ReserveTimesOutEmptyAndWakesOnPublish) {
  EXPECT_TRUE(broker_->reserve(q(), 1, 20ms).empty());
  std::thread producer([&] {
    std::this_thread::sleep_for(50ms);
    auto other = make_broker(url_);
    other->publish("celery", 0, env("late"));
  });
  auto got = broker_->reserve(q(), 1, 5000ms);
  producer.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].envelope, env("late"));
}

TEST_P(TqBroker, RequeuePutsBackAtTheFrontMarkedRedelivered) {
  broker_->publish("celery", 0, env("a"));
  broker_->publish("celery", 0, env("b"));
  auto first = broker_->get(q(), 100ms);
  ASSERT_TRUE(first);
  broker_->requeue(*first);
  auto again = broker_->reserve(q(), 2, 100ms);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_TRUE(again[0].redelivered);
  EXPECT_NE(again[0].envelope.find("\"a\""), std::string::npos);
  EXPECT_FALSE(again[1].redelivered);
}

TEST_P(TqBroker, PriorityStepsComeFirstAcrossQueues) {
  broker_->publish("low", 9, env("low9"));
  broker_->publish("celery", 6, env("c6"));
  broker_->publish("celery", 0, env("c0"));
  broker_->publish("low", 2, env("low2"));   // step 0
  broker_->publish("celery", 4, env("c4"));  // step 3
  std::vector<std::string> queues{"celery", "low"};
  std::vector<std::string> order;
  while (auto d = broker_->get(queues, 50ms)) {
    order.push_back(d->envelope);
    broker_->ack(*d);
  }
  ASSERT_EQ(order.size(), 5u);
  std::set<std::string> first_two{order[0], order[1]};
  EXPECT_EQ(first_two, (std::set<std::string>{env("c0"), env("low2")}));
  EXPECT_EQ(order[2], env("c4"));
  EXPECT_EQ(order[3], env("c6"));
  EXPECT_EQ(order[4], env("low9"));
}

TEST_P(TqBroker, QueuesAreSeparate) {
  broker_->publish("a", 0, env("in-a"));
  EXPECT_TRUE(broker_->reserve(q("b"), 1, 10ms).empty());
  EXPECT_EQ(broker_->queue_length("a"), 1u);
  EXPECT_EQ(broker_->purge("a"), 1u);
  EXPECT_EQ(broker_->queue_length("a"), 0u);
}

TEST_P(TqBroker, DeadLettersKeepTheReasonAndAreNeverRedelivered) {
  broker_->publish("celery", 0, "not json");
  auto d = broker_->get(q(), 100ms);
  ASSERT_TRUE(d);
  broker_->dead_letter(*d, "envelope is not JSON");
  EXPECT_EQ(broker_->restore_unacked(), 0u);
  EXPECT_EQ(broker_->restore_stale(0s), 0u);
  EXPECT_TRUE(broker_->reserve(q(), 1, 10ms).empty());
  auto dead = broker_->dead_letters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].envelope, "not json");
  EXPECT_EQ(dead[0].queue, "celery");
  EXPECT_EQ(dead[0].reason, "envelope is not JSON");
  EXPECT_GT(dead[0].time, 0);
}

TEST_P(TqBroker, RestoreUnackedOnlyTakesThisInstancesReservations) {
  auto other = make_broker(url_);
  broker_->publish("celery", 0, env("mine"));
  broker_->publish("celery", 0, env("theirs"));
  auto mine = broker_->get(q(), 100ms);
  auto theirs = other->get(q(), 100ms);
  ASSERT_TRUE(mine && theirs);
  EXPECT_EQ(broker_->restore_unacked(), 1u);
  auto back = broker_->reserve(q(), 5, 100ms);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].envelope.find("mine") != std::string::npos, true);
  EXPECT_TRUE(back[0].redelivered);
  other->ack(*theirs);
  broker_->ack(back[0]);
}

TEST_P(TqBroker, RestoreStaleTakesOldReservationsOfAnyone) {
  auto crashed = make_broker(url_);
  broker_->publish("celery", 0, env("x"));
  ASSERT_TRUE(crashed->get(q(), 100ms));
  EXPECT_EQ(broker_->restore_stale(3600s), 0u);  // young: left alone
  EXPECT_EQ(broker_->restore_stale(0s), 1u);
  auto d = broker_->get(q(), 100ms);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->redelivered);
}

TEST_P(TqBroker, CloseRestoresAndLaterCallsThrow) {
  broker_->publish("celery", 0, env("x"));
  ASSERT_TRUE(broker_->get(q(), 100ms));
  broker_->close();
  broker_->close();  // idempotent
  EXPECT_THROW(broker_->publish("celery", 0, env("y")), BrokerError);
  auto other = make_broker(url_);
  auto d = other->get(q(), 100ms);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->redelivered);
}

TEST_P(TqBroker, PublishManyKeepsOrder) {
  std::vector<Outgoing> out;
  for (int i = 0; i < 50; ++i) out.push_back(Outgoing{"celery", 0, env(std::to_string(i))});
  broker_->publish_many(out);
  auto got = broker_->reserve(q(), 100, 100ms);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(got[static_cast<std::size_t>(i)].envelope, env(std::to_string(i)));
}

INSTANTIATE_TEST_SUITE_P(Transports, TqBroker, ::testing::Values("memory", "sqlite"));

// ---- result backends ----

namespace {

class TqBackend : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    url_ = GetParam() == "memory" ? "memory://backend-test-" + make_uuid() : db_.url();
    backend_ = make_backend(url_);
  }
  static ResultMeta meta(const std::string& id, State s, Json result = nullptr) {
    ResultMeta m;
    m.task_id = id;
    m.status = s;
    m.result = std::move(result);
    if (is_ready(s)) m.date_done = "2026-11-25T04:43:30.026214";
    return m;
  }

  tqtest::TempDb db_;
  std::string url_;
  std::unique_ptr<ResultBackend> backend_;
};

}  // namespace

TEST_P(TqBackend, StoreGetForget) {
  EXPECT_FALSE(backend_->get("nope"));
  EXPECT_TRUE(backend_->store(meta("t1", State::Started)));
  EXPECT_EQ(backend_->get("t1")->status, State::Started);
  EXPECT_TRUE(backend_->store(meta("t1", State::Success, 5)));
  auto got = backend_->get("t1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, State::Success);
  EXPECT_EQ(got->result, 5);
  backend_->forget("t1");
  EXPECT_FALSE(backend_->get("t1"));
}

TEST_P(TqBackend, SuccessIsNeverOverwritten) {
  EXPECT_TRUE(backend_->store(meta("t", State::Success, "first")));
  EXPECT_FALSE(backend_->store(meta("t", State::Failure, "late")));
  EXPECT_FALSE(backend_->store(meta("t", State::Success, "again")));
  EXPECT_EQ(backend_->get("t")->result, "first");
}

TEST_P(TqBackend, GetManyKeepsOrderWithGaps) {
  backend_->store(meta("a", State::Success, 1));
  backend_->store(meta("c", State::Failure, 3));
  std::vector<std::string> ids{"a", "b", "c"};
  auto got = backend_->get_many(ids);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0]->result, 1);
  EXPECT_FALSE(got[1]);
  EXPECT_EQ(got[2]->status, State::Failure);
}

TEST_P(TqBackend, WaitReturnsWhenAnotherInstanceStores) {
  EXPECT_FALSE(backend_->wait("w", 20ms));
  std::thread writer([&] {
    std::this_thread::sleep_for(50ms);
    make_backend(url_)->store(meta("w", State::Success, "done"));
  });
  auto got = backend_->wait("w", 5000ms);
  writer.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->result, "done");
}

TEST_P(TqBackend, ExpiresFromUrlAndCleanup) {
  EXPECT_EQ(backend_->expires(), std::chrono::seconds(86400));
  std::string sep = url_.find('?') == std::string::npos ? "?" : "&";
  auto quick = make_backend(url_ + sep + "expires=1");
  EXPECT_EQ(quick->expires(), std::chrono::seconds(1));
  quick->store(meta("old", State::Success, 1));
  std::this_thread::sleep_for(1100ms);  // let it age past its expiry
  EXPECT_GE(quick->cleanup(), 1u);
  EXPECT_FALSE(quick->get("old"));
}

INSTANTIATE_TEST_SUITE_P(Transports, TqBackend, ::testing::Values("memory", "sqlite"));

// ---- SQLite: two processes on one file ----

namespace {

// Consumes until it takes a sentinel; writes every taken tag to `out`.
[[noreturn]] void consume_in_child(const std::string& url, const std::string& out) {
  int code = 0;
  try {
    auto b = make_broker(url);
    std::ofstream f(out);
    std::vector<std::string> queues{"celery"};
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (bool stop = false; !stop && std::chrono::steady_clock::now() < deadline;) {
      for (auto& d : b->reserve(queues, 4, 100ms)) {
        if (d.envelope == env("stop") && stop)
          b->publish("celery", 9, env("stop"));  // the other child's sentinel
        else if (d.envelope == env("stop"))
          stop = true;
        else
          f << d.envelope << "\n";
        b->ack(d);
      }
    }
    f.flush();
    b->close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer child: %s\n", e.what());
    code = 1;
  }
  _exit(code);
}

bool wait_child(pid_t pid, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::this_thread::sleep_for(10ms);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return false;
}

}  // namespace

TEST(TqSqliteBroker, TwoProcessesShareOneFileWithoutLossOrDuplicates) {
  tqtest::TempDb db;
  std::string out1 = db.path() + ".c1", out2 = db.path() + ".c2";
  // Fork before this process opens the file: SQLite connections must not
  // cross fork().
  pid_t c1 = fork();
  if (c1 == 0) consume_in_child(db.url(), out1);
  pid_t c2 = fork();
  if (c2 == 0) consume_in_child(db.url(), out2);
  {
    auto b = make_broker(db.url());
    std::vector<Outgoing> batch;
    for (int i = 0; i < 400; ++i) batch.push_back(Outgoing{"celery", 0, env(std::to_string(i))});
    b->publish_many(batch);
    // Step 9 is only taken once step 0 is empty: one sentinel per child.
    b->publish("celery", 9, env("stop"));
    b->publish("celery", 9, env("stop"));
  }
  ASSERT_TRUE(wait_child(c1, 30s));
  ASSERT_TRUE(wait_child(c2, 30s));
  std::multiset<std::string> seen;
  for (const auto& path : {out1, out2}) {
    std::ifstream f(path);
    for (std::string line; std::getline(f, line);) seen.insert(line);
  }
  EXPECT_EQ(seen.size(), 400u);
  for (int i = 0; i < 400; ++i) EXPECT_EQ(seen.count(env(std::to_string(i))), 1u) << i;
  EXPECT_EQ(make_broker(db.url())->queue_length("celery"), 0u);
}

TEST(TqSqliteBroker, DurableAcrossInstances) {
  tqtest::TempDb db;
  make_broker(db.url())->publish("celery", 0, env("kept"));
  auto later = make_broker(db.url());
  auto d = later->get(std::vector<std::string>{"celery"}, 100ms);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->envelope, env("kept"));
}

TEST(TqUrls, BadUrlsQuoteTheUrl) {
  try {
    make_broker("ftp://x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ftp://x"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_broker("no scheme here"), ConfigError);
  EXPECT_THROW(make_backend("bogus://"), ConfigError);
}
