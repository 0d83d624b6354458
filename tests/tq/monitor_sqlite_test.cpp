// Monitoring on the embedded default broker (SQLite): events, remote control
// from the CLI, `celeriac events --dump`, the dashboard's API, metrics,
// history, authentication rules and malformed-event handling.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/events.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/metrics.hpp"
#include "celeriac/tq/worker.hpp"
#include "monitor_test_util.hpp"
#include "support/process.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::eventually;
using celeriac::tq::test::get_json;
using celeriac::tq::test::http_get;
using celeriac::tq::test::http_post;
using namespace std::chrono_literals;

namespace {

constexpr const char* kHost = "celery@mon-sqlite";

class MonitorSqlite : public ::testing::Test {
 protected:
  void SetUp() override {
    url = "sqlite:///" + (dir.path() / "broker.db").string();
    app = std::make_unique<tq::App>(url, "");
    app->task("tests.add", {"x", "y"}, [](int x, int y) { return x + y; });
    app->task("tests.fail", {}, []() -> int { throw std::runtime_error("deliberate failure"); });
  }
  void TearDown() override {
    if (worker) {
      worker->stop();
      worker->wait(30s);
    }
  }
  void start_worker(bool events = true) {
    tq::WorkerOptions o;
    o.hostname = kHost;
    o.concurrency = 2;
    o.poll_interval = 20ms;
    o.task_events = events;
    worker = std::make_unique<tq::Worker>(*app, o);
    worker->start();
  }
  tq::DashboardOptions dash_options() {
    tq::DashboardOptions d;
    d.port = 0;
    d.history_path = (dir.path() / "history.db").string();
    return d;
  }

  tq::test::TempDir dir{"celeriac-monitor"};
  std::string url;
  std::unique_ptr<tq::App> app;
  std::unique_ptr<tq::Worker> worker;
};

std::vector<std::string> with_cli(std::vector<std::string> args) {
  args.insert(args.begin(), CELERIAC_CLI_BIN);
  return args;
}

std::size_t count_tasks(const tq::Json& tasks) {
  return tasks.is_object() ? tasks.size() : 0;
}

}  // namespace

TEST_F(MonitorSqlite, CeleriacInspectPingAndControlReachTheWorker) {
  start_worker();
  auto ping =
      tq::test::run_program(with_cli({"-b", url, "inspect", "ping", "-t", "10", "-d", kHost}), 60s);
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find(kHost), std::string::npos) << ping.output;
  EXPECT_NE(ping.output.find("pong"), std::string::npos) << ping.output;

  auto reg = tq::test::run_program(
      with_cli({"-b", url, "inspect", "registered", "-t", "10", "-d", kHost}), 60s);
  EXPECT_NE(reg.output.find("tests.add"), std::string::npos) << reg.output;

  auto off = tq::test::run_program(
      with_cli({"-b", url, "control", "disable_events", "-t", "10", "-d", kHost}), 60s);
  EXPECT_EQ(off.exit_code, 0) << off.output;
  EXPECT_NE(off.output.find("task events disabled"), std::string::npos) << off.output;

  // addressed to another node: nobody answers, and the CLI says so
  auto none = tq::test::run_program(
      with_cli({"-b", url, "inspect", "ping", "-t", "1", "-d", "celery@nobody"}), 60s);
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_NE(none.output.find("No nodes replied"), std::string::npos) << none.output;

  auto client = tq::make_control_client(url);
  auto stats = client->broadcast("stats", tq::Json::object(), std::vector<std::string>{kHost}, 10s);
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_TRUE(stats[0].contains(kHost));
  auto bad =
      client->broadcast("no_such_method", tq::Json::object(), std::vector<std::string>{kHost}, 10s);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_NE(bad[0][kHost].value("error", "").find("no_such_method"), std::string::npos);
}

TEST_F(MonitorSqlite, EventReceiverSeesTaskEventsOnlyWithDashE) {
  auto rx = tq::make_event_receiver(url);
  start_worker(/*events=*/true);
  auto r = app->send_task("tests.add", tq::Json::array({2, 3}));
  EXPECT_EQ(r.get(30s), 5);
  std::vector<std::string> types;
  ASSERT_TRUE(eventually([&] {
    for (auto& e : rx->poll(100ms))
      if (e.value("uuid", "") == r.id() || e.value("type", "") == "worker-online")
        types.push_back(e["type"]);
    return std::count(types.begin(), types.end(), "task-succeeded") == 1;
  }));
  EXPECT_NE(std::find(types.begin(), types.end(), "worker-online"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "task-received"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "task-started"), types.end());
  EXPECT_EQ(rx->malformed(), 0u);
}

