// bench_tq: the celeriac task queue beside real Python Celery 5.2, in one run,
// on one redis-server that this program starts on a free loopback port.
//
//   (a) N tasks with ignore_result, sent (one call each) and drained tasks/s
//   (b) N tasks with results, every result fetched             tasks/s
//   (c) sequential delay().get() round trips                   p50 / p99
//   (d) the SQLite broker (durable, embedded), as (a)          tasks/s
//   (e) resident memory of an idle worker                      MiB
//   (f) worker RSS after 100,000 and after 1,000,000 tasks      MiB
//   drain: N envelopes preloaded by raw LPUSH (untimed), then the worker
//          drains them, without and with results                tasks/s
//          (timed from the first message leaving the list to the last
//          task done, for both workers alike)
//   flow (--flow only): the hot-path cost of flow control — drain of N
//          preloaded no-ops with no limit, with a per-worker rate limit and
//          with a global rate limit set high enough never to bind; and N
//          no-ops sent (publish_many) and drained with and without 20 routes
//
// Both sides run the same no-op task ("tasks.noop" / "tasks.noop_result" of
// tests/tq/python/celeriac_test_tasks.py). Celery runs its solo pool, the
// C++ worker its default threads pool; each client runs beside its worker.
// Celery's side does fewer tasks (it is ~50x slower); rates are comparable.
//
// usage: bench_tq [--quick] [--no-celery] [--drain-only] [--flow]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "bench_common.hpp"
#include "celeriac/redis/connection.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace redis = celeriac::redis;
namespace test = celeriac::tq::test;
using tq::Json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

using namespace celeriac::tq::bench;

namespace {

struct Sizes {
  int ignore = 20000, results = 5000, rtt = 500, sqlite = 20000;
  int py_ignore = 4000, py_results = 1500, py_rtt = 200;
  int drain = 100000, py_drain = 5000;
  int mem_first = 100000, mem_total = 1000000;
};

void progress(const std::string& line) {
  std::cout << "[bench_tq] " << line << std::endl;
}

// Waits until the worker has finished `target` tasks, printing progress.
void drain(tq::Worker& w, std::uint64_t target, const char* what) {
  auto last = SteadyClock::now();
  for (;;) {
    auto c = w.counters();
    std::uint64_t done = c.succeeded + c.failed;
    if (done >= target) return;
    if (SteadyClock::now() - last > 1s) {
      progress(std::string(what) + ": " + std::to_string(done) + "/" + std::to_string(target));
      last = SteadyClock::now();
    }
    std::this_thread::sleep_for(200us);
  }
}

// (a): send `n` ignore_result no-ops one send_task() each (as users write
// it; the Redis broker pipelines them), drain.
double run_ignore_each(tq::App& app, tq::Worker& w, int n, const char* what) {
  std::uint64_t base = w.counters().succeeded;
  tq::CallOptions o;
  o.ignore_result = true;
  auto t0 = SteadyClock::now();
  for (int i = 0; i < n; ++i) app.send_task("tasks.noop", Json::array(), Json::object(), o);
  drain(w, base + static_cast<std::uint64_t>(n), what);
  return n / seconds_since(t0);
}

// (d): send `n` ignore_result no-ops in publish_many batches (one SQLite
// transaction each), drain.
double run_ignore(tq::App& app, tq::Worker& w, int n, const char* what) {
  std::uint64_t base = w.counters().succeeded;
  tq::CallOptions o;
  o.ignore_result = true;
  auto t0 = SteadyClock::now();
  constexpr int kBatch = 500;
  for (int sent = 0; sent < n; sent += kBatch) {
    std::vector<tq::TaskMessage> batch;
    for (int i = sent; i < std::min(n, sent + kBatch); ++i)
      batch.push_back(app.build_message("tasks.noop", Json::array(), Json::object(), o));
    app.publish_many(batch);
  }
  drain(w, base + static_cast<std::uint64_t>(n), what);
  return n / seconds_since(t0);
}

// (b): send `n` no-ops with results (one delay() each), then get() them all.
double run_results(tq::App& app, int n) {
  auto t0 = SteadyClock::now();
  std::vector<tq::AsyncResult<Json>> results;
  results.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) results.push_back(app.send_task("tasks.noop_result"));
  for (auto& r : results) r.get(120s);
  return n / seconds_since(t0);
}

