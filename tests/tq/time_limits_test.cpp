// Time limits (soft and hard) and revoke --terminate in each of the four
// pools (-P threads, processes, async, solo), on a private redis-server, seen
// from C++ and from a real Python Celery client. Its own executable: the
// processes pool's fork server starts with this suite's one app. No timing
// assertions: limits are short, waits generous, and every wait is on a
// result or a condition.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <stop_token>
#include <string>
#include <thread>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

using namespace celeriac;
using namespace celeriac::tq;
using namespace std::chrono_literals;
using celeriac::tq::test::PyCall;
using celeriac::tq::test::RedisServer;
using tqtest::eventually;
using tqtest::failure_of;

namespace {

constexpr auto kWait = 60s;

// Released by the tests once they saw a result stored at the hard limit, so
// the given-up threads end before the worker stops (children never see it).
std::atomic<bool> g_release{false};

// Waits until `ms` passed (plain sleeps; ignores cancellation) or released.
void hold(int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!g_release.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(5ms);
}

// Every task is registered before the first worker starts.
struct LimitsApp {
  RedisServer server;
  App app{server.url(), server.url()};
  // Cooperative: stops at its soft limit (check_cancelled throws).
  TaskHandle<std::string> cooperative = app.task("tl.cooperative", {}, [](Context& ctx) {
    for (int i = 0; i < 60000; ++i) {
      ctx.check_cancelled();
      std::this_thread::sleep_for(1ms);
    }
    return std::string("never cancelled");
  });
  // Catches the soft limit to clean up, and says so.
  TaskHandle<std::string> cleans_up = app.task("tl.cleans_up", {}, [](Context& ctx) {
    try {
      for (int i = 0; i < 60000; ++i) {
        ctx.check_cancelled();
        std::this_thread::sleep_for(1ms);
      }
    } catch (const SoftTimeLimitExceeded&) {
      return std::string("cleaned up");
    }
    return std::string("never cancelled");
  });
  // Waits on its stop token instead of polling.
  TaskHandle<std::string> waits = app.task("tl.waits", {}, [](Context& ctx) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    std::stop_token st = ctx.stop_token();
    cv.wait_for(lock, st, 60s, [] { return false; });
    return std::string(ctx.cancelled() ? "stopped" : "never stopped");
  });
  // Ignores every request to stop (the hard limit's case).
  TaskHandle<std::string> stuck = app.task("tl.stuck", {}, [] {
    hold(60000);
    return std::string("late");
  });
  // Coroutine tasks (the async pool cancels them at an await).
  TaskHandle<std::string> co_sleeps = app.task("tl.co_sleeps", {}, []() -> aio::Task<std::string> {
    for (int i = 0; i < 6000 && !g_release.load(); ++i) co_await aio::sleep(10ms);
    co_return std::string("never cancelled");
  });
  TaskHandle<int, int, int> add =
      app.task("tl.add", {"x", "y"}, [](int x, int y) { return x + y; });
  // Limits from the task's options.
  TaskHandle<std::string> own_soft = app.task(
      "tl.own_soft", {},
      [](Context& ctx) {
        for (int i = 0; i < 60000; ++i) {
          ctx.check_cancelled();
          std::this_thread::sleep_for(1ms);
        }
        return std::string("never cancelled");
      },
      [] {
        TaskOptions o;
        o.soft_time_limit = 0.2;
        return o;
      }());
  TaskHandle<std::string> own_hard = app.task(
      "tl.own_hard", {},
      [] {
        hold(60000);
        return std::string("late");
      },
      [] {
        TaskOptions o;
        o.time_limit = 0.3;
        o.soft_time_limit = 0.1;
        return o;
      }());

  // Limits far beyond the test's patience: only a header can make it stop.
  TaskHandle<std::string> patient = app.task(
      "tl.patient", {},
      [](Context& ctx) {
        try {
          for (int i = 0; i < 600000; ++i) {
            ctx.check_cancelled();
            std::this_thread::sleep_for(1ms);
          }
        } catch (const SoftTimeLimitExceeded&) {
          return std::string("cleaned up");
        }
        return std::string("never cancelled");
      },
      [] {
        TaskOptions o;
        o.soft_time_limit = 600;
        o.time_limit = 900;
        return o;
      }());

  static LimitsApp& get() {
    static LimitsApp instance;
    return instance;
  }
};

class TimeLimits : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    g_release = false;
    c.app.broker().purge("celery");
  }
  void TearDown() override {
    g_release = true;
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(kWait));
    }
  }
  void start_worker(WorkerOptions o = {}) {
    o.pool = GetParam();
    if (o.concurrency == 0) o.concurrency = 2;
    o.hostname = "celery@limits-" + GetParam();
    o.poll_interval = 20ms;
    worker = std::make_unique<Worker>(c.app, o);
    worker->start();
  }
  static CallOptions limits(std::optional<double> soft, std::optional<double> hard) {
    CallOptions o;
    o.soft_time_limit = soft;
    o.time_limit = hard;
    return o;
  }
  static WorkerOptions single() {
    WorkerOptions o;
    o.concurrency = 1;
    return o;
  }
  bool coroutine_pool() const { return GetParam() == "async"; }
  LimitsApp& c = LimitsApp::get();
  std::unique_ptr<Worker> worker;
};

}  // namespace