TEST_F(MonitorSqlite, EventsDumpPrintsALinePerEvent) {
  start_worker();
  tq::test::ChildProcess dump(with_cli({"-b", url, "events", "--dump"}), dir.path() / "dump.log");
  ASSERT_TRUE(dump.wait_for_log("listening for events", 30s)) << dump.log();
  auto r = app->send_task("tests.add", tq::Json::array({20, 22}));
  EXPECT_EQ(r.get(30s), 42);
  EXPECT_TRUE(dump.wait_for_log(r.id() + " name=tests.add", 30s)) << dump.log();
  EXPECT_TRUE(dump.wait_for_log("task-succeeded uuid=" + r.id(), 30s)) << dump.log();
  EXPECT_TRUE(dump.wait_for_log("worker-heartbeat", 30s)) << dump.log();
  EXPECT_EQ(dump.stop(), 0) << dump.log();
}

TEST_F(MonitorSqlite, DashboardApiMetricsAndHistorySurviveARestart) {
  start_worker();
  std::string failed_id;
  {
    tq::Dashboard dash(*app, dash_options());
    dash.start();
    int port = dash.port();
    ASSERT_TRUE(
        eventually([&] { return get_json(port, "/api/workers?status=true").value(kHost, false); }));
    for (int i = 0; i < 3; ++i)
      EXPECT_EQ(app->send_task("tests.add", tq::Json::array({i, 1})).get(30s), i + 1);
    auto f = app->send_task("tests.fail");
    failed_id = f.id();
    EXPECT_THROW(f.get(30s), tq::TaskError);
    ASSERT_TRUE(eventually([&] {
      return count_tasks(get_json(port, "/api/tasks?taskname=tests.add&state=SUCCESS")) == 3 &&
             count_tasks(get_json(port, "/api/tasks?state=FAILURE")) == 1;
    })) << http_get(port, "/api/tasks").second;

    auto info = get_json(port, "/api/task/info/" + failed_id);
    EXPECT_EQ(info.value("state", ""), "FAILURE");
    EXPECT_EQ(info.value("name", ""), "tests.fail");
    EXPECT_NE(info.value("exception", "").find("deliberate failure"), std::string::npos) << info;
    EXPECT_NE(info.value("traceback", "").find("deliberate failure"), std::string::npos) << info;
    EXPECT_EQ(info.value("worker", ""), kHost);
    EXPECT_EQ(http_get(port, "/api/task/info/no-such-id").first, 404);
    auto result = get_json(port, "/api/task/result/" + failed_id);
    EXPECT_EQ(result.value("state", ""), "FAILURE");

    auto [mstatus, metrics] = http_get(port, "/metrics");
    EXPECT_EQ(mstatus, 200);
    EXPECT_NE(
        metrics.find("flower_events_total{worker=\"celery@mon-sqlite\",type=\"task-succeeded\","
                     "task=\"tests.add\"} 3"),
        std::string::npos)
        << metrics;
    EXPECT_NE(
        metrics.find(
            "flower_task_runtime_seconds_count{worker=\"celery@mon-sqlite\",task=\"tests.add\"} 3"),
        std::string::npos)
        << metrics;
    EXPECT_NE(metrics.find("flower_worker_online{worker=\"celery@mon-sqlite\"} 1"),
              std::string::npos);
    EXPECT_NE(metrics.find("celeriac_queue_length{queue=\"celery\",priority=\"all\"} 0"),
              std::string::npos);

    auto workers = get_json(port, "/api/workers");
    ASSERT_TRUE(workers.contains(kHost)) << workers;
    EXPECT_EQ(workers[kHost].value("language", ""), "C++");
    auto reg = workers[kHost]["registered"];
    EXPECT_NE(std::find(reg.begin(), reg.end(), "tests.add"), reg.end()) << workers;
    EXPECT_EQ(http_get(port, "/healthcheck"), std::make_pair(200, std::string("OK")));
    auto queues = get_json(port, "/api/queues/length");
    EXPECT_EQ(queues["active_queues"][0].value("name", ""), "celery") << queues;
    EXPECT_EQ(http_get(port, "/api/tasks?limit=abc").first, 400);
    auto negative = http_get(port, "/api/tasks?offset=-1");
    EXPECT_EQ(negative.first, 400);
    EXPECT_NE(negative.second.find("'offset' is negative"), std::string::npos) << negative.second;
    auto trailing = http_get(port, "/api/tasks?received_start=12x");
    EXPECT_EQ(trailing.first, 400);
    EXPECT_NE(trailing.second.find("'received_start' is not a number"), std::string::npos)
        << trailing.second;
    auto index = http_get(port, "/");
    EXPECT_EQ(index.first, 200);
    EXPECT_NE(index.second.find("celeriac dashboard"), std::string::npos);
    dash.stop();
  }
  // a new dashboard on the same history file: nothing lost
  tq::Dashboard again(*app, dash_options());
  again.start();
  auto info = get_json(again.port(), "/api/task/info/" + failed_id);
  EXPECT_EQ(info.value("state", ""), "FAILURE") << info;
  EXPECT_EQ(count_tasks(get_json(again.port(), "/api/tasks?taskname=tests.add")), 3u);
}