// (c): sequential round trips; returns {p50_ms, p99_ms}.
std::pair<double, double> run_rtt(tq::App& app, int n) {
  app.send_task("tasks.noop_result").get(30s);  // warm up
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    auto t0 = SteadyClock::now();
    app.send_task("tasks.noop_result").get(30s);
    lat.push_back(seconds_since(t0) * 1000);
  }
  std::sort(lat.begin(), lat.end());
  return {lat[lat.size() / 2], lat[std::min(lat.size() - 1, lat.size() * 99 / 100)]};
}

long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// The idle worker for (e): this program re-run as `bench_tq --idle-worker URL`.
int idle_worker(const std::string& url) {
  tq::App app(url, url);
  register_noops(app);
  tq::Worker w(app, worker_options());
  w.start();
  std::cout << "idle worker ready" << std::endl;
  while (w.running()) std::this_thread::sleep_for(200ms);
  return 0;
}

Json run_celery_client(const std::string& url, const std::string& mode, int n) {
  auto script = std::string(CELERIAC_SOURCE_DIR) + "/bench/tq/celery_bench.py";
  auto r = test::run_program({"/usr/bin/python3", script, mode, std::to_string(n)}, 170s,
                             test::celery_env(url));
  if (r.exit_code != 0)
    throw std::runtime_error("celery_bench.py " + mode + " failed:\n" + r.output);
  auto end = r.output.find_last_not_of('\n');
  auto start = r.output.rfind('\n', end);
  return Json::parse(r.output.substr(start == std::string::npos ? 0 : start + 1));
}

// ---- drain ----

// LPUSHes `n` protocol-2 envelopes of `task` (pipelined, untimed) into the
// default queue; returns the id of the last one the worker will take.
std::string preload(const std::string& url, const std::string& task, int n, bool ignore_result) {
  auto c = redis::Connection::connect(url);
  tq::App app(url, url);  // only to build messages
  tq::CallOptions o;
  o.ignore_result = ignore_result;
  std::string last;
  constexpr int kBatch = 1000;
  for (int sent = 0; sent < n; sent += kBatch) {
    redis::Pipeline p;
    for (int i = sent; i < std::min(n, sent + kBatch); ++i) {
      tq::TaskMessage m = app.build_message(task, Json::array(), Json::object(), o);
      if (i == n - 1) last = m.id;
      p.add({"LPUSH", "celery", tq::encode(m)});
    }
    c.execute(p);
  }
  return last;
}

long long redis_int(redis::Connection& c, std::initializer_list<std::string_view> cmd) {
  return c.command(cmd).integer();
}

// Waits (polling every 0.2 ms) for the first message to leave the list;
// returns that moment.
SteadyClock::time_point first_taken(redis::Connection& c, int n) {
  for (;;) {
    if (redis_int(c, {"LLEN", "celery"}) < n) return SteadyClock::now();
    std::this_thread::sleep_for(200us);
  }
}

// Drains `n` preloaded tasks with a worker started by `start`; `done`
// says when all are done. Returns tasks/s.
template <class Start, class Done>
double drain_rate(const std::string& url, const std::string& task, int n, bool ignore_result,
                  Start start, Done done, const char* what) {
  auto c = redis::Connection::connect(url);
  c.command({"FLUSHDB"});
  std::string last = preload(url, task, n, ignore_result);
  progress(std::string(what) + ": " + std::to_string(n) + " messages preloaded");
  auto keep_alive = start();
  auto t0 = first_taken(c, n);
  auto last_print = SteadyClock::now();
  while (!done(c, last)) {
    if (SteadyClock::now() - last_print > 1s) {
      progress(std::string(what) + ": " + std::to_string(redis_int(c, {"LLEN", "celery"})) +
               " left in the list");
      last_print = SteadyClock::now();
    }
    std::this_thread::sleep_for(200us);
  }
  double rate = n / seconds_since(t0);
  progress(std::string(what) + ": " + fmtd("%.0f tasks/s", rate));
  return rate;
}

// Done when the list and unacked are empty and (with results) the last
// task's result exists.
bool queue_done(redis::Connection& c, const std::string& last, bool results) {
  if (redis_int(c, {"LLEN", "celery"}) != 0 || redis_int(c, {"HLEN", "unacked"}) != 0) return false;
  return !results || redis_int(c, {"EXISTS", "celery-task-meta-" + last}) == 1;
}

