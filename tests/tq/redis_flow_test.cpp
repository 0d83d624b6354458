// Flow control against a real redis-server and real Python Celery: routes to
// a queue a Python worker consumes, the per-worker rate limit seen from a
// Python client, `celery control rate_limit` changing a celeriac worker's
// limit, and the fleet-wide limit holding across two celeriac workers.
// Durations are only bounded from below (the limit's guarantee).
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::CeleryWorker;
using celeriac::tq::test::PyCall;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::run_celery_cli;
using celeriac::tq::test::run_python_client;
using tq::Json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

std::unique_ptr<tq::Worker> start_worker(tq::App& app, const std::string& name, int concurrency,
                                         std::vector<std::string> queues = {}) {
  tq::WorkerOptions o;
  o.queues = std::move(queues);
  o.hostname = "celeriac@" + name;
  o.concurrency = concurrency;
  o.poll_interval = 20ms;
  auto w = std::make_unique<tq::Worker>(app, o);
  w->start();
  return w;
}

void stop(std::unique_ptr<tq::Worker>& w) {
  w->stop();
  EXPECT_TRUE(w->wait(30s));
}

template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 15s) {
  auto deadline = SteadyClock::now() + limit;
  while (SteadyClock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

TEST(RedisFlow, RoutedCallsReachAPythonWorkerOnTheRoutedQueue) {
  RedisServer server;
  CeleryWorker::Options po;
  po.queues = {"py-routed"};
  CeleryWorker py(server.url(), po);
  tq::App app(server.url(), server.url());
  app.route("tasks.mul", "elsewhere");
  app.route("tasks.a*", "py-routed");
  EXPECT_EQ(app.send_task("tasks.add", {20, 22}).get(30s), 42);
  EXPECT_EQ(app.broker().queue_length("celery"), 0u);
}

TEST(RedisFlow, GlobalLimitHoldsAcrossTwoCeleriacWorkers) {
  RedisServer server;
  tq::App app(server.url(), server.url());
  tq::TaskOptions o;
  o.global_rate_limit = "5/s";
  auto echo = app.task(
      "tasks.echo", {"x"}, [](int x) { return x; }, o);
  // Each worker has a queue of its own, so both surely run half the calls.
  auto a = start_worker(app, "ga", 4, {"qa"});
  auto b = start_worker(app, "gb", 4, {"qb"});
  auto t0 = SteadyClock::now();
  std::vector<tq::AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) {
    tq::CallOptions to;
    to.queue = i % 2 ? "qa" : "qb";
    rs.push_back(echo.apply_async_with(to, i));
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(60s), i);
  // 20 starts at 5/s need 19 intervals of 0.2 s; two per-worker limits would take ~2 s.
  EXPECT_GE(seconds_since(t0), 3.0);
  // The counters move right after the result is stored.
  EXPECT_TRUE(eventually([&] { return a->counters().succeeded == 10u; }));
  EXPECT_TRUE(eventually([&] { return b->counters().succeeded == 10u; }));
  stop(a);
  stop(b);
}

TEST(RedisFlow, PerWorkerLimitSeenFromAPythonClient) {
  RedisServer server;
  tq::App app(server.url(), server.url());
  tq::TaskOptions o;
  o.rate_limit = "10/s";
  app.task(
      "tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; }, o);
  auto w = start_worker(app, "pw", 4);
  std::vector<PyCall> calls;
  for (int i = 0; i < 6; ++i)
    calls.push_back(PyCall{"tasks.add", {i, 1}, Json::object(), Json::object(), 30});
  auto t0 = SteadyClock::now();
  auto out = run_python_client(server.url(), calls);
  EXPECT_GE(seconds_since(t0), 5 * 0.1 - 0.01);
  ASSERT_EQ(out.size(), 6u) << out.dump();
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(out[static_cast<std::size_t>(i)]["state"], "SUCCESS") << out.dump();
    EXPECT_EQ(out[static_cast<std::size_t>(i)]["result"], i + 1) << out.dump();
  }
  stop(w);
}

TEST(RedisFlow, CeleryControlRateLimitChangesACeleriacWorker) {
  RedisServer server;
  tq::App app(server.url(), server.url());
  auto add =
      app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  auto w = start_worker(app, "ctl", 2);
  auto set = run_celery_cli(server.url(), {"control", "rate_limit", "tasks.add", "1/h", "-d",
                                           "celeriac@ctl", "--timeout", "5"});
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_NE(set.output.find("new rate limit set successfully"), std::string::npos) << set.output;
  EXPECT_EQ(add.delay(1, 2).get(30s), 3);
  auto held = add.delay(2, 2);  // an hour away from its start slot
  ASSERT_TRUE(eventually([&] { return w->reserved().size() == 1; }));
  EXPECT_FALSE(held.ready());
  auto bad = run_celery_cli(server.url(), {"control", "rate_limit", "tasks.nope", "1/s", "-d",
                                           "celeriac@ctl", "--timeout", "5"});
  EXPECT_NE(bad.output.find("unknown task"), std::string::npos) << bad.output;
  stop(w);
}

TEST(RedisFlow, UniqueTaskAcrossTwoProducersAndReleasedAtTheEnd) {
  RedisServer server;
  tq::App a(server.url(), server.url());
  tq::App b(server.url(), server.url());
  tq::TaskOptions o;
  o.unique_for = 3600;
  auto ta = a.task(
      "tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; }, o);
  auto tb = b.task(
      "tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; }, o);
  auto first = ta.delay(1, 2);
  auto twin = tb.delay(1, 2);
  EXPECT_EQ(twin.id(), first.id());
  EXPECT_EQ(a.broker().queue_length("celery"), 1u);
  auto w = start_worker(a, "uniq", 2);
  EXPECT_EQ(twin.get(30s), 3);
  auto again = tb.delay(1, 2);  // the first ended and released the key
  EXPECT_NE(again.id(), first.id());
  EXPECT_EQ(again.get(30s), 3);
  stop(w);
}
