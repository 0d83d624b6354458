// The worker's processes and async pools, and coroutine tasks in every pool.
// (Each ctest case runs in its own process, so each processes-pool test
// starts the fork server after registering its own tasks, as a program does.)
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"

using namespace celeriac;
using namespace celeriac::tq;
using namespace std::chrono_literals;
using tqtest::failure_of;

namespace {

constexpr auto kWait = 20s;

class TqPools : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string url = "memory://pools-test-" + make_uuid();
    app = std::make_unique<App>(url, "");
  }
  void TearDown() override {
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(kWait));
    }
  }
  void start_worker(WorkerOptions o) {
    o.hostname = "celery@pools-test";
    o.poll_interval = 20ms;
    worker = std::make_unique<Worker>(*app, o);
    worker->start();
  }
  std::unique_ptr<App> app;
  std::unique_ptr<Worker> worker;
};

WorkerOptions processes(int n = 2) {
  WorkerOptions o;
  o.pool = "processes";
  o.concurrency = n;
  o.hostname = "celery@pools-test";
  o.poll_interval = 20ms;
  return o;
}

// The processes pool's children know the tasks registered when the fork
// server started, so these tests share one app whose tasks are all
// registered before the first worker starts (as a program registers its
// tasks before it runs a worker).
struct ProcessApp {
  App app{"memory://pools-test-processes", ""};
  TaskHandle<std::vector<long long>, int> pid_twice = app.task("p.pid_twice", {"x"}, [](int x) {
    return std::vector<long long>{getpid(), x * 2};
  });
  TaskHandle<long long> pid =
      app.task("p.pid", {}, [] { return static_cast<long long>(getpid()); });
  TaskHandle<int, std::string> crash = app.task("p.crash", {"how"}, [](std::string how) {
    if (how == "segv") raise(SIGSEGV);
    if (how == "abort") std::abort();
    std::_Exit(3);
    return 0;
  });
  TaskHandle<std::string> ok = app.task("p.ok", {}, [] { return std::string("fine"); });
  TaskHandle<int, int> bad = app.task("p.bad", {"x"}, [](int x) -> int {
    throw std::invalid_argument("bad x " + std::to_string(x));
  });
  TaskHandle<int> again = app.task("p.again", {}, [](Context& ctx) {
    if (ctx.retries() < 2) ctx.retry(0.0);
    return ctx.retries();
  });
  TaskHandle<int> slow = app.task("p.slow", {}, [] {
    std::this_thread::sleep_for(30s);
    return 1;
  });
  // Crashes the first time only (the marker file outlives the child).
  TaskHandle<std::string, std::string> once =
      app.task("p.once", {"marker"}, [](std::string marker) {
        if (!std::filesystem::exists(marker)) {
          std::ofstream(marker) << "crashed";
          std::abort();
        }
        return std::string("second time");
      });

  static ProcessApp& get() {
    static ProcessApp instance;
    return instance;
  }
};

class TqProcesses : public ::testing::Test {
 protected:
  void TearDown() override {
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(kWait));
    }
  }
  void start_worker(WorkerOptions o) {
    worker = std::make_unique<Worker>(p.app, o);
    worker->start();
  }
  ProcessApp& p = ProcessApp::get();
  std::unique_ptr<Worker> worker;
};

}  // namespace

TEST_F(TqProcesses, RunsTasksInChildProcesses) {
  start_worker(processes());
  auto r = p.pid_twice.delay(21).get(kWait);
  EXPECT_NE(r[0], static_cast<long long>(getpid()));
  EXPECT_EQ(r[1], 42);
}

TEST_F(TqProcesses, ACrashFailsOnlyItsTask) {
  start_worker(processes(1));
  TaskError e = failure_of(p.crash.delay(std::string("segv")));
  EXPECT_EQ(e.exc_type(), "WorkerLostError");
#ifndef CELERIAC_SANITIZED  // ASan handles the SIGSEGV itself: the child exits with code 1
  EXPECT_NE(e.message().find("SIGSEGV"), std::string::npos) << e.message();
#endif
  EXPECT_NE(failure_of(p.crash.delay(std::string("abort"))).message().find("SIGABRT"),
            std::string::npos);
  EXPECT_NE(failure_of(p.crash.delay(std::string("exit"))).message().find("exit code 3"),
            std::string::npos);
  EXPECT_EQ(p.ok.delay().get(kWait), "fine");  // the pool replaced the child and goes on
  EXPECT_EQ(worker->counters().failed, 3u);
}

