// One conformance suite for every ExecutionPool (-P threads, processes,
// async, solo): the same task behaviour whichever pool runs it. Its own
// executable, so the processes pool's fork server starts with this app.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"

using namespace celeriac;
using namespace celeriac::tq;
using namespace std::chrono_literals;
using tqtest::eventually;
using tqtest::failure_of;

namespace {

constexpr auto kWait = 30s;

// Every task is registered before the first worker starts (the processes
// pool's children see the app as it was when the fork server started).
struct ConformanceApp {
  App app{"memory://pool-conformance", ""};
  TaskHandle<int, int, int> add = app.task("c.add", {"x", "y"}, [](int x, int y) { return x + y; });
  TaskHandle<int, int> co_double = app.task("c.co_double", {"x"}, [](int x) -> aio::Task<int> {
    co_await aio::sleep(1ms);
    co_return 2 * x;
  });
  TaskHandle<int, std::string> fail =
      app.task("c.fail", {"why"}, [](std::string why) -> int { throw std::invalid_argument(why); });
  TaskHandle<int> again = app.task("c.again", {}, [](Context& ctx) {
    if (ctx.retries() < 2) ctx.retry(0.0);
    return ctx.retries();
  });
  TaskHandle<int, int> nap = app.task("c.nap", {"ms"}, [](int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
  });
  TaskHandle<int> crash = app.task("c.crash", {}, []() -> int {
    raise(SIGKILL);
    return 0;
  });

  static ConformanceApp& get() {
    static ConformanceApp instance;
    return instance;
  }
};

class PoolConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { c.app.broker().purge("celery"); }
  void TearDown() override {
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(kWait));
    }
  }
  void start_worker(int concurrency = 2) {
    WorkerOptions o;
    o.pool = GetParam();
    o.concurrency = concurrency;
    o.hostname = "celery@conformance-" + GetParam();
    o.poll_interval = 20ms;
    worker = std::make_unique<Worker>(c.app, o);
    worker->start();
  }
  ConformanceApp& c = ConformanceApp::get();
  std::unique_ptr<Worker> worker;
};

}  // namespace

TEST_P(PoolConformance, Success) {
  start_worker();
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(c.add.delay(i, 100));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(kWait), i + 100);
  EXPECT_EQ(c.co_double.delay(21).get(kWait), 42);
  EXPECT_TRUE(eventually([&] { return worker->counters().succeeded == 21u; }));
  EXPECT_EQ(worker->stats()["pool"]["implementation"], GetParam());
}

TEST_P(PoolConformance, FailureCarriesTypeAndMessage) {
  start_worker();
  TaskError e = failure_of(c.fail.delay(std::string("no good")));
  EXPECT_EQ(e.exc_type(), "ValueError");
  EXPECT_EQ(e.message(), "no good");
  EXPECT_NE(e.traceback().find("c.fail"), std::string::npos) << e.traceback();
  EXPECT_EQ(failure_of(c.add.apply_async(Json::array({1, "two"}))).exc_type(), "TypeError");
  EXPECT_TRUE(eventually([&] { return worker->counters().failed == 2u; }));
}

TEST_P(PoolConformance, RetryRepublishesUntilItSucceeds) {
  start_worker();
  EXPECT_EQ(c.again.delay().get(kWait), 2);
  EXPECT_TRUE(eventually([&] { return worker->counters().retried == 2u; }));
}

TEST_P(PoolConformance, RevokedTaskIsNotRun) {
  start_worker();
  std::string id = make_uuid();
  worker->revoke(id, false);
  CallOptions o;
  o.task_id = id;
  TaskError e = failure_of(c.add.apply_async(Json::array({1, 2}), Json::object(), o));
  EXPECT_EQ(e.exc_type(), "TaskRevokedError");
  EXPECT_EQ(c.add.delay(1, 2).get(kWait), 3);  // the worker goes on
  // counted after the REVOKED result is stored (the client may see it first)
  EXPECT_TRUE(eventually([&] { return worker->counters().revoked == 1u; }));
}

// Graceful stop: the running task finishes and stores its result; the
// prefetched ones go back to the queue, none lost, none run twice.
TEST_P(PoolConformance, ShutdownFinishesRunningAndPutsPrefetchedBack) {
  start_worker(1);
  auto slow = c.nap.delay(600);
  ASSERT_TRUE(eventually([&] { return worker->active().size() == 1u; }));
  std::vector<AsyncResult<int>> quick;
  for (int i = 0; i < 6; ++i) quick.push_back(c.add.delay(i, i));
  std::this_thread::sleep_for(100ms);  // let the consumer prefetch some of them
  worker->stop();
  ASSERT_TRUE(worker->wait(kWait));
  worker.reset();
  EXPECT_EQ(slow.get(1s), 600);
  std::size_t ran = 0;
  for (auto& q : quick) ran += q.ready() ? 1 : 0;
  EXPECT_EQ(ran + c.app.broker().queue_length("celery"), 6u);
  start_worker(2);  // what was put back runs once
  for (int i = 0; i < 6; ++i) EXPECT_EQ(quick[static_cast<std::size_t>(i)].get(kWait), 2 * i);
}

INSTANTIATE_TEST_SUITE_P(Pools, PoolConformance,
                         ::testing::Values("threads", "processes", "async", "solo"),
                         [](const auto& info) { return info.param; });

// Only the processes pool survives a task that kills its own process.
class ProcessesConformance : public PoolConformance {};

TEST_P(ProcessesConformance, CrashFailsOnlyItsTask) {
  start_worker(1);
  TaskError e = failure_of(c.crash.delay());
  EXPECT_EQ(e.exc_type(), "WorkerLostError");
  EXPECT_NE(e.message().find("SIGKILL"), std::string::npos) << e.message();
  EXPECT_EQ(c.add.delay(2, 2).get(kWait), 4);
}

INSTANTIATE_TEST_SUITE_P(Pools, ProcessesConformance, ::testing::Values("processes"),
                         [](const auto& info) { return info.param; });