TEST_P(TimeLimits, SoftLimitRaisesSoftTimeLimitExceededInTheTask) {
  start_worker();
  TaskError e =
      failure_of(c.cooperative.apply_async(Json::array(), Json::object(), limits(0.2, 60)));
  EXPECT_EQ(e.exc_type(), "SoftTimeLimitExceeded");
  EXPECT_EQ(e.exc_module(), "billiard.exceptions");
  EXPECT_EQ(
      c.cleans_up.apply_async(Json::array(), Json::object(), limits(0.2, std::nullopt)).get(kWait),
      "cleaned up");
  EXPECT_EQ(
      c.waits.apply_async(Json::array(), Json::object(), limits(0.2, std::nullopt)).get(kWait),
      "stopped");
  EXPECT_EQ(c.add.delay(2, 3).get(kWait), 5);  // the worker goes on
}

TEST_P(TimeLimits, SoftLimitCancelsACoroutineAtItsNextAwait) {
  start_worker();
  TaskError e =
      failure_of(c.co_sleeps.apply_async(Json::array(), Json::object(), limits(0.2, 0.6)));
  // The async pool cancels the coroutine; the other pools run it on a
  // private loop, which only the hard limit stops.
  EXPECT_EQ(e.exc_type(), coroutine_pool() ? "SoftTimeLimitExceeded" : "TimeLimitExceeded");
}

TEST_P(TimeLimits, HardLimitStoresTimeLimitExceededAndTheWorkerGoesOn) {
  start_worker(single());
  TaskError e =
      failure_of(c.stuck.apply_async(Json::array(), Json::object(), limits(std::nullopt, 0.3)));
  EXPECT_EQ(e.exc_type(), "TimeLimitExceeded");
  EXPECT_EQ(e.exc_module(), "billiard.exceptions");
  EXPECT_EQ(e.exc_message(), Json::array({0.3}));
  // concurrency 1: the stuck body's slot was replaced (threads, solo), its
  // child killed (processes) or the coroutine abandoned (async).
  EXPECT_EQ(c.add.delay(1, 2).get(kWait), 3);
  EXPECT_TRUE(eventually([&] { return worker->counters().failed == 1u; }));
  g_release = true;
  EXPECT_EQ(c.add.delay(3, 4).get(kWait), 7);
}

TEST_P(TimeLimits, TaskOptionsAndWorkerDefaultsApplyWhenTheMessageHasNone) {
  WorkerOptions o;
  o.soft_time_limit = 0.2;
  o.time_limit = 600;
  start_worker(o);
  EXPECT_EQ(failure_of(c.cooperative.delay()).exc_type(), "SoftTimeLimitExceeded");  // worker's
  EXPECT_EQ(failure_of(c.own_hard.delay()).exc_type(),
            "TimeLimitExceeded");  // task's, not worker's
  EXPECT_EQ(failure_of(c.own_soft.delay()).exc_type(), "SoftTimeLimitExceeded");
}

TEST_P(TimeLimits, TheMessageHeaderWinsOverTheTaskOption) {
  start_worker();
  // tl.patient's own limits are 600/900 s: it stops within kWait only if
  // the header's 0.2 s soft limit is the one applied.
  EXPECT_EQ(c.patient.apply_async(Json::array(), Json::object(), limits(0.2, 30)).get(kWait),
            "cleaned up");
}

TEST_P(TimeLimits, RevokeTerminateStopsARunningTaskAndStoresRevoked) {
  start_worker(single());
  auto r = coroutine_pool() ? c.co_sleeps.delay() : c.cooperative.delay();
  ASSERT_TRUE(eventually([&] { return worker->active().size() == 1u; }));
  worker->revoke(r.id(), true);
  TaskError e = failure_of(std::move(r));
  EXPECT_EQ(e.exc_type(), "TaskRevokedError");
  EXPECT_EQ(e.state(), "REVOKED");
  EXPECT_EQ(e.exc_message(), Json::array({"terminated"}));
  EXPECT_EQ(c.add.delay(4, 5).get(kWait), 9);
  EXPECT_TRUE(eventually([&] { return worker->counters().revoked == 1u; }));
}

TEST_P(TimeLimits, RevokeTerminateStopsATaskThatIgnoresIt) {
  if (GetParam() != "processes") GTEST_SKIP() << "only a child process can be killed";
  start_worker(single());
  auto r = c.stuck.delay();
  ASSERT_TRUE(eventually([&] { return worker->active().size() == 1u; }));
  worker->revoke(r.id(), true, SIGKILL);
  EXPECT_EQ(failure_of(std::move(r)).exc_type(), "TaskRevokedError");
  EXPECT_EQ(c.add.delay(4, 5).get(kWait), 9);  // the child was replaced
}