TEST_F(MonitorSqlite, RevokeThroughTheApiReachesTheWorker) {
  start_worker();
  tq::Dashboard dash(*app, dash_options());
  dash.start();
  tq::CallOptions o;
  o.task_id = tq::make_uuid();
  auto [status, body] = http_post(dash.port(), "/api/task/revoke/" + o.task_id);
  EXPECT_EQ(status, 200) << body;
  EXPECT_NE(body.find("Revoked"), std::string::npos);
  // the pidbox is read in order: once a later ping is answered, the revoke was handled
  auto client = tq::make_control_client(url);
  ASSERT_EQ(
      client->broadcast("ping", tq::Json::object(), std::vector<std::string>{kHost}, 10s).size(),
      1u);
  auto r = app->send_task("tests.add", tq::Json::array({1, 1}), tq::Json::object(), o);
  EXPECT_THROW(r.get(30s), tq::TaskError);
  ASSERT_TRUE(eventually([&] {
    auto info = get_json(dash.port(), "/api/task/info/" + o.task_id);
    return info.is_object() && info.value("state", "") == "REVOKED";
  }));
  // GET on an action is not routed: actions are POST only
  EXPECT_EQ(http_get(dash.port(), "/api/task/revoke/" + o.task_id).first, 404);
}

TEST_F(MonitorSqlite, AuthAndBindingRules) {
  auto open_to_all = dash_options();
  open_to_all.address = "0.0.0.0";
  try {
    tq::Dashboard d(*app, open_to_all);
    FAIL() << "a dashboard off loopback started without a token";
  } catch (const tq::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--auth-token"), std::string::npos) << e.what();
  }
  auto o = dash_options();
  o.auth_token = "s3cret-token";
  tq::Dashboard dash(*app, o);
  dash.start();
  int port = dash.port();
  EXPECT_EQ(http_get(port, "/api/workers").first, 401);
  EXPECT_EQ(http_get(port, "/").first, 401);
  EXPECT_EQ(http_get(port, "/metrics").first, 401);
  EXPECT_EQ(http_get(port, "/api/tasks", {{"Authorization", "Bearer wrong"}}).first, 401);
  EXPECT_EQ(http_get(port, "/api/tasks", {{"Authorization", "Bearer s3cret-token"}}).first, 200);
  // basic auth, any user name: "user:s3cret-token"
  EXPECT_EQ(
      http_get(port, "/api/tasks", {{"Authorization", "Basic dXNlcjpzM2NyZXQtdG9rZW4="}}).first,
      200);
  auto bearer = httplib::Headers{{"Authorization", "Bearer s3cret-token"}};
  auto cross = bearer;
  cross.emplace("Origin", "http://evil.example");
  EXPECT_EQ(http_post(port, "/api/task/revoke/x", cross).first, 403);
  auto fetch_site = bearer;
  fetch_site.emplace("Sec-Fetch-Site", "cross-site");
  EXPECT_EQ(http_post(port, "/api/task/revoke/x", fetch_site).first, 403);
  EXPECT_EQ(http_post(port, "/api/task/revoke/x", bearer).first, 200);
  // no page or API answer carries the broker's path secrets: the URL is never echoed
  EXPECT_EQ(http_get(port, "/api/workers", bearer).second.find("broker.db"), std::string::npos);
}

