// Remote control and events over Redis, against the real `celery` CLI and a
// real Python Celery worker.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <mutex>

#include "celeriac/redis/pubsub.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/redis/control.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::tq::redis;
using celeriac::tq::test::RedisServer;
using namespace std::chrono_literals;

namespace {

// The worker side of the remote-control seam, as a recorder: the service
// under test talks to it exactly as it talks to tq::Worker.
class RecordingWorker : public tq::WorkerControl {
 public:
  std::string hostname() const override { return "celeriac@test"; }
  std::vector<std::string> queues() const override { return {"celery"}; }
  std::vector<std::string> registered() const override { return {"tasks.add", "tasks.mul"}; }
  tq::Json stats() const override {
    return {
        {"pid", 4242}, {"pool", {{"implementation", "threads"}}}, {"total", {{"tasks.add", 7}}}};
  }
  tq::Json active() const override {
    return tq::Json::array({{{"id", "run-1"},
                             {"name", "tasks.add"},
                             {"args", tq::Json::array({1, 2})},
                             {"kwargs", tq::Json::object()},
                             {"hostname", "celeriac@test"},
                             {"time_start", 1.0},
                             {"acknowledged", true},
                             {"delivery_info", {{"routing_key", "celery"}}},
                             {"worker_pid", 4242}}});
  }
  tq::Json reserved() const override { return tq::Json::array(); }
  void revoke(const std::string& task_id, bool terminate, int signal) override {
    std::lock_guard lk(mu);
    revoked.push_back(task_id);
    if (terminate) terminated.emplace_back(task_id, signal);
  }
  void shutdown() override { shutdowns++; }
  mutable std::mutex mu;
  std::vector<std::string> revoked;
  std::vector<std::pair<std::string, int>> terminated;  // id, signal
  std::atomic<int> shutdowns{0};
};

}  // namespace

