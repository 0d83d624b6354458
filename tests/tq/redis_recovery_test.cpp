// Recovery on Redis with real processes: a worker SIGKILLed while it holds a
// batch of reserved messages loses none of them; a running worker restores
// them once they are older than the visibility timeout (kombu's rule),
// without any worker restarting.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/redis/connection.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

using namespace celeriac;
using namespace std::chrono_literals;
using celeriac::tq::test::ChildProcess;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::TempDir;

namespace {

long long redis_int(const RedisServer& server, std::initializer_list<std::string_view> cmd) {
  return redis::Connection::connect(server.url()).command(cmd).integer();
}

template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

}  // namespace

#ifdef CELERIAC_TASKS_APP
TEST(RedisRecovery, KilledWorkerHoldingABatchLosesNothing) {
  RedisServer server;
  const std::string broker = server.url() + "?visibility_timeout=2";
  TempDir dir("celeriac-recovery");
  // The README's example app as the worker that dies: 2 threads, 16 held.
  ChildProcess doomed({CELERIAC_TASKS_APP, "--broker", broker, "--backend", server.url(), "worker",
                       "-c", "2", "--prefetch-multiplier", "8", "--acks-late", "-n", "doomed@test"},
                      dir.path() / "doomed.log");
  ASSERT_TRUE(doomed.wait_for_log("ready", 30s)) << doomed.log();

  tq::App app(broker, server.url());
  auto fetch = app.task("tasks.fetch", {"ms"}, [](int ms) -> aio::Task<int> {
    co_await aio::sleep(std::chrono::milliseconds(ms));
    co_return ms;
  });
  std::vector<tq::AsyncResult<int>> results;
  for (int i = 0; i < 40; ++i) results.push_back(fetch.delay(300));
  ASSERT_TRUE(eventually([&] { return redis_int(server, {"HLEN", "unacked"}) >= 10; }, 20s));
  doomed.kill_hard();
  auto killed_at = std::chrono::steady_clock::now();
  long long held = redis_int(server, {"HLEN", "unacked"});
  EXPECT_GE(held, 10);

  tq::WorkerOptions o;
  o.hostname = "rescuer@test";
  o.concurrency = 4;
  tq::Worker rescuer(app, o);
  rescuer.start();
  for (auto& r : results) EXPECT_EQ(r.get(60s), 300);
  double recovery =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::printf(
      "held at the kill: %lld messages; all 40 done %.1f s after the kill (visibility timeout 2 "
      "s)\n",
      held, recovery);
  EXPECT_TRUE(eventually([&] { return redis_int(server, {"HLEN", "unacked"}) == 0; }, 10s));
  EXPECT_EQ(redis_int(server, {"ZCARD", "unacked_index"}), 0);
  rescuer.stop();
  EXPECT_TRUE(rescuer.wait(30s));
}
#endif  // CELERIAC_TASKS_APP (built with the examples)

// A producer sending batches while redis-server is killed and restarted
// (AOF, fsync always): every batch is published exactly once, or the call
// says which tasks it could not publish — never a half batch, never twice.
TEST(RedisRecovery, BatchPublishAcrossARestartIsExactlyOnceOrReported) {
  RedisServer server(RedisServer::Options{true, ""});
  tq::App app(server.url(), server.url());
  std::atomic<bool> done{false};
  std::thread chaos([&] {
    std::this_thread::sleep_for(150ms);
    server.kill_hard();
    std::this_thread::sleep_for(300ms);
    server.start();
    done = true;
  });
  std::vector<std::string> published, failed;
  int batches = 0;
  while (!done || batches < 40) {
    std::vector<tq::Json> args(50, tq::Json::array({1, 2}));
    try {
      for (auto& r : app.send_many("tasks.never_run", args)) published.push_back(r.id());
    } catch (const tq::PublishError& e) {
      EXPECT_EQ(e.task_ids().size(), 50u);
      failed.insert(failed.end(), e.task_ids().begin(), e.task_ids().end());
      std::printf("batch %d not published: %s\n", batches, e.what());
    }
    ++batches;
  }
  chaos.join();
  std::map<std::string, int> seen;
  auto c = redis::Connection::connect(server.url());
  redis::Reply queued = c.command({"LRANGE", "celery", "0", "-1"});
  for (auto& e : queued.elements()) ++seen[tq::decode(e.str()).id];
  for (auto& id : published) EXPECT_EQ(seen[id], 1) << id;
  std::size_t failed_in = 0;
  for (auto& id : failed) failed_in += seen.count(id);
  EXPECT_EQ(seen.size(), published.size() + failed_in);
  std::printf("%d batches: %zu tasks published exactly once, %zu reported as not published\n",
              batches, published.size(), failed.size());
}
