// A celeriac Worker and client on RabbitMQ (results in a private
// redis-server): end to end, long ETAs, and bad input over AMQP dead-lettered
// with its reason while the worker goes on.
#include <gtest/gtest.h>

#include <thread>

#include "amqp_env.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace amqp = celeriac::tq::amqp;
using celeriac::tq::test::rabbit;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::unique_queue;
using tq::Json;
using namespace std::chrono_literals;

namespace {

template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

tq::WorkerOptions options(const std::string& queue) {
  tq::WorkerOptions o;
  o.hostname = "cpp-amqp@celeriac-test";
  o.queues = {queue};
  o.concurrency = 2;
  o.poll_interval = 200ms;
  return o;
}

void register_tasks(tq::App& app) {
  app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  app.task("tasks.fail", {"message"}, [](std::string m) -> int { throw std::invalid_argument(m); });
  app.task("tasks.retry_twice", {"value"}, [](tq::Context& ctx, Json value) {
    if (ctx.retries() < 2) ctx.retry(0.0);
    return Json::array({value, ctx.retries()});
  });
}

}  // namespace

TEST(AmqpWorker, CppClientAndWorkerEndToEnd) {
  RedisServer results;
  auto q = unique_queue("e2e");
  tq::App app(rabbit().url(), results.url());
  register_tasks(app);
  tq::Worker worker(app, options(q));
  worker.start();
  tq::CallOptions on_q;
  on_q.queue = q;
  auto sum = app.send_task("tasks.add", {20, 22}, Json::object(), on_q);
  auto failed = app.send_task("tasks.fail", {"nope"}, Json::object(), on_q);
  auto retried = app.send_task("tasks.retry_twice", {"v"}, Json::object(), on_q);
  tq::CallOptions later = on_q;
  later.countdown = 1.0;
  auto delayed = app.send_task("tasks.add", {1, 1}, Json::object(), later);
  std::vector<tq::AsyncResult<Json>> many;
  for (int i = 0; i < 100; ++i)
    many.push_back(app.send_task("tasks.add", {i, 1}, Json::object(), on_q));
  EXPECT_EQ(sum.get(20s), 42);
  EXPECT_EQ(retried.get(20s), Json::array({"v", 2}));
  EXPECT_EQ(delayed.get(20s), 2);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(many[static_cast<std::size_t>(i)].get(20s), i + 1);
  try {
    failed.get(20s);
    ADD_FAILURE() << "tasks.fail succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
  }
  worker.stop();
  worker.wait(20s);
  EXPECT_EQ(worker.counters().retried, 2u);
  amqp::AmqpBroker b(tq::Url::parse(rabbit().url()));
  EXPECT_EQ(b.queue_length(q), 0u);  // everything acknowledged, nothing left
}

TEST(AmqpWorker, BadInputIsDeadLetteredWithItsReasonAndTheWorkerGoesOn) {
  RedisServer results;
  auto q = unique_queue("bad");
  amqp::AmqpBroker b(tq::Url::parse(rabbit().url()));
  b.purge(amqp::kDeadLetterQueue);
  // Raw AMQP publishes that no celeriac client would produce.
  amqp::detail::Connection raw(amqp::detail::Endpoint::from_url(tq::Url::parse(rabbit().url())));
  raw.open();
  raw.declare_exchange(q, "direct", true, false);
  raw.declare_queue(q, {});
  raw.bind_queue(q, q, q);
  auto msg = [](std::string body, std::string content_type, tq::OrderedJson headers) {
    amqp::detail::Message m;
    m.body = std::move(body);
    m.content_type = std::move(content_type);
    m.content_encoding = "utf-8";
    m.headers = std::move(headers);
    return m;
  };
  tq::OrderedJson good_headers = {{"lang", "py"}, {"task", "tasks.add"}, {"id", "bad-json"}};
  raw.publish("", q, msg("{not json", "application/json", good_headers), false);
  raw.publish("", q, msg(R"([[1, 2], {}, {}])", "application/json", tq::OrderedJson::object()),
              false);
  good_headers["id"] = "pickled";
  raw.publish("", q, msg("\x80\x04K\x01.", "application/x-python-serialize", good_headers), false);
  good_headers["id"] = "huge";
  std::string huge = "[[\"" + std::string(17u << 20, 'x') + "\", 1], {}, {}]";
  raw.publish("", q, msg(huge, "application/json", good_headers), false);
  raw.close();

  tq::App app(rabbit().url(), results.url());
  register_tasks(app);
  tq::Worker worker(app, options(q));
  worker.start();
  tq::CallOptions on_q;
  on_q.queue = q;
  EXPECT_EQ(app.send_task("tasks.add", {2, 2}, Json::object(), on_q).get(30s), 4);
  ASSERT_TRUE(eventually([&] { return worker.counters().dead_lettered >= 4; }, 30s))
      << worker.counters().dead_lettered;
  worker.stop();
  worker.wait(20s);
  auto dl = b.dead_letters();
  ASSERT_EQ(dl.size(), 4u);
  std::string reasons;
  for (auto& d : dl) {
    EXPECT_EQ(d.queue, q);
    EXPECT_FALSE(d.reason.empty());
    reasons += d.reason + "\n";
  }
  EXPECT_NE(reasons.find("application/x-python-serialize"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("oversized"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("'task'"), std::string::npos) << reasons;  // missing headers
  EXPECT_EQ(b.queue_length(q), 0u);
}

TEST(AmqpWorker, LongCountdownIsParkedNotHeldAndStillRuns) {
  RedisServer results;
  auto q = unique_queue("park");
  tq::App app(rabbit().url("?eta_hold_limit=1"), results.url());
  register_tasks(app);
  tq::Worker worker(app, options(q));
  worker.start();
  tq::CallOptions later;
  later.queue = q;
  later.countdown = 4.0;
  auto r = app.send_task("tasks.add", {3, 4}, Json::object(), later);
  amqp::AmqpBroker b(tq::Url::parse(rabbit().url()));
  // While parked it sits in a delay queue, not unacknowledged in the worker.
  EXPECT_TRUE(eventually(
      [&] {
        return b.queue_length("celeriac_delayed_1") + b.queue_length("celeriac_delayed_2") == 1;
      },
      10s));
  EXPECT_EQ(r.get(30s), 7);
  worker.stop();
  worker.wait(20s);
}
