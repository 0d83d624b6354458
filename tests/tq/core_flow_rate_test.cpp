// Rate limits: Celery's rate strings, the per-worker token bucket (a limited
// job waits off the pool), live changes, and the fleet-wide limit on the
// memory:// and SQLite transports. Durations are only bounded from below:
// the limit's guarantee is that starts are never closer than 1/rate.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/rate_limit.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;
using tqtest::eventually;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kWait = 20s;

std::unique_ptr<Worker> start_worker(App& app, std::string name, int concurrency = 2) {
  WorkerOptions o;
  o.hostname = "celery@" + name;
  o.concurrency = concurrency;
  o.poll_interval = 20ms;
  auto w = std::make_unique<Worker>(app, o);
  w->start();
  return w;
}

void stop(std::unique_ptr<Worker>& w) {
  w->stop();
  EXPECT_TRUE(w->wait(kWait));
}

// Sends `n` calls of `task` and waits for all; returns the seconds from just
// before the first send to the last result.
template <class Handle>
double run_all(const Handle& task, int n) {
  auto t0 = SteadyClock::now();
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < n; ++i) rs.push_back(task.delay(i));
  for (int i = 0; i < n; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(kWait), i);
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

TEST(TqRateParse, CeleryRateStrings) {
  EXPECT_DOUBLE_EQ(parse_rate("10/s"), 10.0);
  EXPECT_DOUBLE_EQ(parse_rate("120/m"), 2.0);
  EXPECT_DOUBLE_EQ(parse_rate("3600/h"), 1.0);
  EXPECT_DOUBLE_EQ(parse_rate("2.5"), 2.5);
  EXPECT_DOUBLE_EQ(parse_rate(""), 0.0);
  EXPECT_DOUBLE_EQ(parse_rate("0"), 0.0);
}

TEST(TqRateParse, BadRatesNameTheValue) {
  for (const char* bad : {"ten/s", "10/d", "-1/s", "10/", "/s", "10 /s", "nan", "1e999"}) {
    try {
      (void)parse_rate(bad, "task 'tasks.x' rate_limit");
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("tasks.x"), std::string::npos) << what;
      EXPECT_NE(what.find(std::string("'") + bad + "'"), std::string::npos) << what;
    }
  }
}

TEST(TqRateParse, RegisteringATaskWithABadRateFails) {
  App app{"memory://rate-" + make_uuid(), ""};
  TaskOptions o;
  o.rate_limit = "5/fortnight";
  EXPECT_THROW(app.task(
                   "tasks.bad", {}, [] { return 1; }, o),
               ConfigError);
  TaskOptions g;
  g.global_rate_limit = "-3";
  EXPECT_THROW(app.task(
                   "tasks.bad2", {}, [] { return 1; }, g),
               ConfigError);
  EXPECT_EQ(app.find_task("tasks.bad"), nullptr);
}

TEST(TqRateLimit, PerWorkerLimitSpacesStarts) {
  App app{"memory://rate-" + make_uuid(), ""};
  TaskOptions o;
  o.rate_limit = "20/s";  // one start per 50 ms
  auto echo = app.task(
      "tasks.echo", {"x"}, [](int x) { return x; }, o);
  auto w = start_worker(app, "rate1", 4);
  // Six starts need five intervals after the first.
  EXPECT_GE(run_all(echo, 6), 5 * 0.05 - 0.005);
  stop(w);
}

TEST(TqRateLimit, LimitedJobWaitsOffThePoolAndOthersRun) {
  App app{"memory://rate-" + make_uuid(), ""};
  TaskOptions o;
  o.rate_limit = "1/h";
  auto slow = app.task(
      "tasks.limited", {"x"}, [](int x) { return x; }, o);
  auto free_task = app.task("tasks.free", {"x"}, [](int x) { return x; });
  auto w = start_worker(app, "rate2", 1);  // one pool slot
  EXPECT_EQ(slow.delay(1).get(kWait), 1);
  auto held = slow.delay(2);  // waits an hour for its start slot
  ASSERT_TRUE(eventually([&] { return w->reserved().size() == 1; }));
  EXPECT_EQ(free_task.delay(7).get(kWait), 7);  // the only slot is free
  EXPECT_EQ(w->reserved().at(0)["id"], held.id());
  EXPECT_FALSE(held.ready());
  stop(w);  // the held message goes back to its queue
  EXPECT_EQ(app.broker().queue_length("celery"), 1u);
}

TEST(TqRateLimit, LiveChangeByRemoteControlMethod) {
  App app{"memory://rate-" + make_uuid(), ""};
  auto echo = app.task("tasks.echo", {"x"}, [](int x) { return x; });
  auto w = start_worker(app, "rate3", 2);
  EXPECT_EQ(w->rate_limit("tasks.nope", "1/s")["error"], "unknown task");
  Json bad = w->rate_limit("tasks.echo", "often");
  ASSERT_TRUE(bad.contains("error"));
  EXPECT_NE(bad["error"].get<std::string>().find("often"), std::string::npos) << bad;
  EXPECT_EQ(w->rate_limit("tasks.echo", "1/h")["ok"], "new rate limit set successfully");
  EXPECT_EQ(echo.delay(1).get(kWait), 1);
  auto held = echo.delay(2);
  ASSERT_TRUE(eventually([&] { return w->reserved().size() == 1; }));
  EXPECT_FALSE(held.ready());
  EXPECT_EQ(w->rate_limit("tasks.echo", "0")["ok"], "rate limit disabled successfully");
  EXPECT_EQ(echo.delay(3).get(kWait), 3);  // new calls are no longer limited
  EXPECT_EQ(control_rate_limit(*w, Json{{"task_name", "tasks.echo"}, {"rate_limit", 100}})["ok"],
            "new rate limit set successfully");
  EXPECT_TRUE(control_rate_limit(*w, Json{{"rate_limit", "1/s"}}).contains("error"));
  stop(w);
}

TEST(TqRateLimit, GlobalLimitHoldsAcrossTwoWorkersInMemory) {
  App app{"memory://rate-" + make_uuid(), ""};
  TaskOptions o;
  o.global_rate_limit = "20/s";
  auto echo = app.task(
      "tasks.echo", {"x"}, [](int x) { return x; }, o);
  auto a = start_worker(app, "g1", 2);
  auto b = start_worker(app, "g2", 2);
  EXPECT_GE(run_all(echo, 8), 7 * 0.05 - 0.005);
  stop(a);
  stop(b);
}

TEST(TqRateLimit, GlobalLimitHoldsAcrossTwoWorkersOnSqlite) {
  tqtest::TempDb db;
  App app{db.url(), ""};
  TaskOptions o;
  o.global_rate_limit = "20/s";
  auto echo = app.task(
      "tasks.echo", {"x"}, [](int x) { return x; }, o);
  auto a = start_worker(app, "s1", 2);
  auto b = start_worker(app, "s2", 2);
  EXPECT_GE(run_all(echo, 8), 7 * 0.05 - 0.005);
  stop(a);
  stop(b);
}

TEST(TqRateLimit, SqliteBucketIsSharedByBrokerInstances) {
  tqtest::TempDb db;
  auto b1 = make_broker(db.url());
  auto b2 = make_broker(db.url());
  auto w1 = b1->take_rate_slot("celeriac.rate.t", 1h);
  auto w2 = b2->take_rate_slot("celeriac.rate.t", 1h);
  EXPECT_EQ(w1.count(), 0);
  EXPECT_GT(w2, 59min);  // the second start waits for the first's hour
  EXPECT_EQ(b1->take_rate_slot("celeriac.rate.other", 1h).count(), 0);
}