TEST(RedisControl, CeleryInspectSeesTheCeleriacWorker) {
  RedisServer server;
  RecordingWorker worker;
  r::RedisWorkerService svc(tq::Url::parse(server.url()), worker);
  auto ping = celeriac::tq::test::run_celery_cli(
      server.url(), {"inspect", "ping", "-d", "celeriac@test", "--timeout", "3"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find("celeriac@test: OK"), std::string::npos) << ping.output;
  EXPECT_NE(ping.output.find("pong"), std::string::npos) << ping.output;
  auto reg = celeriac::tq::test::run_celery_cli(
      server.url(), {"inspect", "registered", "-d", "celeriac@test", "--timeout", "3", "--json"});
  EXPECT_EQ(reg.exit_code, 0) << reg.output;
  EXPECT_NE(reg.output.find(R"("celeriac@test": ["tasks.add", "tasks.mul"])"), std::string::npos)
      << reg.output;
  auto act = celeriac::tq::test::run_celery_cli(
      server.url(), {"inspect", "active", "-d", "celeriac@test", "--timeout", "3", "--json"});
  EXPECT_NE(act.output.find("run-1"), std::string::npos) << act.output;
  svc.stop();
}

TEST(RedisControl, CeleryStatsAndRevokeReachTheCeleriacWorker) {
  RedisServer server;
  RecordingWorker worker;
  r::RedisWorkerService svc(tq::Url::parse(server.url()), worker);
  auto stats = celeriac::tq::test::run_celery_cli(
      server.url(), {"inspect", "stats", "-d", "celeriac@test", "--timeout", "3", "--json"});
  EXPECT_NE(stats.output.find("4242"), std::string::npos) << stats.output;
  auto rev = celeriac::tq::test::run_celery_cli(server.url(), {"control", "revoke", "abc-123"});
  EXPECT_EQ(rev.exit_code, 0) << rev.output;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard lk(worker.mu);
      if (!worker.revoked.empty()) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "revoke never arrived";
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(worker.revoked, std::vector<std::string>{"abc-123"});
  {
    std::lock_guard lk(worker.mu);
    EXPECT_TRUE(worker.terminated.empty());  // a plain revoke terminates nothing
  }
  // `celery control terminate KILL id`: revoke with terminate and Celery's
  // signal name, which reaches the worker as the signal's number.
  auto term =
      celeriac::tq::test::run_celery_cli(server.url(), {"control", "terminate", "KILL", "abc-456"});
  EXPECT_EQ(term.exit_code, 0) << term.output;
  deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    {
      std::lock_guard lk(worker.mu);
      if (!worker.terminated.empty()) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "terminate never arrived";
    std::this_thread::sleep_for(20ms);
  }
  {
    std::lock_guard lk(worker.mu);
    EXPECT_EQ(worker.terminated, (std::vector<std::pair<std::string, int>>{{"abc-456", SIGKILL}}));
  }
  svc.stop();
}

TEST(RedisControl, CeleryControlShutdownStopsTheCeleriacWorker) {
  RedisServer server;
  RecordingWorker worker;
  r::RedisWorkerService svc(tq::Url::parse(server.url()), worker);
  celeriac::tq::test::run_celery_cli(server.url(), {"control", "shutdown", "--timeout", "0.3"});
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (worker.shutdowns == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(worker.shutdowns, 1);
  // requests for other nodes are ignored
  EXPECT_FALSE(svc.handle({{"method", "ping"}, {"destination", {"other@host"}}}).has_value());
  EXPECT_TRUE(
      svc.handle({{"method", "ping"}, {"pattern", "celeriac@*"}, {"matcher", "glob"}}).has_value());
  EXPECT_FALSE(
      svc.handle({{"method", "ping"}, {"pattern", "py@*"}, {"matcher", "glob"}}).has_value());
  // kombu's pidbox ignores a pattern that comes without a matcher
  EXPECT_TRUE(svc.handle({{"method", "ping"}, {"pattern", "py@*"}}).has_value());
  EXPECT_EQ((*svc.handle({{"method", "nope"}}))["error"], "No such control command: nope");
  EXPECT_FALSE(svc.handle(tq::Json::array()).has_value());
  svc.stop();
}

TEST(RedisControl, ClientPingsPythonAndCeleriacWorkers) {
  RedisServer server;
  RecordingWorker worker;
  r::RedisWorkerService svc(tq::Url::parse(server.url()), worker);
  celeriac::tq::test::CeleryWorker py(server.url());
  r::RedisControlClient client(tq::Url::parse(server.url()));
  auto replies = client.broadcast("ping", tq::Json::object(), std::nullopt, 2s);
  std::set<std::string> nodes;
  for (auto& rep : replies)
    for (auto& [node, payload] : rep.items()) {
      nodes.insert(node);
      EXPECT_EQ(payload, (tq::Json{{"ok", "pong"}})) << node;
    }
  EXPECT_EQ(nodes, (std::set<std::string>{"celeriac@test", "py@celeriac-test"}));
  // destination: only that node answers, and the call returns once it did
  auto one = client.broadcast("registered", tq::Json::object(),
                              std::vector<std::string>{"py@celeriac-test"}, 5s);
  ASSERT_EQ(one.size(), 1u);
  auto names = one[0]["py@celeriac-test"];
  EXPECT_NE(std::find(names.begin(), names.end(), "tasks.add"), names.end()) << names.dump();
  // the reply queue and its binding are cleaned up
  EXPECT_EQ(server.cli({"SCARD", "_kombu.binding.reply.celery.pidbox"}), "0");
}

TEST(RedisEvents, WorkerAndTaskEventsAsCeleryPublishesThem) {
  RedisServer server;
  RecordingWorker worker;
  r::Subscriber sub(r::Url::parse(server.url()));
  sub.psubscribe({"/0.celeryev/*"});
  r::ServiceOptions o;
  o.task_events = true;
  o.heartbeat = 200ms;
  r::RedisWorkerService svc(tq::Url::parse(server.url()), worker, o);
  svc.on_task_event({{"type", "task-received"}, {"uuid", "u1"}, {"name", "tasks.add"}});
  svc.on_task_event(
      {{"type", "task-succeeded"}, {"uuid", "u1"}, {"result", "3"}, {"runtime", 0.1}});
  std::map<std::string, tq::Json> seen;  // routing key -> last body
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((seen.size() < 3) && std::chrono::steady_clock::now() < deadline) {
    auto m = sub.get_message(500ms);
    if (!m) continue;
    auto env = tq::loads(m->data);
    EXPECT_EQ(env["headers"]["hostname"], "celeriac@test");
    EXPECT_EQ(env["properties"]["delivery_info"]["exchange"], "celeryev");
    seen[m->channel] = r::envelope_body(env);
  }
  svc.stop();
  ASSERT_TRUE(seen.count("/0.celeryev/worker.online"));
  ASSERT_TRUE(seen.count("/0.celeryev/worker.heartbeat"));
  ASSERT_TRUE(seen.count("/0.celeryev/task.multi"));
  auto online = seen["/0.celeryev/worker.online"];
  EXPECT_EQ(online["type"], "worker-online");
  EXPECT_EQ(online["sw_ident"], "celeriac");
  EXPECT_EQ(online["processed"], 7);
  EXPECT_TRUE(online["timestamp"].is_number());
  auto multi = seen["/0.celeryev/task.multi"];
  ASSERT_TRUE(multi.is_array());
  ASSERT_EQ(multi.size(), 2u);
  EXPECT_EQ(multi[0]["type"], "task-received");
  EXPECT_EQ(multi[1]["type"], "task-succeeded");
  EXPECT_EQ(multi[1]["hostname"], "celeriac@test");
  EXPECT_GT(multi[1]["clock"].get<long>(), multi[0]["clock"].get<long>());
  // worker-offline at stop
  bool offline = false;
  while (!offline) {
    auto m = sub.get_message(2s);
    if (!m) break;
    offline = m->channel == "/0.celeryev/worker.offline";
  }
  EXPECT_TRUE(offline);
}