// (f): RSS of a worker process (the --idle-worker child) after `first` and
// after `total` no-op tasks, fed in preloaded chunks; {after first, after total} in MiB.
std::pair<double, double> memory_growth(const std::string& url, pid_t worker, int first,
                                        int total) {
  auto c = redis::Connection::connect(url);
  double after_first = 0;
  for (int done = 0; done < total;) {
    int chunk = std::min(first, total - done);
    preload(url, "tasks.noop", chunk, true);
    while (!queue_done(c, "", false)) std::this_thread::sleep_for(1ms);
    done += chunk;
    progress("(f) " + std::to_string(done) + " tasks done, worker RSS " +
             fmtd("%.1f MiB", static_cast<double>(rss_kib(worker)) / 1024.0));
    if (done == first) after_first = static_cast<double>(rss_kib(worker)) / 1024.0;
  }
  return {after_first, static_cast<double>(rss_kib(worker)) / 1024.0};
}

struct Row {
  std::string name, unit, target;
  double cpp = 0, py = 0;
  bool higher_is_better = true;
  bool has_py = true;
};

void print_table(const std::vector<Row>& rows) {
  std::printf("\n%-58s %14s %14s %9s  %s\n", "measurement", "celeriac", "Celery 5.2", "ratio",
              "target");
  for (auto& r : rows) {
    std::string py = r.has_py ? fmtd("%.2f", r.py) : "-";
    std::string ratio = "-";
    if (r.has_py && r.py > 0 && r.cpp > 0)
      ratio = fmtd("%.1fx", r.higher_is_better ? r.cpp / r.py : r.py / r.cpp);
    std::printf("%-58s %14.2f %14s %9s  %s\n", (r.name + " (" + r.unit + ")").c_str(), r.cpp,
                py.c_str(), ratio.c_str(), r.target.c_str());
  }
  std::printf("(ratio: how many times better celeriac is)\n");
}

// ---- flow control ----

// A drain of `n` preloaded no-ops by a celeriac worker whose tasks.noop has `options`.
double flow_drain(const std::string& url, int n, const tq::TaskOptions& options, const char* what) {
  return drain_rate(
      url, "tasks.noop", n, true,
      [&] {
        auto app = std::make_shared<tq::App>(url, url);
        app->task(
            "tasks.noop", {}, [] {}, options);
        auto w = std::make_shared<tq::Worker>(*app, worker_options());
        w->start();
        return std::make_pair(app, w);
      },
      [&](redis::Connection& c, const std::string& last) { return queue_done(c, last, false); },
      what);
}

// (a) with `routes` glob patterns before the one that matches tasks.noop.
double flow_routed(const std::string& url, int n, int routes) {
  tq::App app(url, url);
  register_noops(app);
  for (int i = 0; i < routes - 1; ++i) app.route("other" + std::to_string(i) + ".*", "elsewhere");
  if (routes > 0) app.route("tasks.*", "celery");
  tq::Worker w(app, worker_options());
  w.start();
  double rate = run_ignore(app, w, n, routes ? "(flow) routed" : "(flow) unrouted");
  w.stop();
  w.wait(30s);
  return rate;
}