TEST_F(MonitorSqlite, MalformedEventsAndAFloodAreCountedAndSkipped) {
  tq::Dashboard dash(*app, dash_options());
  dash.start();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir.path() / "broker.db").c_str(), &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 10000);
  auto exec = [&](const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  };
  exec(
      "CREATE TABLE IF NOT EXISTS celeriac_monitor (id INTEGER PRIMARY KEY AUTOINCREMENT, "
      "channel TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL)");
  auto event = [](const std::string& host) {
    return "'{\"type\": \"worker-heartbeat\", \"hostname\": \"" + host + "\", \"freq\": 2.0}'";
  };
  // the dashboard reads from where it started: wait until it sees a first event
  ASSERT_TRUE(eventually([&] {
    exec("INSERT INTO celeriac_monitor(channel, body, created) VALUES ('event', " +
         event("w@first") + ", 0)");
    return dash.events_seen() > 0;
  }));
  std::uint64_t before = dash.malformed_events();
  exec("INSERT INTO celeriac_monitor(channel, body, created) VALUES ('event', '{not json', 0)");
  exec(
      "INSERT INTO celeriac_monitor(channel, body, created) VALUES ('event', '{\"no_type\": 1}', "
      "0)");
  exec(
      "INSERT INTO celeriac_monitor(channel, body, created) VALUES ('event', "
      "'{\"type\": \"task-succeeded\", \"uuid\": 7}', 0)");
  std::string big = "{\"type\": \"task-received\", \"uuid\": \"big\", \"args\": \"" +
                    std::string(10 << 20, 'x') + "\"}";
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO celeriac_monitor(channel, body, created) VALUES ('event', ?, 0)",
                     -1, &s, nullptr);
  sqlite3_bind_text(s, 1, big.data(), static_cast<int>(big.size()), SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
  exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
      "INSERT INTO celeriac_monitor(channel, body, created) SELECT 'event', 'garbage ' || i, 0 "
      "FROM n");
  exec("INSERT INTO celeriac_monitor(channel, body, created) VALUES ('event', " +
       event("w@after-flood") + ", 0)");
  sqlite3_close(db);
  // the valid event after the flood still arrives: nothing stalled
  ASSERT_TRUE(eventually(
      [&] { return get_json(dash.port(), "/api/workers?status=true").contains("w@after-flood"); },
      120s));
  EXPECT_EQ(dash.malformed_events() - before, 100004u);
  EXPECT_FALSE(get_json(dash.port(), "/api/tasks").contains("big"));
  EXPECT_EQ(http_get(dash.port(), "/healthcheck").first, 200);
}

TEST_F(MonitorSqlite, WorkerMetricsServerCountsThisWorkersTasks) {
  start_worker(false);
  tq::WorkerMetricsServer server(*worker, 0);
  EXPECT_EQ(app->send_task("tests.add", tq::Json::array({1, 2})).get(30s), 3);
  ASSERT_TRUE(eventually([&] {
    return http_get(server.port(), "/metrics")
               .second.find(
                   "celeriac_worker_tasks_total{worker=\"celery@mon-sqlite\",outcome=\"succeeded\"}"
                   " 1") != std::string::npos;
  })) << http_get(server.port(), "/metrics").second;
  EXPECT_EQ(http_get(server.port(), "/healthcheck").second, "OK");
}

// memory://: the same events and remote control through the in-process bus.
TEST(MonitorMemory, EventsAndRemoteControlInProcess) {
  tq::App app("memory://monitor-" + tq::make_uuid(), "");
  app.task("tests.add", {"x", "y"}, [](int x, int y) { return x + y; });
  auto rx = tq::make_event_receiver(app.config().broker_url);
  tq::WorkerOptions o;
  o.hostname = "celery@mon-memory";
  o.concurrency = 1;
  o.poll_interval = 20ms;
  o.task_events = true;
  tq::Worker worker(app, o);
  worker.start();
  auto client = tq::make_control_client(app.config().broker_url);
  auto pong = client->broadcast("ping", tq::Json::object(),
                                std::vector<std::string>{"celery@mon-memory"}, 10s);
  ASSERT_EQ(pong.size(), 1u);
  EXPECT_EQ(pong[0]["celery@mon-memory"], (tq::Json{{"ok", "pong"}}));
  auto r = app.send_task("tests.add", tq::Json::array({4, 5}));
  EXPECT_EQ(r.get(30s), 9);
  bool succeeded = false;
  ASSERT_TRUE(eventually([&] {
    for (auto& e : rx->poll(100ms))
      succeeded =
          succeeded || (e.value("type", "") == "task-succeeded" && e.value("uuid", "") == r.id());
    return succeeded;
  }));
  worker.stop();
  worker.wait(30s);
}
