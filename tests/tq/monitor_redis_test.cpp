// A mixed fleet on one redis-server: a C++ worker and a Python Celery worker,
// both with -E, seen alike by the dashboard (workers, tasks, metrics), and
// Celery's own `celery inspect ping` answered by the C++ worker.
#include <gtest/gtest.h>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/worker.hpp"
#include "monitor_test_util.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::eventually;
using celeriac::tq::test::get_json;
using celeriac::tq::test::http_get;
using namespace std::chrono_literals;

namespace {

constexpr const char* kCpp = "cpp@mon-redis";
constexpr const char* kPy = "py@mon-redis";

std::uint64_t succeeded_on(const std::string& metrics, const std::string& worker) {
  std::string needle =
      "flower_events_total{worker=\"" + worker + "\",type=\"task-succeeded\",task=\"tasks.add\"} ";
  auto p = metrics.find(needle);
  return p == std::string::npos ? 0 : std::stoull(metrics.substr(p + needle.size()));
}

}  // namespace

TEST(MonitorRedis, MixedFleetAppearsInWorkersTasksAndMetrics) {
  tq::test::RedisServer::Options ro;
  ro.password = "pw-Secr3t-mon";
  tq::test::RedisServer redis(ro);
  tq::App app(redis.url(), redis.url());
  app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  tq::test::TempDir dir("celeriac-monitor-redis");
  tq::DashboardOptions d;
  d.port = 0;
  d.history_path = (dir.path() / "history.db").string();
  tq::Dashboard dash(app, d);
  dash.start();
  int port = dash.port();

  tq::WorkerOptions o;
  o.hostname = kCpp;
  o.concurrency = 2;
  o.task_events = true;
  tq::Worker worker(app, o);
  worker.start();
  tq::test::CeleryWorker::Options po;
  po.hostname = kPy;
  po.events = true;
  po.heartbeat = true;
  tq::test::CeleryWorker py(redis.url(), po);

  ASSERT_TRUE(eventually([&] {
    auto s = get_json(port, "/api/workers?status=true");
    return s.value(kCpp, false) && s.value(kPy, false);
  })) << http_get(port, "/api/workers?status=true").second;

  // Celery's own CLI sees the C++ worker
  auto ping =
      tq::test::run_celery_cli(redis.url(), {"inspect", "ping", "-d", kCpp, "--timeout", "5"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find("pong"), std::string::npos) << ping.output;

  // tasks from both languages; both workers consume the same queue
  constexpr int kCalls = 12;
  std::vector<tq::AsyncResult<tq::Json>> results;
  for (int i = 0; i < kCalls / 2; ++i)
    results.push_back(app.send_task("tasks.add", tq::Json::array({i, i})));
  std::vector<tq::test::PyCall> calls;
  for (int i = 0; i < kCalls / 2; ++i) calls.push_back({"tasks.add", tq::Json::array({i, 1})});
  auto py_out = tq::test::run_python_client(redis.url(), calls);
  for (auto& r : results) r.get(60s);

  std::string metrics;
  ASSERT_TRUE(eventually(
      [&] {
        metrics = http_get(port, "/metrics").second;
        return succeeded_on(metrics, kCpp) + succeeded_on(metrics, kPy) == kCalls;
      },
      60s))
      << metrics << "\npython client: " << py_out;
  EXPECT_NE(metrics.find("flower_worker_online{worker=\"cpp@mon-redis\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("flower_worker_online{worker=\"py@mon-redis\"} 1"), std::string::npos);

  auto workers = get_json(port, "/api/workers");
  EXPECT_EQ(workers[kCpp].value("language", ""), "C++") << workers;
  EXPECT_EQ(workers[kPy].value("language", ""), "Python") << workers;
  EXPECT_TRUE(workers[kPy].contains("stats")) << workers;
  auto tasks = get_json(port, "/api/tasks?taskname=tasks.add&state=SUCCESS&limit=0");
  EXPECT_EQ(tasks.size(), static_cast<std::size_t>(kCalls)) << tasks;
  // the broker's password appears nowhere the dashboard serves
  for (const char* path : {"/api/workers", "/api/tasks", "/metrics", "/api/queues/length", "/"})
    EXPECT_EQ(http_get(port, path).second.find(ro.password), std::string::npos) << path;

  py.stop();
  worker.stop();
  worker.wait(30s);
  ASSERT_TRUE(
      eventually([&] { return !get_json(port, "/api/workers?status=true").value(kPy, true); }));
}