std::vector<Row> flow_rows(const std::string& url, int n) {
  tq::TaskOptions plain, local, global;
  local.rate_limit = "10000000/s";
  global.global_rate_limit = "10000000/s";
  std::vector<Row> rows(5);
  const std::string drained = "drain " + std::to_string(n) + " preloaded";
  rows[0] = {drained + ", no rate limit", "tasks/s", "baseline"};
  rows[1] = {drained + ", per-worker rate limit", "tasks/s", "within 5 %"};
  rows[2] = {drained + ", global rate limit", "tasks/s", "within 20 %"};
  rows[3] = {"send+drain " + std::to_string(n) + ", no routes", "tasks/s", "baseline"};
  rows[4] = {"send+drain " + std::to_string(n) + ", 20 routes", "tasks/s", "within 5 %"};
  rows[0].cpp = flow_drain(url, n, plain, "(flow) no limit");
  rows[1].cpp = flow_drain(url, n, local, "(flow) per-worker limit");
  rows[2].cpp = flow_drain(url, n, global, "(flow) global limit");
  rows[3].cpp = flow_routed(url, n, 0);
  rows[4].cpp = flow_routed(url, n, 20);
  for (auto& r : rows) r.has_py = false;
  auto pct = [](double v, double base) { return fmtd("%+.1f %%", 100.0 * (v / base - 1.0)); };
  rows[1].target += " (" + pct(rows[1].cpp, rows[0].cpp) + ")";
  rows[2].target += " (" + pct(rows[2].cpp, rows[0].cpp) + ")";
  rows[4].target += " (" + pct(rows[4].cpp, rows[3].cpp) + ")";
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--idle-worker") == 0) return idle_worker(argv[2]);
  Sizes n;
  bool celery = true;
  bool drain_only = false;
  bool flow = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      n = Sizes{2000, 500, 100, 2000, 500, 200, 50, 10000, 1000, 10000, 100000};
    } else if (std::strcmp(argv[i], "--no-celery") == 0) {
      celery = false;
    } else if (std::strcmp(argv[i], "--drain-only") == 0) {
      drain_only = true;
    } else if (std::strcmp(argv[i], "--flow") == 0) {
      flow = true;
    } else {
      std::cerr << "usage: bench_tq [--quick] [--no-celery] [--drain-only] [--flow]\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  auto t_start = SteadyClock::now();
  test::RedisServer server;
  const std::string url = server.url();
  progress("redis-server on " + url);
  if (flow) {
    print_table(flow_rows(url, n.drain / 2));
    return 0;
  }
  std::vector<Row> rows(5);
  rows[0] = {"(a) " + std::to_string(n.ignore) + " tasks, ignore_result", "tasks/s", ">= 50000"};
  rows[1] = {"(b) " + std::to_string(n.results) + " tasks, results fetched", "tasks/s", ">= 25000"};
  rows[2] = {"(c) delay().get() round trip p50", "ms", "<= 0.25"};
  rows[3] = {"(c) delay().get() round trip p99", "ms", "<= 1"};
  rows[4] = {"(e) idle worker resident memory", "MiB", "<= 8"};
  rows[2].higher_is_better = rows[3].higher_is_better = rows[4].higher_is_better = false;
  std::vector<Row> mem_rows(2);
  mem_rows[0] = {"(f) worker RSS after " + std::to_string(n.mem_first) + " tasks", "MiB", "-"};
  mem_rows[1] = {"(f) worker RSS after " + std::to_string(n.mem_total) + " tasks", "MiB", "-"};
  for (auto& r : mem_rows) {
    r.has_py = false;
    r.higher_is_better = false;
  }
  Row sqlite_row{"(d) SQLite broker, " + std::to_string(n.sqlite) + " tasks, ignore_result",
                 "tasks/s", ">= 50000"};
  sqlite_row.has_py = false;

  std::vector<Row> drain_rows(2);
  drain_rows[0] = {"drain " + std::to_string(n.drain) + " preloaded, ignore_result", "tasks/s",
                   ">= 50000, >= 40x"};
  drain_rows[1] = {"drain " + std::to_string(n.drain) + " preloaded, with results", "tasks/s",
                   ">= 25000, >= 30x"};
  for (int with_results = 0; with_results < 2; ++with_results) {
    const char* task = with_results ? "tasks.noop_result" : "tasks.noop";
    drain_rows[with_results].cpp = drain_rate(
        url, task, n.drain, !with_results,
        [&] {
          auto app = std::make_shared<tq::App>(url, url);
          register_noops(*app);
          auto w = std::make_shared<tq::Worker>(*app, worker_options());
          w->start();
          return std::make_pair(app, w);
        },
        [&](redis::Connection& c, const std::string& last) {
          return queue_done(c, last, with_results);
        },
        with_results ? "drain celeriac, results" : "drain celeriac, ignore_result");
    if (celery) {
      drain_rows[with_results].py = drain_rate(
          url, task, n.py_drain, !with_results,
          [&] { return std::make_shared<test::CeleryWorker>(url, test::CeleryWorker::Options{}); },
          [&](redis::Connection& c, const std::string& last) {
            return queue_done(c, last, with_results);
          },
          with_results ? "drain Celery, results" : "drain Celery, ignore_result");
    } else {
      drain_rows[with_results].has_py = false;
    }
  }
  auto c = redis::Connection::connect(url);
  c.command({"FLUSHDB"});
  if (drain_only) {
    print_table(drain_rows);
    return 0;
  }

  {
    tq::App app(url, url);
    register_noops(app);
    tq::Worker w(app, worker_options());
    w.start();
    progress("(a) celeriac: " + std::to_string(n.ignore) + " no-op tasks, ignore_result");
    rows[0].cpp = run_ignore_each(app, w, n.ignore, "(a) celeriac");
    progress("(a) celeriac: " + fmtd("%.0f tasks/s", rows[0].cpp));
    progress("(b) celeriac: " + std::to_string(n.results) + " no-op tasks with results");
    rows[1].cpp = run_results(app, n.results);
    progress("(b) celeriac: " + fmtd("%.0f tasks/s", rows[1].cpp));
    progress("(c) celeriac: " + std::to_string(n.rtt) + " sequential round trips");
    std::tie(rows[2].cpp, rows[3].cpp) = run_rtt(app, n.rtt);
    progress("(c) celeriac: p50 " + fmtd("%.3f ms", rows[2].cpp) + ", p99 " +
             fmtd("%.3f ms", rows[3].cpp));
    w.stop();
    w.wait(30s);
  }
  {
    test::TempDir dir("celeriac-bench");
    std::string sqlite_url = "sqlite:///" + (dir.path() / "bench.db").string();
    tq::App app(sqlite_url, sqlite_url);
    register_noops(app);
    tq::Worker w(app, worker_options());
    w.start();
    progress("(d) celeriac SQLite: " + std::to_string(n.sqlite) + " no-op tasks, ignore_result");
    sqlite_row.cpp = run_ignore(app, w, n.sqlite, "(d) celeriac SQLite");
    progress("(d) celeriac SQLite: " + fmtd("%.0f tasks/s", sqlite_row.cpp));
    w.stop();
    w.wait(30s);
  }
  {
    test::TempDir dir("celeriac-bench");
    test::ChildProcess idle({"/proc/self/exe", "--idle-worker", url}, dir.path() / "idle.log");
    if (!idle.wait_for_log("idle worker ready", 30s))
      throw std::runtime_error("idle worker: " + idle.log());
    std::this_thread::sleep_for(2s);
    rows[4].cpp = static_cast<double>(rss_kib(idle.pid())) / 1024.0;
    progress("(e) celeriac idle worker: " + fmtd("%.1f MiB", rows[4].cpp));
    auto [first, total] = memory_growth(url, idle.pid(), n.mem_first, n.mem_total);
    mem_rows[0].cpp = first;
    mem_rows[1].cpp = total;
    mem_rows[1].target = fmtd("<= %.1f (+10 %)", first * 1.1);
  }
  if (celery) {
    test::CeleryWorker py(url, test::CeleryWorker::Options{});
    std::this_thread::sleep_for(2s);
    rows[4].py = static_cast<double>(rss_kib(py.process().pid())) / 1024.0;
    progress("(e) Celery idle worker (solo): " + fmtd("%.1f MiB", rows[4].py));
    progress("(a) Celery: " + std::to_string(n.py_ignore) + " no-op tasks, ignore_result");
    rows[0].py = run_celery_client(url, "ignore", n.py_ignore)["rate"].get<double>();
    progress("(a) Celery: " + fmtd("%.0f tasks/s", rows[0].py));
    progress("(b) Celery: " + std::to_string(n.py_results) + " no-op tasks with results");
    rows[1].py = run_celery_client(url, "results", n.py_results)["rate"].get<double>();
    progress("(b) Celery: " + fmtd("%.0f tasks/s", rows[1].py));
    progress("(c) Celery: " + std::to_string(n.py_rtt) + " sequential round trips");
    auto rtt = run_celery_client(url, "rtt", n.py_rtt);
    rows[2].py = rtt["p50_ms"].get<double>();
    rows[3].py = rtt["p99_ms"].get<double>();
    progress("(c) Celery: p50 " + fmtd("%.3f ms", rows[2].py) + ", p99 " +
             fmtd("%.3f ms", rows[3].py));
    py.stop();
  } else {
    for (auto& r : rows) r.has_py = false;
  }
  rows.insert(rows.begin() + 4, sqlite_row);
  rows.insert(rows.begin(), drain_rows.begin(), drain_rows.end());
  rows.insert(rows.end(), mem_rows.begin(), mem_rows.end());
  print_table(rows);
  std::printf(
      "Celery side: %d / %d / %d tasks (fewer: it is slower; rates compare). Total %.0f s.\n",
      n.py_ignore, n.py_results, n.py_rtt, seconds_since(t_start));
  return 0;
}
