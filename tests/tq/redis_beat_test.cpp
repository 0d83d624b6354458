// Beat against real components: two `celeriac beat --schedule` processes on
// one redis-server driving a real Python Celery worker (one task per slot,
// failover after kill -9 with no slot twice); the same on the SQLite store;
// `worker -B` in two C++ app processes (one beat active across them).
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/beat_store.hpp"
#include "celeriac/tq/message.hpp"
#include "support/celery_process.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::CeleryWorker;
using celeriac::tq::test::ChildProcess;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::run_program;
using celeriac::tq::test::TempDir;
using tq::Json;
using namespace std::chrono_literals;

namespace {

constexpr auto kLong = 60s;  // bound of every wait (a loaded 2-core CI machine)

// Polls `pred` every 50 ms until it holds or `limit` passes.
template <class P>
bool wait_until(P pred, std::chrono::milliseconds limit = kLong) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return pred();
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

std::filesystem::path write_schedule(const TempDir& dir, const std::string& task,
                                     const Json& args) {
  Json doc = {{"entries", Json::array({{{"name", "every-second"},
                                        {"task", task},
                                        {"args", args},
                                        {"schedule", {{"every", "1s"}}},
                                        {"options", {{"relative", true}}}}})}};
  auto file = dir.path() / "schedule.json";
  std::ofstream(file) << doc.dump(2);
  return file;
}

ChildProcess start_cli_beat(const std::string& url, const std::filesystem::path& schedule,
                            const std::string& id, const TempDir& dir) {
  return ChildProcess(
      {CELERIAC_CLI_BIN, "-b", url, "beat", "--schedule", schedule.string(), "--instance", id},
      dir.path() / (id + ".log"));
}

// Every slot header appears once; returns how many.
std::size_t expect_distinct(const std::vector<std::string>& slots) {
  std::set<std::string> unique(slots.begin(), slots.end());
  EXPECT_EQ(unique.size(), slots.size()) << "a slot was sent twice";
  EXPECT_EQ(unique.count("None"), 0u) << "a task arrived without its slot header";
  return unique.size();
}

std::uint64_t stored_total(const RedisServer& redis, const std::string& entry = "every-second") {
  auto text = redis.cli({"HGET", "celeriac.beat:state", entry});
  if (text.empty()) return 0;
  return tq::loads(text).value("total_run_count", std::uint64_t{0});
}

TEST(RedisBeat, TwoCliBeatsDrivePythonWorkerOneTaskPerSlotAndFailOver) {
  RedisServer redis;
  TempDir dir("celeriac-beat");
  CeleryWorker py(redis.url());
  auto schedule = write_schedule(dir, "tasks.beat_mark", Json::array({"ha"}));
  auto done = [&] { return lines(redis.cli({"LRANGE", "celeriac.test.beat.ha", "0", "-1"})); };

  ChildProcess a = start_cli_beat(redis.url(), schedule, "beat-a", dir);
  ASSERT_TRUE(a.wait_for_log("beat-a: active", kLong)) << a.log();
  ChildProcess b = start_cli_beat(redis.url(), schedule, "beat-b", dir);
  ASSERT_TRUE(b.wait_for_log("waiting for the lease", kLong)) << b.log();
  ASSERT_TRUE(wait_until([&] { return done().size() >= 5; }))
      << "the Python worker ran " << done().size();
  EXPECT_EQ(redis.cli({"GET", "celeriac.beat:lock"}), "beat-a");
  EXPECT_EQ(b.log().find("beat-b: active"), std::string::npos) << "two active beats";

  a.kill_hard();  // the active instance dies without releasing its lease
  ASSERT_TRUE(b.wait_for_log("beat-b: active", kLong)) << b.log();
  EXPECT_EQ(redis.cli({"GET", "celeriac.beat:lock"}), "beat-b");
  const std::size_t at_takeover = done().size();
  ASSERT_TRUE(wait_until([&] { return done().size() >= at_takeover + 5; }));

  // `beat --list` shows the stored state and who is active.
  auto list = run_program(
      {CELERIAC_CLI_BIN, "-b", redis.url(), "beat", "--list", "--schedule", schedule.string()},
      30s);
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("active instance: beat-b"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("every-second"), std::string::npos) << list.output;

  b.stop();  // clean stop: releases the lease
  EXPECT_EQ(redis.cli({"EXISTS", "celeriac.beat:lock"}), "0");
  // State is recorded before publishing, so a kill -9 between the two may have lost one recorded
  // slot.
  const auto total = stored_total(redis);
  ASSERT_TRUE(wait_until([&] { return done().size() + 1 >= total; }))
      << done().size() << " of " << total;
  wait_until([&] { return done().size() >= total; }, 5s);
  auto slots = done();
  EXPECT_LE(slots.size(), total) << "more tasks ran than beat recorded";
  EXPECT_GE(slots.size() + 1, total);
  EXPECT_EQ(expect_distinct(slots), slots.size());
}

TEST(RedisBeat, SqliteStoreFailoverSendsNoSlotTwice) {
  TempDir dir("celeriac-beat-sqlite");
  std::string url = "sqlite:///" + (dir.path() / "beat.db").string();
  auto schedule = write_schedule(dir, "tasks.noop", Json::array());
  tq::App app(url, url);
  auto queued = [&] { return app.broker().queue_length("celery"); };

  ChildProcess a = start_cli_beat(url, schedule, "beat-a", dir);
  ASSERT_TRUE(a.wait_for_log("beat-a: active", kLong)) << a.log();
  ChildProcess b = start_cli_beat(url, schedule, "beat-b", dir);
  ASSERT_TRUE(b.wait_for_log("waiting for the lease", kLong)) << b.log();
  ASSERT_TRUE(wait_until([&] { return queued() >= 4; }));
  auto list =
      run_program({CELERIAC_CLI_BIN, "-b", url, "beat", "--list", "-s", schedule.string()}, 30s);
  EXPECT_NE(list.output.find("active instance: beat-a"), std::string::npos) << list.output;

  a.kill_hard();
  ASSERT_TRUE(b.wait_for_log("beat-b: active", kLong)) << b.log();
  const auto at_takeover = queued();
  ASSERT_TRUE(wait_until([&] { return queued() >= at_takeover + 4; }));
  b.stop();

  std::vector<std::string> slots;
  std::vector<std::string> qs{"celery"};
  for (auto ds = app.broker().reserve(qs, 1000, 0ms); !ds.empty();
       ds = app.broker().reserve(qs, 1000, 0ms))
    for (auto& d : ds) {
      slots.push_back(
          tq::decode(d.envelope).extra_headers.value("celeriac_beat_slot", std::string("None")));
      app.broker().ack(d);
    }
  EXPECT_GE(slots.size(), 8u);
  expect_distinct(slots);
  auto after =
      run_program({CELERIAC_CLI_BIN, "-b", url, "beat", "--list", "-s", schedule.string()}, 30s);
  EXPECT_NE(after.output.find("active instance: none"), std::string::npos) << after.output;
  auto total = tq::make_beat_store(url)->load()["every-second"].total_runs;
  EXPECT_LE(slots.size(), total);
  EXPECT_GE(slots.size() + 1, total) << "at most the slot of the kill -9 may be lost";
}

TEST(RedisBeat, WorkerWithEmbeddedBeatInTwoProcessesRunsEachSlotOnce) {
  RedisServer redis;
  TempDir dir("celeriac-beat-worker");
  auto start = [&](const std::string& id) {
    return ChildProcess({CELERIAC_BEAT_APP_BIN, "-b", redis.url(), "worker", "-B", "-c", "2", "-n",
                         id + "@test", "--beat-instance", id},
                        dir.path() / (id + ".log"));
  };
  ChildProcess w1 = start("w1");
  ASSERT_TRUE(w1.wait_for_log("w1: active", kLong)) << w1.log();
  ChildProcess w2 = start("w2");
  ASSERT_TRUE(wait_until([&] { return stored_total(redis, "slot-every-second") >= 5; }))
      << w1.log();
  EXPECT_EQ(redis.cli({"GET", "celeriac.beat:lock"}), "w1");
  EXPECT_EQ(w2.log().find("w2: active"), std::string::npos) << "two active beats";
  auto results = [&] { return lines(redis.cli({"KEYS", "celery-task-meta-*"})); };
  ASSERT_TRUE(wait_until([&] { return results().size() >= 5; }));
  w1.stop();
  w2.stop();
  std::vector<std::string> slots;
  for (const auto& key : results()) {
    auto meta = tq::loads(redis.cli({"GET", key}));
    EXPECT_EQ(meta["status"], "SUCCESS") << meta.dump();
    slots.push_back(meta["result"].get<std::string>());
  }
  EXPECT_GE(expect_distinct(slots), 5u);
}

}  // namespace

