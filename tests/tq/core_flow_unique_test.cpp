// Unique tasks (TaskOptions::unique_for, CallOptions::unique_for): a second
// call while the first is waiting or running returns the first's result;
// the key is released when the task ends. memory:// and SQLite.
#include <gtest/gtest.h>

#include <stdexcept>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/unique.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;
using tqtest::eventually;

namespace {

constexpr auto kWait = 20s;

std::unique_ptr<Worker> start_worker(App& app) {
  WorkerOptions o;
  o.hostname = "celery@unique";
  o.concurrency = 2;
  o.poll_interval = 20ms;
  auto w = std::make_unique<Worker>(app, o);
  w->start();
  return w;
}

TaskOptions unique_for(double seconds) {
  TaskOptions o;
  o.unique_for = seconds;
  return o;
}

class TqUnique : public ::testing::TestWithParam<bool> {
 protected:
  std::string url() { return GetParam() ? db.url() : "memory://unique-" + name; }
  tqtest::TempDb db;
  std::string name = make_uuid();
};

}  // namespace

TEST_P(TqUnique, SecondCallReturnsTheFirstsResultAndSendsNothing) {
  App app{url(), ""};
  auto t = app.task(
      "tasks.u", {"x"}, [](int x) { return x; }, unique_for(60));
  auto first = t.delay(1);
  auto twin = t.delay(1);
  auto other = t.delay(2);  // other arguments: another call
  EXPECT_EQ(twin.id(), first.id());
  EXPECT_NE(other.id(), first.id());
  EXPECT_EQ(app.broker().queue_length("celery"), 2u);
  auto w = start_worker(app);
  EXPECT_EQ(twin.get(kWait), 1);
  EXPECT_EQ(other.get(kWait), 2);
  w->stop();
  EXPECT_TRUE(w->wait(kWait));
}

TEST_P(TqUnique, ReleasedWhenTheTaskSucceedsOrFails) {
  App app{url(), ""};
  auto ok = app.task(
      "tasks.ok", {"x"}, [](int x) { return x; }, unique_for(3600));
  auto bad = app.task(
      "tasks.bad", {"x"}, [](int) -> int { throw std::runtime_error("boom"); }, unique_for(3600));
  auto w = start_worker(app);
  auto a = ok.delay(5);
  EXPECT_EQ(a.get(kWait), 5);
  auto b = ok.delay(5);  // the first ended: this one is sent
  EXPECT_NE(b.id(), a.id());
  EXPECT_EQ(b.get(kWait), 5);
  auto f1 = bad.delay(1);
  EXPECT_THROW(f1.get(kWait), TaskError);
  auto f2 = bad.delay(1);
  EXPECT_NE(f2.id(), f1.id());
  EXPECT_THROW(f2.get(kWait), TaskError);
  w->stop();
  EXPECT_TRUE(w->wait(kWait));
}

TEST_P(TqUnique, PerCallOptionAndKeyFunction) {
  App app{url(), ""};
  TaskOptions keyed = unique_for(60);
  keyed.unique_key = [](const Json& args, const Json&) { return dumps(args.at(0)); };
  auto k = app.task(
      "tasks.keyed", {"id", "payload"}, [](int, std::string) { return 0; }, keyed);
  EXPECT_EQ(k.delay(7, "a").id(), k.delay(7, "b").id());  // same key: payload ignored
  CallOptions once;
  once.unique_for = 60;
  auto s1 = app.send_task("py.task", Json::array({1}), Json::object(), once);
  auto s2 = app.send_task("py.task", Json::array({1}), Json::object(), once);
  EXPECT_EQ(s1.id(), s2.id());
  CallOptions off;
  off.unique_for = 0;  // the call's option wins over the task's
  auto t = app.task(
      "tasks.t", {"x"}, [](int x) { return x; }, unique_for(60));
  EXPECT_NE(t.apply_async(Json::array({1}), Json::object(), off).id(),
            t.apply_async(Json::array({1}), Json::object(), off).id());
}

TEST_P(TqUnique, KeyExpiresAfterThePeriod) {
  App app{url(), ""};
  auto t = app.task(
      "tasks.brief", {"x"}, [](int x) { return x; }, unique_for(0.05));
  std::string first = t.delay(1).id();
  EXPECT_TRUE(eventually([&] { return t.delay(1).id() != first; }));
}

TEST_P(TqUnique, TwoProducersShareTheKey) {
  App a{url(), ""};
  App b{url(), ""};
  auto ta = a.task(
      "tasks.u", {"x"}, [](int x) { return x; }, unique_for(60));
  auto tb = b.task(
      "tasks.u", {"x"}, [](int x) { return x; }, unique_for(60));
  EXPECT_EQ(ta.delay(3).id(), tb.delay(3).id());
}

TEST_P(TqUnique, NegativePeriodIsAnErrorAndSendsNothing) {
  App app{url(), ""};
  CallOptions bad;
  bad.unique_for = -1;
  try {
    (void)app.send_task("tasks.neg", Json::array(), Json::object(), bad);
    FAIL() << "a negative unique_for must be refused";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tasks.neg"), std::string::npos) << e.what();
  }
  EXPECT_EQ(app.broker().queue_length("celery"), 0u);
}

TEST_P(TqUnique, CliCallNoWaitPrintsTheFirstId) {
  App app{url(), ""};
  auto t = app.task(
      "tasks.u", {"x"}, [](int x) { return x; }, unique_for(60));
  auto first = t.delay(4);
  App cli{url(), ""};  // main() needs an app whose broker is not in use yet
  cli.task(
      "tasks.u", {"x"}, [](int x) { return x; }, unique_for(60));
  const char* argv[] = {"app", "call", "tasks.u", "[4]", "--no-wait"};
  testing::internal::CaptureStdout();
  int rc = cli.main(5, const_cast<char**>(argv));
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out, first.id() + "\n");
  EXPECT_EQ(app.broker().queue_length("celery"), 1u);
}

TEST(TqUniqueKey, CanonicalJsonOfArguments) {
  EXPECT_EQ(unique_key("t", Json::array({1}), Json{{"b", 1}, {"a", 2}}),
            "celeriac.unique.t:[[1], {\"a\": 2, \"b\": 1}]");
  EXPECT_EQ(unique_key("t", Json::array(), Json::object(), std::string("k")),
            "celeriac.unique.t:k");
}

INSTANTIATE_TEST_SUITE_P(Transports, TqUnique, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "sqlite" : "memory"; });
