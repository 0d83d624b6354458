// Remote control of a running C++ worker on Redis, asked by Python Celery's
// own `app.control.inspect()` / `celery control` and by celeriac's client:
// inspect conf/revoked/scheduled with real content in Celery's shapes, the
// pool growing and shrinking live, and queues consumed or dropped live.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <regex>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/worker.hpp"
#include "monitor_test_util.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::eventually;
using namespace std::chrono_literals;

namespace {

constexpr const char* kCpp = "cpp@mon-control";

// Python Celery's `app.control.inspect(destination=[kCpp]).<method>()`,
// printed as JSON by the real client library.
tq::Json python_inspect(const std::string& broker_url, const std::string& method) {
  std::string script =
      "import json, celeriac_test_tasks as t\n"
      "i = t.app.control.inspect(destination=['" +
      std::string(kCpp) + "'], timeout=5)\n" + "print('REPLY' + json.dumps(i." + method + "()))\n";
  auto r = tq::test::run_program({"/usr/bin/python3", "-c", script}, 60s,
                                 tq::test::celery_env(broker_url), tq::test::python_dir());
  auto p = r.output.find("REPLY");
  if (r.exit_code != 0 || p == std::string::npos)
    throw std::runtime_error("python inspect " + method + " failed: " + r.output);
  auto end = r.output.find('\n', p);
  return tq::loads(r.output.substr(p + 5, end == std::string::npos ? end : end - p - 5));
}

// Tasks that rendezvous: each waits until `n` of them run at the same
// time (true) or gives up after a minute (false), so a pool narrower than
// n shows as false results, never as a timing assertion.
struct Rendezvous {
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0;
  int most = 0;
  bool meet(int n) {
    std::unique_lock lock(mu);
    ++inside;
    most = std::max(most, inside);
    cv.notify_all();
    bool met = cv.wait_for(lock, 60s, [&] { return inside >= n || most >= n; });
    --inside;
    return met;
  }
};

class MonitorControl : public ::testing::Test {
 protected:
  void SetUp() override {
    // eta_parking=0: ETA tasks are held by the worker as Celery's are (by
    // default celeriac parks those more than 1 s ahead in the broker)
    app = std::make_unique<tq::App>(redis.url() + "?eta_parking=0", redis.url());
    app->task("tests.add", {"x", "y"}, [](int x, int y) { return x + y; });
    app->task("tests.meet", {"n"}, [this](int n) { return meet.meet(n); });
    client = tq::make_control_client(redis.url());
  }
  void TearDown() override {
    if (worker) {
      worker->stop();
      worker->wait(30s);
    }
  }
  void start_worker(const std::string& pool, int concurrency) {
    tq::WorkerOptions o;
    o.hostname = kCpp;
    o.pool = pool;
    o.concurrency = concurrency;
    o.prefetch_multiplier = 2;
    o.poll_interval = 20ms;
    worker = std::make_unique<tq::Worker>(*app, o);
    worker->start();
  }
  // celeriac's control client, asking only this worker.
  tq::Json ask(const std::string& method, tq::Json args = tq::Json::object()) {
    auto r = client->broadcast(method, args, std::vector<std::string>{kCpp}, 10s);
    if (r.size() != 1 || !r[0].contains(kCpp)) return tq::Json();
    return r[0][kCpp];
  }
  std::size_t concurrency() {
    return ask("stats")["pool"].value("max-concurrency", std::size_t{0});
  }

  tq::test::RedisServer redis;
  std::unique_ptr<tq::App> app;
  std::unique_ptr<tq::ControlClient> client;
  std::unique_ptr<tq::Worker> worker;
  Rendezvous meet;
};

bool has_queue(const tq::Json& active_queues, const std::string& name) {
  if (!active_queues.is_array()) return false;
  for (auto& q : active_queues)
    if (q.value("name", "") == name) return true;
  return false;
}

}  // namespace