// `celeriac beat status` (and `beat list`): each entry's next run, last run and
// total runs and the active instance, as a subcommand; `--status` stays.
TEST(RedisBeat, StatusSubcommandShowsEntriesAndTheActiveInstance) {
  TempDir dir("celeriac-beat-status");
  std::string url = "sqlite:///" + (dir.path() / "beat.db").string();
  auto schedule = write_schedule(dir, "tasks.noop", Json::array());
  tq::App app(url, url);
  auto runs = [&] {
    auto state = tq::make_beat_store(url)->load();
    auto it = state.find("every-second");
    return it == state.end() ? 0 : it->second.total_runs;
  };
  {
    auto before = run_program(
        {CELERIAC_CLI_BIN, "-b", url, "beat", "status", "--schedule", schedule.string()}, 30s);
    EXPECT_EQ(before.exit_code, 0) << before.output;
    EXPECT_NE(before.output.find("active instance: none"), std::string::npos) << before.output;
  }
  ChildProcess a = start_cli_beat(url, schedule, "beat-status-a", dir);
  ASSERT_TRUE(a.wait_for_log("beat-status-a: active", kLong)) << a.log();
  ASSERT_TRUE(wait_until([&] { return runs() >= 2; }));
  for (const char* sub : {"status", "list"}) {
    auto r = run_program({CELERIAC_CLI_BIN, "-b", url, "beat", sub, "-s", schedule.string()}, 30s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("active instance: beat-status-a"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("NEXT RUN (UTC)"), std::string::npos) << r.output;
    // The entry's row: name, task, a last and a next run time, and its total.
    std::string row;
    for (auto& l : lines(r.output))
      if (l.rfind("every-second", 0) == 0) row = l;
    ASSERT_FALSE(row.empty()) << r.output;
    EXPECT_NE(row.find("tasks.noop"), std::string::npos) << row;
    EXPECT_EQ(row.find(" - "), std::string::npos) << "a run time is missing: " << row;
    auto total = std::stoull(row.substr(row.find_last_of(' ') + 1));
    EXPECT_GE(total, 2u) << row;
  }
  auto bad = run_program({CELERIAC_CLI_BIN, "-b", url, "beat", "status", "--bogus"}, 30s);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--bogus"), std::string::npos) << bad.output;
  a.stop();
}
