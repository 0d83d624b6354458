// App, typed tasks and AsyncResult, with a real Worker in the same process
// on the memory:// (and SQLite) transports.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/future_await.hpp"
#include "celeriac/futures.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;
using tqtest::eventually;

namespace {

constexpr auto kWait = 10s;

// Expects `r` to fail with a TaskError of `type` whose message holds every fragment.
template <class T>
TaskError expect_task_error(const AsyncResult<T>& r, const std::string& type,
                            std::initializer_list<std::string> fragments = {}) {
  try {
    r.get(kWait);
  } catch (const TaskError& e) {
    EXPECT_EQ(e.exc_type(), type) << e.message();
    for (const auto& f : fragments)
      EXPECT_NE(e.message().find(f), std::string::npos) << e.message();
    return e;
  }
  ADD_FAILURE() << "task " << r.id() << " did not fail with " << type;
  return TaskError("none", "none", "none");
}

class TqApp : public ::testing::Test {
 protected:
  void start_worker(WorkerOptions o = {}) {
    o.hostname = "celery@tq-test";
    if (o.concurrency == 0 && o.pool == "threads") o.concurrency = 2;
    o.poll_interval = 20ms;
    worker = std::make_unique<Worker>(app, o);
    worker->start();
  }
  void TearDown() override {
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(kWait));
    }
  }

  std::string url = "memory://app-test-" + make_uuid();
  App app{url, ""};
  std::unique_ptr<Worker> worker;  // destroyed before app
};

}  // namespace

TEST_F(TqApp, PositionalAndKeywordArguments) {
  auto add = app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  start_worker();
  EXPECT_EQ(add.delay(2, 3).get(kWait), 5);
  EXPECT_EQ(add.apply_async(Json::array(), Json{{"x", 40}, {"y", 2}}).get(kWait), 42);
  EXPECT_EQ(add.apply_async(Json::array({1}), Json{{"y", 10}}).get(kWait), 11);
  EXPECT_EQ(add.name(), "tasks.add");
}

TEST_F(TqApp, UserTypesAndStringsConvert) {
  auto join =
      app.task("tasks.join", {"parts", "sep"}, [](std::vector<std::string> parts, std::string sep) {
        std::string out;
        for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
        return out;
      });
  start_worker();
  EXPECT_EQ(join.delay(std::vector<std::string>{"a", "b", "c"}, "-").get(kWait), "a-b-c");
}

TEST_F(TqApp, WrongArgumentsFailWithTypeErrorNamingTaskAndArgument) {
  auto add = app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  start_worker();
  expect_task_error(add.apply_async(Json::array({1})), "TypeError",
                    {"tasks.add()", "missing 1", "'y'"});
  expect_task_error(add.apply_async(Json::array({1, 2, 3})), "TypeError",
                    {"tasks.add()", "takes 2 positional arguments but 3 were given"});
  expect_task_error(add.delay("two", 3), "TypeError", {"tasks.add()", "'x'", "must be int", "str"});
  expect_task_error(add.apply_async(Json::array({1}), Json{{"z", 2}}), "TypeError",
                    {"unexpected keyword argument 'z'"});
  expect_task_error(add.apply_async(Json::array({1}), Json{{"x", 2}}), "TypeError",
                    {"multiple values for argument 'x'"});
  expect_task_error(add.delay(1, 1e30), "TypeError", {"'y'"});
  // The worker went on.
  EXPECT_EQ(add.delay(1, 2).get(kWait), 3);
}

TEST_F(TqApp, RegistrationErrors) {
  app.task("tasks.a", {"x"}, [](int x) { return x; });
  EXPECT_THROW(app.task("tasks.a", {"x"}, [](int x) { return x; }), ConfigError);
  EXPECT_THROW(app.task("tasks.b", {"x", "y"}, [](int x) { return x; }), ConfigError);
  EXPECT_THROW(app.task("", {}, [] { return 1; }), ConfigError);
  EXPECT_EQ(app.task_names(), std::vector<std::string>{"tasks.a"});
  EXPECT_NE(app.find_task("tasks.a"), nullptr);
  EXPECT_EQ(app.find_task("tasks.zzz"), nullptr);
}

