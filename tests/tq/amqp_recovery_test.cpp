// Nothing acknowledged is lost on RabbitMQ: a worker SIGKILLed mid-stream
// with acks_late (the broker redelivers its unacked deliveries), and
// rabbit-server restarted under a running worker (durable queues, persistent
// messages, reconnect with backoff).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <thread>

#include "amqp_env.hpp"
#include "celeriac/redis/connection.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::redis;
using celeriac::tq::test::rabbit;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::unique_queue;
using tq::Json;
using namespace std::chrono_literals;

namespace {

const std::string kDone = "celeriac.test.done";

template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// tasks.mark: RPUSH the token to Redis (retrying while anything is away),
// after a short pause so a stream is still in flight when we strike.
void register_mark(tq::App& app, const std::string& redis_url) {
  auto conn = std::make_shared<std::optional<r::Connection>>();
  auto mu = std::make_shared<std::mutex>();
  app.task("tasks.mark", {"token"}, [conn, mu, redis_url](std::string token) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard lk(*mu);
    for (int attempt = 0;; ++attempt) {
      try {
        if (!*conn) conn->emplace(r::Connection::connect(redis_url));
        (*conn)->command({"RPUSH", kDone, token});
        return token;
      } catch (const std::exception&) {
        conn->reset();
        if (attempt == 200) throw;
        std::this_thread::sleep_for(50ms);
      }
    }
  });
}

tq::WorkerOptions late_acks(const std::string& queue) {
  tq::WorkerOptions o;
  o.hostname = "cpp-recovery@celeriac-test";
  o.queues = {queue};
  o.concurrency = 2;
  o.prefetch_multiplier = 4;
  o.acks_late = true;
  o.poll_interval = 200ms;
  return o;
}

std::map<std::string, int> marks(r::Connection& redis) {
  std::map<std::string, int> out;
  r::Reply all = redis.command({"LRANGE", kDone, "0", "-1"});
  for (auto& e : all.elements()) ++out[e.str()];
  return out;
}

void publish_tokens(tq::App& client, const std::string& queue, int from, int to) {
  tq::CallOptions o;
  o.queue = queue;
  o.ignore_result = true;
  std::vector<tq::TaskMessage> batch;
  for (int i = from; i < to; ++i)
    batch.push_back(client.build_message("tasks.mark", {std::to_string(i)}, Json::object(), o));
  client.publish_many(batch);
}

}  // namespace

TEST(AmqpRecovery, WorkerKilledWithAcksLateLosesNothing) {
  RedisServer results;
  auto q = unique_queue("kill9");
  constexpr int kTasks = 120;
  {
    tq::App client(rabbit().url(), results.url());
    publish_tokens(client, q, 0, kTasks);
  }
  std::fflush(nullptr);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The victim: a worker process of its own, killed without warning.
    tq::App app(rabbit().url(), results.url());
    register_mark(app, results.url());
    tq::Worker worker(app, late_acks(q));
    worker.start();
    for (;;) std::this_thread::sleep_for(1s);
  }
  r::Connection redis = r::Connection::connect(results.url());
  bool started = eventually([&] { return redis.command({"LLEN", kDone}).integer() >= 10; }, 60s);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(started) << "the worker process ran nothing";
  ASSERT_LT(redis.command({"LLEN", kDone}).integer(), kTasks)
      << "killed too late to prove anything";
  // A fresh worker finishes the stream: what the dead one held comes back.
  tq::App app(rabbit().url(), results.url());
  register_mark(app, results.url());
  tq::Worker worker(app, late_acks(q));
  worker.start();
  EXPECT_TRUE(
      eventually([&] { return marks(redis).size() == static_cast<std::size_t>(kTasks); }, 90s))
      << marks(redis).size() << " of " << kTasks << " tokens ran";
  worker.stop();
  worker.wait(20s);
  EXPECT_GT(worker.counters().received, 0u);
  tq::amqp::AmqpBroker b(tq::Url::parse(rabbit().url()));
  EXPECT_EQ(b.queue_length(q), 0u);
}

TEST(AmqpRecovery, RabbitRestartMidStreamLosesNoAcknowledgedTask) {
  RedisServer results;
  auto q = unique_queue("restart");
  constexpr int kBefore = 150, kAfter = 50;
  tq::App client(rabbit().url(), results.url());
  publish_tokens(client, q, 0, kBefore);
  tq::App app(rabbit().url(), results.url());
  register_mark(app, results.url());
  tq::Worker worker(app, late_acks(q));
  worker.start();
  r::Connection redis = r::Connection::connect(results.url());
  ASSERT_TRUE(eventually([&] { return redis.command({"LLEN", kDone}).integer() >= 10; }, 60s));
  rabbit().stop();
  rabbit().start();
  // The client reconnects too (its publishes are confirmed after the restart).
  for (int attempt = 0;; ++attempt) {
    try {
      publish_tokens(client, q, kBefore, kBefore + kAfter);
      break;
    } catch (const tq::BrokerError& e) {
      ASSERT_LT(attempt, 20) << e.what();
      std::this_thread::sleep_for(500ms);
    }
  }
  EXPECT_TRUE(eventually(
      [&] { return marks(redis).size() == static_cast<std::size_t>(kBefore + kAfter); }, 120s))
      << marks(redis).size() << " of " << kBefore + kAfter << " tokens ran";
  worker.stop();
  worker.wait(20s);
}