TEST_F(MonitorControl, InspectConfRevokedAndScheduledInCelerysShapes) {
  start_worker("threads", 2);
  tq::CallOptions later;
  later.countdown = 3600;
  auto held = app->send_task("tests.add", tq::Json::array({1, 2}), tq::Json::object(), later);
  ASSERT_TRUE(eventually([&] { return ask("scheduled").size() == 1; })) << ask("scheduled");
  auto rev = ask("revoke", {{"task_id", tq::Json::array({"dead-1", "dead-2"})}});
  EXPECT_NE(rev.value("ok", "").find("dead-1"), std::string::npos) << rev;

  // celeriac's client
  auto sched = ask("scheduled");
  ASSERT_EQ(sched.size(), 1u) << sched;
  EXPECT_EQ(sched[0]["priority"], 6);
  EXPECT_EQ(sched[0]["request"]["id"], held.id());
  EXPECT_EQ(sched[0]["request"]["name"], "tests.add");
  EXPECT_EQ(sched[0]["request"]["args"], tq::Json::array({1, 2}));
  EXPECT_TRUE(std::regex_match(sched[0]["eta"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00)")))
      << sched;
  EXPECT_EQ(ask("revoked"), tq::Json::array({"dead-1", "dead-2"}));

  // Python Celery's inspect() reads the same
  auto py_sched = python_inspect(redis.url(), "scheduled");
  ASSERT_TRUE(py_sched.contains(kCpp)) << py_sched;
  ASSERT_EQ(py_sched[kCpp].size(), 1u) << py_sched;
  EXPECT_EQ(py_sched[kCpp][0]["request"]["id"], held.id());
  EXPECT_EQ(py_sched[kCpp][0]["eta"], sched[0]["eta"]);
  EXPECT_EQ(python_inspect(redis.url(), "revoked")[kCpp], tq::Json::array({"dead-1", "dead-2"}));
  auto conf = python_inspect(redis.url(), "conf")[kCpp];
  EXPECT_EQ(conf["worker_pool"], "threads") << conf;
  EXPECT_EQ(conf["worker_concurrency"], 2) << conf;
  EXPECT_EQ(conf["worker_prefetch_multiplier"], 2) << conf;
  EXPECT_EQ(conf["task_default_queue"], "celery") << conf;
  EXPECT_NE(conf.value("broker_url", "").find("redis://127.0.0.1:"), std::string::npos) << conf;

  // `celeriac inspect` prints them too
  auto cli = tq::test::run_program(
      {CELERIAC_CLI_BIN, "-b", redis.url(), "inspect", "scheduled", "-t", "10", "-d", kCpp}, 60s);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_NE(cli.output.find(held.id()), std::string::npos) << cli.output;
  cli = tq::test::run_program(
      {CELERIAC_CLI_BIN, "-b", redis.url(), "inspect", "revoked", "-t", "10", "-d", kCpp}, 60s);
  EXPECT_NE(cli.output.find("dead-2"), std::string::npos) << cli.output;
}

TEST_F(MonitorControl, ConfNeverShowsTheBrokerPassword) {
  tq::test::RedisServer::Options ro;
  ro.password = "pw-C0ntrol-secret";
  tq::test::RedisServer locked(ro);
  tq::App a(locked.url(), locked.url());
  tq::WorkerOptions o;
  o.hostname = kCpp;
  o.concurrency = 1;
  tq::Worker w(a, o);
  w.start();
  auto conf = w.conf();
  EXPECT_EQ(conf.dump().find(ro.password), std::string::npos) << conf;
  EXPECT_NE(conf.value("broker_url", "").find("redis://"), std::string::npos) << conf;
  w.stop();
  w.wait(30s);
}

TEST_F(MonitorControl, ThreadsPoolGrowsAndShrinksLive) {
  start_worker("threads", 1);
  EXPECT_EQ(concurrency(), 1u);
  EXPECT_EQ(ask("pool_grow", {{"n", 2}}), (tq::Json{{"ok", "pool will grow"}}));
  EXPECT_EQ(concurrency(), 3u);
  EXPECT_EQ(ask("stats")["prefetch_count"], 6);
  EXPECT_EQ(python_inspect(redis.url(), "conf")[kCpp]["worker_concurrency"], 3);
  // three bodies now run at once: each waits for the other two
  std::vector<tq::AsyncResult<tq::Json>> three;
  for (int i = 0; i < 3; ++i) three.push_back(app->send_task("tests.meet", tq::Json::array({3})));
  for (auto& r : three) EXPECT_EQ(r.get(90s), true);

  // Python's `celery control pool_shrink` narrows it back to one
  auto shrink = tq::test::run_celery_cli(
      redis.url(), {"control", "pool_shrink", "2", "-d", kCpp, "--timeout", "5"});
  EXPECT_EQ(shrink.exit_code, 0) << shrink.output;
  EXPECT_NE(shrink.output.find("pool will shrink"), std::string::npos) << shrink.output;
  EXPECT_EQ(concurrency(), 1u);
  {
    std::lock_guard lock(meet.mu);
    meet.most = 0;
  }
  // two bodies that would meet if two ran at once: the one-slot pool runs them in turn
  std::vector<tq::AsyncResult<tq::Json>> two;
  for (int i = 0; i < 2; ++i) two.push_back(app->send_task("tests.add", tq::Json::array({i, i})));
  for (auto& r : two) EXPECT_TRUE(r.get(60s).is_number());
  // never below one slot; a bad n is named in the error
  EXPECT_EQ(ask("pool_shrink", {{"n", 5}}), (tq::Json{{"ok", "pool will shrink"}}));
  EXPECT_EQ(concurrency(), 1u);
  auto bad = ask("pool_grow", {{"n", "many"}});
  EXPECT_NE(bad.value("error", "").find("n, a whole number"), std::string::npos) << bad;
  EXPECT_NE(ask("pool_grow", {{"n", -1}}).value("error", "").find("-1"), std::string::npos);
  EXPECT_EQ(app->send_task("tests.add", tq::Json::array({2, 3})).get(60s), 5);
}

TEST_F(MonitorControl, SoloAndAsyncPoolsRefuseToResize) {
  for (const char* pool : {"solo", "async"}) {
    start_worker(pool, 1);
    for (const char* method : {"pool_grow", "pool_shrink"}) {
      auto r = ask(method, {{"n", 1}});
      EXPECT_NE(r.value("error", "").find(std::string("the ") + pool + " pool cannot"),
                std::string::npos)
          << pool << " " << method << ": " << r;
    }
    EXPECT_EQ(app->send_task("tests.add", tq::Json::array({1, 1})).get(60s), 2) << pool;
    worker->stop();
    worker->wait(30s);
    worker.reset();
  }
}

TEST_F(MonitorControl, AddAndCancelConsumerLive) {
  start_worker("threads", 2);
  tq::CallOptions extra;
  extra.queue = "extra";
  EXPECT_FALSE(has_queue(python_inspect(redis.url(), "active_queues")[kCpp], "extra"));

  // Celery's CLI adds the queue; both inspect clients see it and its task runs
  auto add = tq::test::run_celery_cli(
      redis.url(), {"control", "add_consumer", "extra", "-d", kCpp, "--timeout", "5"});
  EXPECT_EQ(add.exit_code, 0) << add.output;
  EXPECT_NE(add.output.find("add consumer extra"), std::string::npos) << add.output;
  EXPECT_TRUE(has_queue(ask("active_queues"), "extra")) << ask("active_queues");
  EXPECT_TRUE(has_queue(python_inspect(redis.url(), "active_queues")[kCpp], "extra"));
  EXPECT_TRUE(has_queue(python_inspect(redis.url(), "active_queues")[kCpp], "celery"));
  EXPECT_EQ(
      app->send_task("tests.add", tq::Json::array({4, 4}), tq::Json::object(), extra).get(60s), 8);

  // cancelled: a task sent there waits while the default queue still runs
  EXPECT_EQ(ask("cancel_consumer", {{"queue", "extra"}}),
            (tq::Json{{"ok", "no longer consuming from extra"}}));
  EXPECT_FALSE(has_queue(ask("active_queues"), "extra"));
  auto waiting = app->send_task("tests.add", tq::Json::array({5, 5}), tq::Json::object(), extra);
  EXPECT_EQ(app->send_task("tests.add", tq::Json::array({1, 1})).get(60s), 2);
  EXPECT_EQ(waiting.state(), tq::State::Pending);
  // added back with celeriac's CLI, the waiting task runs
  auto cli = tq::test::run_program({CELERIAC_CLI_BIN, "-b", redis.url(), "control", "add_consumer",
                                    "extra", "-t", "10", "-d", kCpp},
                                   60s);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(waiting.get(60s), 10);
  // bad input is named
  auto bad = ask("add_consumer", tq::Json::object());
  EXPECT_NE(bad.value("error", "").find("needs queue"), std::string::npos) << bad;
}