TEST_F(TqApp, BadCallsAreRejectedBeforeSending) {
  EXPECT_THROW(app.send_task("t", Json::object()), ConfigError);
  EXPECT_THROW(app.send_task("t", Json::array(), Json::array()), ConfigError);
  CallOptions o;
  o.priority = 10;
  EXPECT_THROW(app.send_task("t", Json::array(), Json::object(), o), ConfigError);
  EXPECT_THROW(App("nonsense", ""), ConfigError);
}

TEST_F(TqApp, UnknownTaskNameFailsWithNotRegistered) {
  auto ok = app.task("tasks.ok", {}, [] { return 1; });
  start_worker();
  auto r = app.send_task("tasks.nope", Json::array({1}));
  expect_task_error(r, "NotRegistered", {"tasks.nope"});
  EXPECT_EQ(ok.delay().get(kWait), 1);
  auto dead = app.broker().dead_letters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_NE(dead[0].reason.find("unregistered task 'tasks.nope'"), std::string::npos)
      << dead[0].reason;
}

TEST_F(TqApp, ContextAsFirstParameter) {
  auto who = app.task("tasks.who", {"tag"}, [](Context& ctx, std::string tag) {
    return Json{{"id", ctx.id()},
                {"name", ctx.name()},
                {"tag", tag},
                {"retries", ctx.retries()},
                {"queue", ctx.queue()},
                {"hostname", ctx.hostname()},
                {"custom", ctx.headers().value("custom", "")}};
  });
  start_worker();
  CallOptions o;
  o.headers["custom"] = "hello";
  o.task_id = "fixed-id-1";
  Json j = who.apply_async(Json::array({"t"}), Json::object(), o).get(kWait);
  EXPECT_EQ(j["id"], "fixed-id-1");
  EXPECT_EQ(j["name"], "tasks.who");
  EXPECT_EQ(j["tag"], "t");
  EXPECT_EQ(j["retries"], 0);
  EXPECT_EQ(j["queue"], "celery");
  EXPECT_EQ(j["hostname"], "celery@tq-test");
  EXPECT_EQ(j["custom"], "hello");
}

TEST_F(TqApp, RetryWithCountdownRepublishesSameId) {
  std::mutex mu;
  std::vector<std::string> ids;
  auto flaky = app.task("tasks.flaky", {}, [&](Context& ctx) {
    {
      std::lock_guard lock(mu);
      ids.push_back(ctx.id());
    }
    if (ctx.retries() < 2) ctx.retry(0.02);
    return ctx.retries();
  });
  start_worker();
  auto r = flaky.delay();
  EXPECT_EQ(r.get(kWait), 2);
  std::lock_guard lock(mu);
  EXPECT_EQ(ids, (std::vector<std::string>{r.id(), r.id(), r.id()}));
  EXPECT_EQ(worker->counters().retried, 2u);
}

TEST_F(TqApp, RetryBeyondMaxRetriesFails) {
  TaskOptions o;
  o.max_retries = 1;
  auto always = app.task(
      "tasks.always", {}, [](Context& ctx) -> int { ctx.retry(0.01); }, o);
  start_worker();
  expect_task_error(always.delay(), "MaxRetriesExceededError", {"tasks.always"});
}

TEST_F(TqApp, AutoretryWithBackoffUntilMaxRetries) {
  std::atomic<int> calls{0};
  TaskOptions o;
  o.autoretry_for = autoretry_on<std::runtime_error>();
  o.max_retries = 2;
  o.retry_backoff = 0.01;
  o.retry_jitter = false;
  auto fragile = app.task(
      "tasks.fragile", {},
      [&]() -> int {
        ++calls;
        throw std::runtime_error("disk on fire");
      },
      o);
  auto picky = app.task(
      "tasks.picky", {}, [&]() -> int { throw std::invalid_argument("not retried"); }, o);
  start_worker();
  auto e = expect_task_error(fragile.delay(), "RuntimeError", {"disk on fire"});
  EXPECT_EQ(calls.load(), 3);  // first run + max_retries
  EXPECT_EQ(e.state(), "FAILURE");
  expect_task_error(picky.delay(), "ValueError", {"not retried"});
}

