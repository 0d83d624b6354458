// Client-side task-sent events (Celery's task_send_sent_event): published
// when the client app asks for them, with Celery's fields, on Redis (seen by
// Python's `celery events --dump`, celeriac's receiver and the dashboard)
// and on SQLite (seen by `celeriac events --dump`).
#include <gtest/gtest.h>

#include <set>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/events.hpp"
#include "monitor_test_util.hpp"
#include "support/celery_process.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::eventually;
using celeriac::tq::test::get_json;
using namespace std::chrono_literals;

namespace {

tq::AppConfig sending(const std::string& url, bool sent_events) {
  tq::AppConfig c;
  c.broker_url = url;
  c.backend_url = url;
  c.task_send_sent_event = sent_events;
  return c;
}

// Events with uuid `id` received within the wait, in arrival order.
// Every uuid seen on the way goes to `seen`.
std::vector<tq::Json> events_of(tq::EventReceiver& rx, const std::string& id,
                                std::set<std::string>& seen, std::size_t want = 1) {
  std::vector<tq::Json> got;
  eventually([&] {
    for (auto& e : rx.poll(100ms)) {
      seen.insert(e.value("uuid", ""));
      if (e.value("uuid", "") == id) got.push_back(e);
    }
    return got.size() >= want;
  });
  return got;
}

}  // namespace

TEST(MonitorTaskSent, RedisClientPublishesCeleryShapedTaskSent) {
  tq::test::RedisServer redis;
  tq::test::TempDir dir("celeriac-task-sent");
  auto rx = tq::make_event_receiver(redis.url());
  tq::test::ChildProcess py_dump(
      {"/usr/bin/python3", "-m", "celery", "-A", "celeriac_test_tasks", "events", "--dump"},
      dir.path() / "py-dump.log", tq::test::celery_env(redis.url()), tq::test::python_dir());
  ASSERT_TRUE(py_dump.wait_for_log("starting capture", 60s)) << py_dump.log();
  tq::DashboardOptions d;
  d.port = 0;
  d.history_path = "";
  tq::App quiet(sending(redis.url(), false));
  tq::App app(sending(redis.url(), true));
  tq::Dashboard dash(app, d);
  dash.start();

  auto silent = quiet.send_task("tests.add", tq::Json::array({0, 0}));
  tq::CallOptions o;
  o.countdown = 600;
  auto r = app.send_task("tests.add", tq::Json::array({1, 2}), tq::Json{{"z", "q"}}, o);
  std::set<std::string> seen;
  auto sent = events_of(*rx, r.id(), seen);
  ASSERT_EQ(sent.size(), 1u);
  const tq::Json& e = sent[0];
  EXPECT_EQ(e["type"], "task-sent");
  EXPECT_EQ(e["name"], "tests.add");
  EXPECT_EQ(e["args"], "(1, 2)");  // the argsrepr Celery writes
  EXPECT_EQ(e["kwargs"], "{'z': 'q'}");
  EXPECT_EQ(e["queue"], "celery");
  EXPECT_EQ(e["routing_key"], "celery");
  EXPECT_EQ(e["retries"], 0);
  EXPECT_EQ(e["root_id"], r.id());
  EXPECT_TRUE(e["parent_id"].is_null());
  EXPECT_TRUE(e["eta"].is_string()) << e;
  EXPECT_TRUE(e["expires"].is_null());
  EXPECT_EQ(e.value("hostname", "").rfind("gen", 0), 0u) << e;
  for (const char* k : {"clock", "pid", "timestamp", "utcoffset"}) EXPECT_TRUE(e.contains(k)) << k;
  // the app without task_send_sent_event sent nothing (its task went first,
  // on the same channel, so its event would have come before)
  EXPECT_EQ(seen.count(silent.id()), 0u);

  // Python's `celery events --dump` and the dashboard see it
  // (its subscription may come after "starting capture": send until one is seen)
  std::vector<std::string> ids{r.id()};
  EXPECT_TRUE(eventually([&] {
    std::string log = py_dump.log();
    for (auto& id : ids)
      if (log.find("task sent: tests.add(" + id + ") args=(1, 2)") != std::string::npos)
        return true;
    ids.push_back(app.send_task("tests.add", tq::Json::array({1, 2})).id());
    return false;
  })) << py_dump.log();
  // the dashboard lists sent tasks as PENDING (its subscription, too, may
  // come after start(): any of the tasks sent since counts)
  tq::Json pending;
  ASSERT_TRUE(eventually([&] {
    pending = get_json(dash.port(), "/api/tasks?taskname=tests.add&state=PENDING&limit=0");
    if (pending.is_object() && !pending.empty()) return true;
    ids.push_back(app.send_task("tests.add", tq::Json::array({1, 2})).id());
    return false;
  })) << pending;
  for (auto& [id, t] : pending.items()) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << id;
    EXPECT_EQ(t.value("name", ""), "tests.add") << t;
  }
  py_dump.stop();
  dash.stop();
}

TEST(MonitorTaskSent, SqliteClientTaskSentReachesCeleriacEventsDump) {
  tq::test::TempDir dir("celeriac-task-sent-sqlite");
  std::string url = "sqlite:///" + (dir.path() / "broker.db").string();
  tq::App app(sending(url, true));
  tq::test::ChildProcess dump({CELERIAC_CLI_BIN, "-b", url, "events", "--dump"},
                              dir.path() / "dump.log");
  ASSERT_TRUE(dump.wait_for_log("listening for events", 30s)) << dump.log();
  auto many = app.send_many("tests.add", {tq::Json::array({1, 1}), tq::Json::array({2, 2})});
  auto one = app.send_task("tests.add", tq::Json::array({3, 3}));
  for (auto& r : many)
    EXPECT_TRUE(dump.wait_for_log("task-sent uuid=" + r.id(), 30s)) << dump.log();
  EXPECT_TRUE(dump.wait_for_log("task-sent uuid=" + one.id(), 30s)) << dump.log();
  EXPECT_EQ(dump.stop(), 0) << dump.log();
}
