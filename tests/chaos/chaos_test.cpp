// Chaos scenarios: real worker processes (chaos_app) are killed with
// SIGKILL, stopped with SIGSTOP, starved of disk; real redis-servers and
// SQLite files carry the tasks. Each scenario prints what it did and what
// it measured; the only time limits are generous deadlines.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq.hpp"
#include "process.hpp"
#include "redis_server.hpp"

namespace tq = celeriac::tq;
using namespace std::chrono_literals;
using tq::test::ChildProcess;
using tq::test::RedisServer;
using tq::test::TempDir;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Executions per task number, from the journal the tasks append to.
std::map<int, int> journal_counts(const std::filesystem::path& path) {
  std::map<int, int> counts;
  std::ifstream in(path);
  int i;
  while (in >> i) ++counts[i];
  return counts;
}

bool all_present(const std::map<int, int>& counts, int n) {
  for (int i = 0; i < n; ++i)
    if (!counts.count(i)) return false;
  return true;
}

// Polls `done` every 100 ms until it holds or `deadline` passes.
template <class F>
bool wait_until(F done, std::chrono::seconds deadline) {
  auto end = SteadyClock::now() + deadline;
  while (!done()) {
    if (SteadyClock::now() > end) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

double seconds_since(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

struct Scene {
  TempDir dir{"celeriac-chaos"};
  std::filesystem::path journal = dir.path() / "journal.txt";
  int workers_started = 0;

  std::filesystem::path pids = dir.path() / "pids.txt";
  std::vector<std::string> run_as;  // a prefix for the worker's argv (setpriv ...)

  ChildProcess worker(const std::string& url, const std::string& pool, int concurrency,
                      std::vector<std::string> extra = {"--acks-late"}) {
    std::vector<std::string> argv = {CHAOS_APP,
                                     "--broker",
                                     url,
                                     "worker",
                                     "-P",
                                     pool,
                                     "-c",
                                     std::to_string(concurrency),
                                     "--prefetch-multiplier",
                                     "1",
                                     "-n",
                                     "chaos" + std::to_string(++workers_started) + "@127.0.0.1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.begin(), run_as.begin(), run_as.end());
    auto log = dir.path() / ("worker" + std::to_string(workers_started) + ".log");
    ChildProcess w(argv, log, {{"CHAOS_JOURNAL", journal.string()}, {"CHAOS_PIDS", pids.string()}});
    if (!w.wait_for_log(" ready: ", 60s)) {
      w.dump_log("worker");
      ADD_FAILURE() << "worker did not start";
    }
    return w;
  }

  std::vector<std::string> publish_marks(tq::App& app, int n, int ms) {
    tq::CallOptions o;
    std::vector<tq::TaskMessage> msgs;
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      msgs.push_back(
          app.build_message("chaos.mark", tq::Json::array({i, ms}), tq::Json::object(), o));
      ids.push_back(msgs.back().id);
    }
    for (std::size_t i = 0; i < msgs.size(); i += 100)
      app.publish_many(std::vector<tq::TaskMessage>(msgs.begin() + i,
                                                    msgs.begin() + std::min(msgs.size(), i + 100)));
    return ids;
  }
};

// kill -9 of a worker mid-stream with acks_late: every task completes, the
// ones in flight at the kill at least once, the others exactly once.
void kill_worker_mid_stream(const std::string& url, const std::string& pool) {
  constexpr int kTasks = 400, kConcurrency = 4;
  Scene s;
  tq::App producer(url, url);
  s.publish_marks(producer, kTasks, 10);
  ChildProcess first = s.worker(url, pool, kConcurrency);
  ASSERT_TRUE(wait_until([&] { return journal_counts(s.journal).size() >= kTasks / 4; }, 120s));
  first.kill_hard();
  auto killed = SteadyClock::now();
  std::size_t done_at_kill = journal_counts(s.journal).size();
  ChildProcess second = s.worker(url, pool, kConcurrency);
  bool complete = wait_until([&] { return all_present(journal_counts(s.journal), kTasks); }, 180s);
  double recovery = seconds_since(killed);
  auto counts = journal_counts(s.journal);
  int dups = 0;
  for (auto& [i, n] : counts) dups += n - 1;
  std::printf(
      "[chaos] %s pool=%s: %d tasks, worker SIGKILLed after %zu done; %s %.1f s after "
      "the kill; %d ran twice (in flight at the kill)\n",
      url.substr(0, url.find(':')).c_str(), pool.c_str(), kTasks, done_at_kill,
      complete ? "all done" : "STILL MISSING TASKS", recovery, dups);
  if (!complete) second.dump_log("second worker");
  EXPECT_TRUE(complete) << counts.size() << " of " << kTasks << " tasks done";
  // Only the deliveries held by the killed worker may run twice.
  EXPECT_LE(dups, 2 * kConcurrency * 2);
  second.stop();
}

}  // namespace

TEST(Chaos, KillWorkerMidStreamRedisThreads) {
  RedisServer server;
  kill_worker_mid_stream(server.url() + "?visibility_timeout=5", "threads");
}

TEST(Chaos, KillWorkerMidStreamRedisProcesses) {
  RedisServer server;
  kill_worker_mid_stream(server.url() + "?visibility_timeout=5", "processes");
}

// The SQLite broker too: a running worker restores the dead one's
// reservations once they are older than the visibility timeout.
TEST(Chaos, KillWorkerMidStreamSqlite) {
  TempDir dir("celeriac-chaos-db");
  kill_worker_mid_stream(
      "sqlite:///" + (dir.path() / "broker.db").string() + "?visibility_timeout=5", "threads");
}

// A worker stopped (SIGSTOP) past the visibility timeout: another worker
// takes its messages; when the stopped one resumes, its late acks and
// result stores corrupt nothing (every result stays SUCCESS with its value).
TEST(Chaos, StoppedWorkerPastVisibilityTimeoutCorruptsNothingRedis) {
  RedisServer server;
  std::string url = server.url() + "?visibility_timeout=3";
  constexpr int kTasks = 40;
  Scene s;
  tq::App producer(url, url);
  auto ids = s.publish_marks(producer, kTasks, 300);
  ChildProcess stopped = s.worker(url, "threads", 2);
  ASSERT_TRUE(wait_until([&] { return !journal_counts(s.journal).empty(); }, 60s));
  ::kill(stopped.pid(), SIGSTOP);
  auto t_stop = SteadyClock::now();
  std::size_t done_at_stop = journal_counts(s.journal).size();
  ChildProcess other = s.worker(url, "threads", 2);
  bool complete = wait_until([&] { return all_present(journal_counts(s.journal), kTasks); }, 180s);
  double taken_over = seconds_since(t_stop);
  ::kill(stopped.pid(), SIGCONT);
  int resumed_status = stopped.stop(30s);
  other.stop();
  auto counts = journal_counts(s.journal);
  int dups = 0;
  for (auto& [i, n] : counts) dups += n - 1;
  int success = 0;
  for (int i = 0; i < kTasks; ++i) {
    auto meta = producer.backend().get(ids[i]);
    if (meta && meta->status == tq::State::Success && meta->result == i) ++success;
  }
  std::printf(
      "[chaos] redis SIGSTOP: %d tasks, stopped after %zu done; the other worker finished "
      "all %.1f s later; %d ran twice; %d/%d results SUCCESS with the right value after "
      "SIGCONT; resumed worker exit status %d\n",
      kTasks, done_at_stop, taken_over, dups, success, kTasks, resumed_status);
  EXPECT_TRUE(complete);
  EXPECT_EQ(success, kTasks);
  EXPECT_EQ(producer.broker().queue_length("celery"), 0u);
}

// The producer killed in the middle of a batch publish: each task is sent
// once or not at all (none half-written: every message decodes and runs).
void producer_killed(const std::string& url) {
  Scene s;
  ChildProcess producer({CHAOS_APP, "produce", url, "20000", "50"}, s.dir.path() / "producer.log");
  ASSERT_TRUE(producer.wait_for_log("published 1000\n", 120s));
  producer.kill_hard();
  std::string out = producer.log();
  int confirmed = 0;
  for (std::size_t at = out.find("published "); at != std::string::npos;
       at = out.find("published ", at + 1))
    confirmed = std::max(confirmed, std::atoi(out.c_str() + at + 10));
  tq::App app(url, url);
  ChildProcess w = s.worker(url, "threads", 4, {});
  // Drained: every confirmed task ran and nothing is left queued (a batch
  // the server had received when the producer died may still land).
  bool drained = wait_until(
      [&] {
        return all_present(journal_counts(s.journal), confirmed) &&
               app.broker().queue_length("celery") == 0;
      },
      240s);
  w.stop();  // warm shutdown: tasks already reserved finish first
  auto counts = journal_counts(s.journal);
  int dups = 0;
  for (auto& [i, n] : counts) dups += n - 1;
  int beyond = counts.empty() ? 0 : std::max(0, counts.rbegin()->first + 1 - confirmed);
  std::printf(
      "[chaos] %s producer SIGKILLed mid-batch: %d confirmed, %zu ran (%d of the unconfirmed "
      "batch), %d twice, %zu dead letters\n",
      url.substr(0, url.find(':')).c_str(), confirmed, counts.size(), beyond, dups,
      app.broker().dead_letters(1000).size());
  EXPECT_TRUE(drained);
  EXPECT_TRUE(all_present(counts, confirmed)) << "a confirmed publish was lost";
  EXPECT_EQ(dups, 0);
  // Only the batch in flight at the kill (50 tasks) may have landed unconfirmed.
  EXPECT_LE(beyond, 50);
  EXPECT_TRUE(app.broker().dead_letters(1000).empty()) << "a half-written message";
}

TEST(Chaos, ProducerKilledMidBatchRedis) {
  RedisServer server;
  producer_killed(server.url());
}

TEST(Chaos, ProducerKilledMidBatchSqlite) {
  TempDir dir("celeriac-chaos-db");
  producer_killed("sqlite:///" + (dir.path() / "broker.db").string());
}

// The SQLite file cannot grow (RLIMIT_FSIZE on the producer, as a full
// disk): the producer gets a clear error, the file stays intact
// (PRAGMA integrity_check) and a worker still serves what was committed.
TEST(Chaos, SqliteFullGivesAClearErrorAndCorruptsNothing) {
  Scene s;
  auto db = s.dir.path() / "broker.db";
  std::string url = "sqlite:///" + db.string();
  {
    tq::App app(url, url);  // creates the schema without a limit
    app.broker().queue_length("celery");
  }
  std::string cmd = std::string("trap '' XFSZ; ulimit -f 512; exec ") + CHAOS_APP + " produce " +
                    url + " 1000000 100";
  auto r = tq::test::run_program({"bash", "-c", cmd}, 240s);
  auto err_at = r.output.find("error: ");
  std::string error = err_at == std::string::npos
                          ? ""
                          : r.output.substr(err_at, r.output.find('\n', err_at) - err_at);
  int confirmed = 0;
  for (std::size_t at = r.output.find("published "); at != std::string::npos;
       at = r.output.find("published ", at + 1))
    confirmed = std::max(confirmed, std::atoi(r.output.c_str() + at + 10));
  auto check = tq::test::run_program({"sqlite3", db.string(), "PRAGMA integrity_check"}, 60s);
  std::printf(
      "[chaos] sqlite full at %ju bytes after %d tasks: producer exit %d, '%s'; "
      "integrity_check: %s",
      static_cast<std::uintmax_t>(std::filesystem::file_size(db)), confirmed, r.exit_code,
      error.c_str(), check.output.c_str());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(error.find("SQLite '" + db.string() + "'"), std::string::npos)
      << "the error should name the store: " << error;
  EXPECT_EQ(check.output, "ok\n");
  ChildProcess w = s.worker(url, "threads", 4, {});
  bool all = wait_until([&] { return all_present(journal_counts(s.journal), confirmed); }, 240s);
  w.stop();
  EXPECT_TRUE(all) << "a committed task was lost";
  EXPECT_GT(confirmed, 0);
}

// How to run a program so that file modes bind it: as root (CI), under
// nobody's uid through setpriv; as anyone else, directly.
std::vector<std::string> unprivileged() {
  if (::geteuid() != 0) return {};
  return {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
}

// The SQLite file turns read-only (mode 0444, for a process that is not
// root): a producer gets a clear error naming the store, results stay
// readable, a worker keeps running and says why it cannot reserve, the
// file stays intact (PRAGMA integrity_check) and, once writable again,
// every task published before runs exactly once.
TEST(Chaos, SqliteReadOnlyGivesAClearErrorAndCorruptsNothing) {
  constexpr int kDone = 10, kWaiting = 10;
  Scene s;
  auto db = s.dir.path() / "broker.db";
  std::string url = "sqlite:///" + db.string();
  namespace fs = std::filesystem;
  std::vector<std::string> ids;
  {
    tq::App app(url, url);
    ids = s.publish_marks(app, kDone, 0);
    ChildProcess w = s.worker(url, "threads", 2, {});
    ASSERT_TRUE(wait_until([&] { return all_present(journal_counts(s.journal), kDone); }, 120s));
    ASSERT_EQ(app.async_result<int>(ids[3]).get(60s), 3);
    w.stop();
    tq::CallOptions o;
    for (int i = kDone; i < kDone + kWaiting; ++i)
      app.send_task("chaos.mark", tq::Json::array({i, 0}), tq::Json::object(), o);
  }  // the last connection closes: the WAL is checkpointed into the file
  // The directory stays writable (SQLite keeps its -wal/-shm there); the
  // database file does not.
  fs::permissions(s.dir.path(), fs::perms::all);
  fs::permissions(s.journal, fs::perms::all);
  fs::permissions(db, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  s.run_as = unprivileged();

  auto as_reader = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), s.run_as.begin(), s.run_as.end());
    return tq::test::run_program(argv, 120s);
  };
  auto produced = as_reader({CHAOS_APP, "produce", url, "5", "5"});
  auto read = as_reader({CHAOS_APP, "--broker", url, "result", ids[7], "--timeout", "30"});
  auto status = as_reader({CHAOS_APP, "--broker", url, "status"});
  ChildProcess reader = s.worker(url, "threads", 2, {});
  bool says_why = reader.wait_for_log("attempt to write a readonly database", 60s);
  bool still_running = reader.running();
  int stopped = reader.stop();
  auto check = tq::test::run_program({"sqlite3", db.string(), "PRAGMA integrity_check"}, 60s);
  std::printf(
      "[chaos] sqlite read-only: producer exit %d: %s  result read: exit %d, '%s'; a worker "
      "%s; integrity_check: %s",
      produced.exit_code, produced.output.c_str(), read.exit_code,
      read.output.substr(0, read.output.find('\n')).c_str(),
      says_why && still_running ? "kept running, logging why it cannot reserve" : "FAILED",
      check.output.c_str());
  EXPECT_EQ(produced.exit_code, 1) << produced.output;
  EXPECT_NE(produced.output.find("SQLite '" + db.string() + "'"), std::string::npos)
      << "the error should name the store: " << produced.output;
  EXPECT_NE(produced.output.find("readonly"), std::string::npos) << produced.output;
  EXPECT_EQ(read.exit_code, 0) << read.output;
  EXPECT_EQ(read.output, "7\n");
  EXPECT_NE(status.output.find(std::to_string(kWaiting) + " message(s) waiting"), std::string::npos)
      << status.output;
  EXPECT_TRUE(says_why) << reader.log();
  EXPECT_TRUE(still_running) << reader.log();
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << reader.log();
  EXPECT_EQ(journal_counts(s.journal).size(), static_cast<std::size_t>(kDone))
      << "no task may run on a read-only store";
  EXPECT_EQ(check.output, "ok\n");

  // Writable again: the waiting tasks run, each once.
  for (auto& f : fs::directory_iterator(s.dir.path()))
    fs::permissions(f.path(), fs::perms::owner_read | fs::perms::owner_write |
                                  fs::perms::group_read | fs::perms::others_read);
  s.run_as.clear();
  ChildProcess w = s.worker(url, "threads", 2, {});
  bool all =
      wait_until([&] { return all_present(journal_counts(s.journal), kDone + kWaiting); }, 120s);
  w.stop();
  auto counts = journal_counts(s.journal);
  EXPECT_TRUE(all) << counts.size() << " of " << kDone + kWaiting << " tasks done";
  for (auto& [i, n] : counts) EXPECT_EQ(n, 1) << "task " << i;
}

// 1,000 tasks in the processes pool each send a task of their own from the
// child process: every sent task arrives exactly once.
void tasks_sending_tasks(const std::string& url) {
  constexpr int kTasks = 1000;
  Scene s;
  tq::App app(url, url);
  tq::CallOptions o;
  o.ignore_result = true;
  std::vector<tq::TaskMessage> msgs;
  for (int i = 0; i < kTasks; ++i)
    msgs.push_back(app.build_message("chaos.spawn", tq::Json::array({i}), tq::Json::object(), o));
  app.publish_many(msgs);
  auto start = SteadyClock::now();
  ChildProcess w = s.worker(url, "processes", 2, {});
  bool all = wait_until([&] { return all_present(journal_counts(s.journal), kTasks); }, 240s);
  double took = seconds_since(start);
  // Let stragglers (a duplicate) show up before counting: the queue drains.
  wait_until([&] { return app.broker().queue_length("celery") == 0; }, 60s);
  w.stop();
  auto counts = journal_counts(s.journal);
  int dups = 0;
  for (auto& [i, n] : counts) dups += n - 1;
  std::printf(
      "[chaos] %s processes pool: %d tasks sent %zu tasks from children in %.1f s, %d twice\n",
      url.substr(0, url.find(':')).c_str(), kTasks, counts.size(), took, dups);
  if (!all) w.dump_log("worker");
  EXPECT_TRUE(all);
  EXPECT_EQ(dups, 0);
}

TEST(Chaos, ProcessesPoolTasksSendTasksRedis) {
  RedisServer server;
  tasks_sending_tasks(server.url());
}

TEST(Chaos, ProcessesPoolTasksSendTasksSqlite) {
  TempDir dir("celeriac-chaos-db");
  tasks_sending_tasks("sqlite:///" + (dir.path() / "broker.db").string());
}

// 1,000 tasks in the processes pool each touch 40 MiB with
// --max-memory-per-child at 32 MiB: every task completes exactly once and
// every child is replaced after its one task (a distinct pid per task).
TEST(Chaos, MaxMemoryPerChildReplacesChildrenOverTheLimit) {
  constexpr int kTasks = 1000, kMib = 40, kLimitKib = 32 * 1024;
  Scene s;
  TempDir db_dir("celeriac-chaos-db");
  std::string url = "sqlite:///" + (db_dir.path() / "broker.db").string();
  tq::App app(url, url);
  tq::CallOptions o;
  o.ignore_result = true;
  std::vector<tq::TaskMessage> msgs;
  for (int i = 0; i < kTasks; ++i)
    msgs.push_back(
        app.build_message("chaos.hog", tq::Json::array({i, kMib}), tq::Json::object(), o));
  app.publish_many(msgs);
  auto start = SteadyClock::now();
  ChildProcess w =
      s.worker(url, "processes", 2, {"--max-memory-per-child", std::to_string(kLimitKib)});
  bool all = wait_until([&] { return all_present(journal_counts(s.journal), kTasks); }, 280s);
  double took = seconds_since(start);
  w.stop();
  auto counts = journal_counts(s.journal);
  int dups = 0;
  for (auto& [i, n] : counts) dups += n - 1;
  auto children = journal_counts(s.pids);
  std::printf(
      "[chaos] processes pool, --max-memory-per-child %d KiB: %d tasks touching %d MiB each "
      "done in %.1f s by %zu distinct children (each replaced after its task), %d twice\n",
      kLimitKib, kTasks, kMib, took, children.size(), dups);
  if (!all) w.dump_log("worker");
  EXPECT_TRUE(all) << counts.size() << " of " << kTasks << " tasks done";
  EXPECT_EQ(dups, 0);
  EXPECT_EQ(children.size(), static_cast<std::size_t>(kTasks))
      << "every child went over the limit: none may run a second task";
}