TEST_F(TqApp, AutoretrySucceedsOnALaterAttempt) {
  std::atomic<int> calls{0};
  TaskOptions o;
  o.autoretry_for = autoretry_on<std::runtime_error>();
  o.max_retries = 5;
  o.retry_backoff = 0.01;
  auto second_time = app.task(
      "tasks.second", {},
      [&] {
        if (++calls < 2) throw std::runtime_error("transient");
        return calls.load();
      },
      o);
  start_worker();
  EXPECT_EQ(second_time.delay().get(kWait), 2);
}

TEST_F(TqApp, ExpiredTaskIsRevokedAndNotRun) {
  std::atomic<int> runs{0};
  auto t = app.task("tasks.t", {}, [&] { return ++runs; });
  start_worker();
  CallOptions o;
  o.expires_in = -1;  // already expired
  auto r = t.apply_async(Json::array(), Json::object(), o);
  auto e = expect_task_error(r, "TaskRevokedError", {"expired"});
  EXPECT_EQ(e.state(), "REVOKED");
  EXPECT_EQ(r.state(), State::Revoked);
  EXPECT_TRUE(r.ready());
  EXPECT_FALSE(r.successful());
  EXPECT_FALSE(r.failed());
  EXPECT_EQ(runs.load(), 0);
  EXPECT_EQ(t.delay().get(kWait), 1);
}

TEST_F(TqApp, CountdownAndEtaRunNoSooner) {
  auto now_task = app.task("tasks.when", {}, [](Context& ctx) {
    EXPECT_TRUE(ctx.eta().has_value());
    return Clock::now() >= *ctx.eta();
  });
  start_worker();
  CallOptions o;
  o.countdown = 0.2;
  EXPECT_TRUE(now_task.apply_async(Json::array(), Json::object(), o).get(kWait));
  CallOptions e;
  e.eta = Clock::now() + 150ms;
  EXPECT_TRUE(now_task.apply_async(Json::array(), Json::object(), e).get(kWait));
}

TEST_F(TqApp, IgnoreResultStoresNothing) {
  std::atomic<int> runs{0};
  auto quiet = app.task("tasks.quiet", {}, [&] { return ++runs; });
  TaskOptions silent;
  silent.ignore_result = true;
  auto always_quiet = app.task(
      "tasks.always_quiet", {}, [&] { return ++runs; }, silent);
  start_worker();
  CallOptions o;
  o.ignore_result = true;
  auto r1 = quiet.apply_async(Json::array(), Json::object(), o);
  auto r2 = always_quiet.delay();
  ASSERT_TRUE(eventually([&] { return runs.load() == 2; }));
  ASSERT_TRUE(eventually([&] { return worker->counters().succeeded == 2; }));
  EXPECT_FALSE(r1.meta());
  EXPECT_FALSE(r2.meta());
  EXPECT_EQ(r1.state(), State::Pending);
}