TEST_P(TimeLimits, PythonClientSeesCeleryExceptionTypes) {
  start_worker();
  auto out = test::run_python_client(
      c.server.url(),
      {PyCall{"tl.cooperative", Json::array(), Json::object(), {{"soft_time_limit", 0.2}}, 60},
       PyCall{"tl.stuck", Json::array(), Json::object(), {{"time_limit", 0.3}}, 60},
       PyCall{"tl.add", {1, 2}, Json::object(), {{"time_limit", 60}, {"soft_time_limit", 30}}, 60}},
      120s);
  ASSERT_EQ(out.size(), 3u) << out.dump();
  EXPECT_EQ(out[0]["state"], "FAILURE") << out.dump();
  EXPECT_EQ(out[0]["exc_type"], "SoftTimeLimitExceeded") << out.dump();
  EXPECT_EQ(out[0]["exc_module"], "billiard.exceptions") << out.dump();
  EXPECT_EQ(out[1]["exc_type"], "TimeLimitExceeded") << out.dump();
  EXPECT_EQ(out[1]["exc_module"], "billiard.exceptions") << out.dump();
  EXPECT_EQ(out[1]["exc_args"], Json::array({0.3})) << out.dump();
  EXPECT_EQ(out[2]["result"], 3) << out.dump();
}

TEST_P(TimeLimits, PythonRevokeWithTerminateReachesTheWorker) {
  start_worker(single());
  auto r = coroutine_pool() ? c.co_sleeps.delay() : c.cooperative.delay();
  ASSERT_TRUE(eventually([&] { return worker->active().size() == 1u; }));
  auto run = test::run_program({"/usr/bin/python3", "-c",
                                "import sys\nfrom celeriac_test_tasks import app\n"
                                "app.control.revoke(sys.argv[1], terminate=True)\n",
                                r.id()},
                               60s, test::celery_env(c.server.url()));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  TaskError e = failure_of(std::move(r));
  EXPECT_EQ(e.exc_type(), "TaskRevokedError");
  EXPECT_EQ(e.exc_message(), Json::array({"terminated"}));
}

INSTANTIATE_TEST_SUITE_P(AllPools, TimeLimits,
                         ::testing::Values("threads", "processes", "async", "solo"),
                         [](const auto& info) { return info.param; });

// ---- bad inputs ----

TEST(TimeLimitsBadInput, NegativeOrInvertedLimitsNameTheTaskAndValue) {
  App app("memory://limits-bad", "");
  auto reg = [&](std::optional<double> soft, std::optional<double> hard) {
    TaskOptions o;
    o.soft_time_limit = soft;
    o.time_limit = hard;
    app.task(
        "bad.task", {}, [] { return 1; }, o);
  };
  try {
    reg(std::nullopt, -1);
    FAIL() << "a negative time_limit was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("task 'bad.task' time_limit"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("-1"), std::string::npos) << e.what();
  }
  try {
    reg(5, 2);
    FAIL() << "soft above hard was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("soft_time_limit (5 s)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("time_limit (2 s)"), std::string::npos) << e.what();
  }
  auto ok = app.task("ok.task", {}, [] { return 1; });
  CallOptions call;
  call.soft_time_limit = -0.5;
  try {
    ok.apply_async(Json::array(), Json::object(), call);
    FAIL() << "a negative soft_time_limit was sent";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("task 'ok.task'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("-0.5"), std::string::npos) << e.what();
  }
  EXPECT_EQ(app.broker().queue_length("celery"), 0u);
  WorkerOptions wo;
  wo.time_limit = -3;
  Worker w(app, wo);
  try {
    w.start();
    FAIL() << "a negative --time-limit was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("worker time_limit"), std::string::npos) << e.what();
  }
}

TEST(TimeLimitsBadInput, ABadHeaderFromAnotherClientFailsTheTaskClearly) {
  App app("memory://limits-bad-header", "memory://limits-bad-header");
  auto ok = app.task("hdr.task", {}, [] { return 1; });
  TaskMessage m = app.build_message("hdr.task", Json::array(), Json::object(), CallOptions{});
  m.time_limit = 1;
  m.soft_time_limit = 7;  // above the hard limit
  app.broker().publish("celery", 0, encode(m));
  WorkerOptions wo;
  wo.poll_interval = 20ms;
  Worker w(app, wo);
  w.start();
  try {
    AsyncResult<int>(app, m.id).get(kWait);
    ADD_FAILURE() << "the task ran";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
    EXPECT_NE(e.message().find("task 'hdr.task'"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("soft_time_limit (7 s)"), std::string::npos) << e.message();
  }
  EXPECT_EQ(ok.delay().get(kWait), 1);
  w.stop();
  EXPECT_TRUE(w.wait(kWait));
}