TEST_F(TqProcesses, CarriesErrorsAndRetriesBack) {
  start_worker(processes());
  TaskError e = failure_of(p.bad.delay(7));
  EXPECT_EQ(e.exc_type(), "ValueError");
  EXPECT_EQ(e.message(), "bad x 7");
  EXPECT_EQ(p.again.delay().get(kWait), 2);
  EXPECT_EQ(failure_of(p.bad.apply_async(Json::array({"seven"}))).exc_type(), "TypeError");
}

TEST_F(TqProcesses, TimeLimitKillsTheChild) {
  start_worker(processes(1));
  CallOptions o;
  o.time_limit = 0.3;
  EXPECT_EQ(failure_of(p.slow.apply_async(Json::array(), Json::object(), o)).exc_type(),
            "TimeLimitExceeded");
  EXPECT_EQ(p.ok.delay().get(kWait), "fine");
}

TEST_F(TqProcesses, RejectOnWorkerLostRequeues) {
  std::string marker =
      (std::filesystem::temp_directory_path() / ("celeriac-lost-" + make_uuid())).string();
  WorkerOptions o = processes(1);
  o.acks_late = true;
  o.reject_on_worker_lost = true;
  start_worker(o);
  EXPECT_EQ(p.once.delay(marker).get(kWait), "second time");
  EXPECT_EQ(worker->counters().failed, 0u);
  std::filesystem::remove(marker);
}

TEST_F(TqProcesses, RecyclesChildrenAfterMaxTasks) {
  WorkerOptions o = processes(1);
  o.max_tasks_per_child = 2;
  start_worker(o);
  long long a = p.pid.delay().get(kWait), b = p.pid.delay().get(kWait),
            c = p.pid.delay().get(kWait);
  EXPECT_EQ(a, b);
  EXPECT_NE(b, c);
}

TEST_F(TqPools, AsyncPoolRunsCoroutineTasksConcurrentlyOnOneThread) {
  std::atomic<int> now{0}, peak{0};
  auto nap = app->task("tasks.nap", {"ms"}, [&](int ms) -> aio::Task<int> {
    int n = ++now;
    for (int p = peak.load(); n > p && !peak.compare_exchange_weak(p, n);) {
    }
    co_await aio::sleep(std::chrono::milliseconds(ms));
    --now;
    co_return ms;
  });
  WorkerOptions o;
  o.pool = "async";
  o.concurrency = 50;
  start_worker(o);
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 40; ++i) rs.push_back(nap.delay(200));
  for (auto& r : rs) EXPECT_EQ(r.get(kWait), 200);
  EXPECT_GT(peak.load(), 1);  // they slept at the same time
}

TEST_F(TqPools, AsyncPoolErrorsArgumentsAndPlainTasks) {
  auto boom = app->task("tasks.boom", {"why"}, [](std::string why) -> aio::Task<void> {
    co_await aio::sleep(1ms);
    throw std::out_of_range(why);
  });
  auto plain = app->task("tasks.plain", {"x", "y"}, [](int x, int y) { return x + y; });
  WorkerOptions o;
  o.pool = "async";
  start_worker(o);
  TaskError e = failure_of(boom.delay(std::string("too far")));
  EXPECT_EQ(e.exc_type(), "IndexError");
  EXPECT_EQ(e.message(), "too far");
  EXPECT_EQ(failure_of(boom.apply_async(Json::array({1}))).exc_type(), "TypeError");
  EXPECT_EQ(plain.apply_async(Json::array({2}), Json{{"y", 3}}).get(kWait), 5);
}

TEST_F(TqPools, CoroutineTasksRunInTheThreadsPoolToo) {
  auto later = app->task("tasks.later", {"s"}, [](std::string s) -> aio::Task<std::string> {
    co_await aio::sleep(5ms);
    co_return s + "!";
  });
  WorkerOptions o;
  o.concurrency = 2;
  start_worker(o);
  EXPECT_EQ(later.delay(std::string("héllo")).get(kWait), "héllo!");
}

TEST_F(TqPools, UnknownPoolNamesTheChoices) {
  WorkerOptions o;
  o.pool = "gevent";
  Worker w(*app, o);
  try {
    w.start();
    FAIL() << "started with pool gevent";
  } catch (const ConfigError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("'gevent'"), std::string::npos) << what;
    EXPECT_NE(what.find("processes"), std::string::npos) << what;
  }
}