TEST_F(TqApp, PriorityZeroRunsBeforeWaitingNines) {
  std::mutex mu;
  std::vector<int> order;
  auto rec = app.task("tasks.rec", {"n"}, [&](int n) {
    std::lock_guard lock(mu);
    order.push_back(n);
    return n;
  });
  std::vector<AsyncResult<int>> rs;
  CallOptions low;
  low.priority = 9;
  for (int i = 0; i < 5; ++i) rs.push_back(rec.apply_async_with(low, i));
  CallOptions high;
  high.priority = 0;
  rs.push_back(rec.apply_async_with(high, 100));
  WorkerOptions o;
  o.pool = "solo";
  o.prefetch_multiplier = 1;
  start_worker(o);
  for (auto& r : rs) r.get(kWait);
  std::lock_guard lock(mu);
  ASSERT_EQ(order.size(), 6u);
  EXPECT_EQ(order[0], 100);
  EXPECT_EQ(std::vector<int>(order.begin() + 1, order.end()), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST_F(TqApp, ExceptionsKeepTypeMessageAndTraceback) {
  auto bad = app.task("tasks.bad", {"what"}, [](std::string what) -> int {
    if (what == "value") throw std::invalid_argument("bad value");
    if (what == "index") throw std::out_of_range("no such index");
    if (what == "custom") throw TaskError("KeyError", "builtins", "missing key");
    throw 42;  // not an std::exception
  });
  start_worker();
  auto r = bad.delay("value");
  auto e = expect_task_error(r, "ValueError", {"bad value"});
  EXPECT_EQ(e.exc_module(), "builtins");
  EXPECT_TRUE(r.failed());
  EXPECT_EQ(r.state(), State::Failure);
  ASSERT_TRUE(r.traceback());
  EXPECT_NE(r.traceback()->find("ValueError: bad value"), std::string::npos);
  EXPECT_NE(e.traceback().find("tasks.bad"), std::string::npos);
  expect_task_error(bad.delay("index"), "IndexError", {"no such index"});
  expect_task_error(bad.delay("custom"), "KeyError", {"missing key"});
  expect_task_error(bad.delay("other"), "Exception", {"unknown C++ exception"});
}

TEST_F(TqApp, AsyncResultStatesAndForget) {
  auto add = app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  auto r = add.delay(1, 2);
  // No worker yet: pending, and get() times out.
  EXPECT_EQ(r.state(), State::Pending);
  EXPECT_FALSE(r.ready());
  EXPECT_THROW(r.get(50ms), celeriac::TimeoutError);
  start_worker();
  EXPECT_EQ(r.get(kWait), 3);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_FALSE(r.failed());
  EXPECT_FALSE(r.traceback());
  r.forget();
  EXPECT_FALSE(r.meta());
  auto again = app.async_result<int>(r.id());
  EXPECT_EQ(again.state(), State::Pending);
}

TEST_F(TqApp, AsyncResultIsAFuture) {
  auto add = app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  start_worker();
  std::vector<celeriac::Future<int>> fs;
  for (int i = 0; i < 10; ++i) fs.push_back(add.delay(i, i));
  auto all = celeriac::when_all(fs);
  auto done = all.result(kWait);
  int sum = 0;
  for (auto& f : done) sum += f.result();
  EXPECT_EQ(sum, 90);
  auto doubled = add.delay(20, 1).then([](int v) { return v * 2; });
  EXPECT_EQ(doubled.result(kWait), 42);
}

TEST_F(TqApp, AsyncResultIsAwaitedOnTheEventLoop) {
  auto add = app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  auto boom = app.task("tasks.boom", {}, []() -> int { throw std::invalid_argument("no"); });
  start_worker();
  auto main = [&]() -> celeriac::aio::Task<int> {
    celeriac::Future<int> sum = add.delay(4, 5);
    int v = co_await sum;
    celeriac::Future<int> failing = boom.delay();
    try {
      co_await failing;
      ADD_FAILURE() << "no error";
    } catch (const TaskError& e) {
      EXPECT_EQ(e.exc_type(), "ValueError");
    }
    co_return v;
  };
  EXPECT_EQ(celeriac::aio::run(main()), 9);
}

TEST_F(TqApp, SendTaskForTasksNotCompiledIn) {
  app.task("py.style", {"a", "b"}, [](Json a, Json b) { return Json::array({a, b}); });
  start_worker();
  auto r = app.send_task("py.style", Json::array({"x"}), Json{{"b", Json{{"k", 1}}}});
  EXPECT_EQ(r.get(kWait), Json::array({"x", Json{{"k", 1}}}));
}

TEST_F(TqApp, VoidTasksSucceedWithNull) {
  std::atomic<int> hits{0};
  auto touch = app.task("tasks.touch", {}, [&] { ++hits; });
  start_worker();
  auto r = touch.delay();
  r.get(kWait);
  EXPECT_EQ(hits.load(), 1);
  EXPECT_EQ(r.meta()->result, nullptr);
}

TEST(TqAppSqlite, ProducerAndWorkerOnOneDatabaseFile) {
  tqtest::TempDb db;
  App producer(db.url(), "");
  App consumer(db.url(), "");
  auto mul = consumer.task("tasks.mul", {"x", "y"}, [](int x, int y) { return x * y; });
  (void)mul;
  WorkerOptions o;
  o.concurrency = 2;
  o.poll_interval = 20ms;
  Worker w(consumer, o);
  w.start();
  std::vector<AsyncResult<Json>> rs;
  for (int i = 0; i < 50; ++i) rs.push_back(producer.send_task("tasks.mul", Json::array({i, 2})));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(rs[static_cast<std::size_t>(i)].get(kWait), i * 2);
  w.stop();
  EXPECT_TRUE(w.wait(kWait));
  EXPECT_EQ(producer.broker().queue_length("celery"), 0u);
}
