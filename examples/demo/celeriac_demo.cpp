// The README's demo: a task queue on the embedded SQLite broker (a fresh
// temporary database file, no server), a worker with a thread pool in this
// program, and a producer sending 100,000 tasks of three kinds:
//   tiny       add(x, y), run on the worker's threads;
//   CPU-bound  fib(n), computed in a child of a celeriac::mp::ProcessPool;
//   I/O-bound  fetch(ms), a coroutine task (aio::Task) awaiting a
//              (simulated) network reply.
// It shows a live progress line, then throughput and latency percentiles,
// and how to run the same against Redis.
//
//   celeriac_demo [--tasks N] [--broker URL] [--concurrency C]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/mp/fork_server.hpp"
#include "celeriac/mp/process_pool.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"

namespace tq = celeriac::tq;
namespace aio = celeriac::aio;
using SteadyClock = std::chrono::steady_clock;

namespace {

struct Settings {
  std::size_t tasks = 100'000;
  std::string broker;  // "" = a fresh temporary SQLite file
  int concurrency = 16;
  std::size_t window = 1000;  // tasks in flight at most (sent, not finished)
};

// CPU-bound work: runs in a child process (a plain function, as the process
// pool requires).
long long fib(int n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

// Microseconds since an arbitrary steady epoch: sent in the task arguments so
// the task can measure its own queueing + run latency.
long long now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             SteadyClock::now().time_since_epoch())
      .count();
}

// Latencies and completions, filled by the tasks.
class Stats {
 public:
  explicit Stats(std::size_t expected) { latencies_.reserve(expected); }
  void done(long long sent_us) {
    long long l = now_us() - sent_us;
    {
      std::lock_guard lock(mu_);
      latencies_.push_back(l);
    }
    ++completed_;
  }
  std::size_t completed() const { return completed_.load(); }
  std::vector<long long> latencies() {
    std::lock_guard lock(mu_);
    return latencies_;
  }

 private:
  std::mutex mu_;
  std::vector<long long> latencies_;
  std::atomic<std::size_t> completed_{0};
};

// The process pool the CPU-bound task hands its work to.
struct Services {
  celeriac::mp::ProcessPool cpu{2};
};

void register_tasks(tq::App& app, Services& services, Stats& stats) {
  app.task("demo.add", {"x", "y", "sent"}, [&stats](int x, int y, long long sent) {
    stats.done(sent);
    return x + y;
  });
  app.task("demo.fib", {"n", "sent"}, [&services, &stats](int n, long long sent) {
    long long r = services.cpu.submit(&fib, n).result();
    stats.done(sent);
    return r;
  });
  // A coroutine task: the worker runs it on an event loop.
  app.task("demo.fetch", {"ms", "sent"}, [&stats](int ms, long long sent) -> aio::Task<int> {
    co_await aio::sleep(std::chrono::milliseconds(ms));  // the simulated reply
    stats.done(sent);
    co_return ms;
  });
}

// One message per task: 90% add, 5% fib, 5% fetch, interleaved.
tq::TaskMessage make_message(tq::App& app, std::size_t i) {
  long long sent = now_us();
  tq::CallOptions o;
  o.ignore_result = true;  // the bulk is fire-and-forget, as benchmark (a)
  switch (i % 20) {
    case 0:
      return app.build_message("demo.fib", tq::Json::array({18 + static_cast<int>(i % 5), sent}),
                               tq::Json::object(), o);
    case 10:
      return app.build_message("demo.fetch", tq::Json::array({2, sent}), tq::Json::object(), o);
    default:
      return app.build_message("demo.add", tq::Json::array({static_cast<int>(i), 1, sent}),
                               tq::Json::object(), o);
  }
}

// Sends in batches, keeping at most `window` tasks in flight, as a service
// under steady load does (a flood would measure the backlog, not the queue).
void produce(tq::App& app, std::size_t total, std::size_t window, const Stats& stats,
             std::atomic<std::size_t>& sent) {
  const std::size_t kBatch = std::max<std::size_t>(1, std::min<std::size_t>(500, window / 2));
  std::vector<tq::TaskMessage> batch;
  for (std::size_t i = 0; i < total;) {
    while (i - stats.completed() + kBatch > window)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    batch.clear();
    for (std::size_t k = 0; k < kBatch && i < total; ++k, ++i)
      batch.push_back(make_message(app, i));
    app.publish_many(batch);
    sent += batch.size();
  }
}

void print_progress(std::size_t sent, std::size_t done, std::size_t total, double seconds) {
  std::printf("\r  sent %7zu / %zu   done %7zu / %zu   %6.1f s   %8.0f tasks/s ", sent, total, done,
              total, seconds, seconds > 0 ? static_cast<double>(done) / seconds : 0.0);
  std::fflush(stdout);
}

long long percentile(const std::vector<long long>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
  return sorted[idx];
}

void print_summary(std::vector<long long> latencies, std::size_t total, double seconds) {
  std::sort(latencies.begin(), latencies.end());
  std::printf("\n\n  %zu tasks in %.2f s: %.0f tasks/s\n", total, seconds,
              static_cast<double>(total) / seconds);
  std::printf("  latency (sent -> finished), ms:  p50 %.2f   p90 %.2f   p99 %.2f   max %.2f\n",
              static_cast<double>(percentile(latencies, 50)) / 1000.0,
              static_cast<double>(percentile(latencies, 90)) / 1000.0,
              static_cast<double>(percentile(latencies, 99)) / 1000.0,
              static_cast<double>(latencies.empty() ? 0 : latencies.back()) / 1000.0);
}

// A few calls whose results are stored and fetched, as an app would.
void show_results(tq::App& app) {
  tq::CallOptions keep;
  keep.ignore_result = false;
  auto add = app.send_task("demo.add", tq::Json::array({2, 3, now_us()}), tq::Json::object(), keep);
  auto fib = app.send_task("demo.fib", tq::Json::array({25, now_us()}), tq::Json::object(), keep);
  auto io = app.send_task("demo.fetch", tq::Json::array({5, now_us()}), tq::Json::object(), keep);
  std::printf(
      "\n  results: add(2, 3) = %s,  fib(25) = %s (in a child process),  fetch(5 ms) = %s (a "
      "coroutine)\n",
      tq::dumps(add.get(std::chrono::seconds(30))).c_str(),
      tq::dumps(fib.get(std::chrono::seconds(30))).c_str(),
      tq::dumps(io.get(std::chrono::seconds(30))).c_str());
}

void print_redis_hint(const std::string& program) {
  std::printf(
      "\n  The same against Redis (Celery's broker; Python Celery workers and clients can share "
      "it):\n"
      "    redis-server --port 6379 &\n"
      "    %s --broker redis://127.0.0.1:6379/0\n",
      program.c_str());
}

int run(const Settings& s, const std::string& program) {
  std::filesystem::path dir;
  std::string url = s.broker;
  if (url.empty()) {
    dir = std::filesystem::temp_directory_path() / ("celeriac-demo-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    url = "sqlite:///" + (dir / "demo.db").string();
  }
  int code = 0;
  {
    Services services;
    Stats stats(s.tasks);
    tq::App app(url, "");
    register_tasks(app, services, stats);
    tq::WorkerOptions wo;
    wo.concurrency = s.concurrency;
    wo.hostname = "celery@demo";
    wo.poll_interval = std::chrono::milliseconds(20);
    tq::Worker worker(app, wo);
    std::printf(
        "celeriac demo: %zu tasks (90%% add, 5%% fib in a process pool, 5%% coroutine I/O)\n",
        s.tasks);
    std::printf(
        "  broker and results: %s\n  worker: threads pool, concurrency %d; at most %zu tasks in "
        "flight\n\n",
        url.c_str(), s.concurrency, s.window);
    worker.start();
    std::atomic<std::size_t> sent{0};
    auto t0 = SteadyClock::now();
    std::exception_ptr producer_error;
    std::thread producer([&] {
      try {
        produce(app, s.tasks, s.window, stats, sent);
      } catch (...) {
        producer_error = std::current_exception();
      }
    });
    auto elapsed = [&] { return std::chrono::duration<double>(SteadyClock::now() - t0).count(); };
    while (stats.completed() < s.tasks && !(sent.load() < s.tasks && producer_error)) {
      print_progress(sent.load(), stats.completed(), s.tasks, elapsed());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    double seconds = elapsed();
    producer.join();
    if (producer_error) std::rethrow_exception(producer_error);
    print_progress(sent.load(), stats.completed(), s.tasks, seconds);
    print_summary(stats.latencies(), s.tasks, seconds);
    show_results(app);
    worker.stop();
    if (!worker.wait(std::chrono::seconds(30))) {
      std::fprintf(stderr, "worker did not stop\n");
      code = 1;
    }
  }
  if (!dir.empty()) std::filesystem::remove_all(dir);
  if (code == 0)
    print_redis_hint(program);  // the demo's ctest looks for it: printed only on success
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // The fork server starts first, while this program has one thread.
  celeriac::mp::init();
  Settings s;
  CLI::App cli{
      "celeriac demo: 100,000 tasks through the embedded SQLite broker and an in-process worker"};
  cli.add_option("-n,--tasks", s.tasks, "number of tasks")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}));
  cli.add_option("-b,--broker", s.broker, "broker URL (default: a fresh temporary SQLite file)");
  cli.add_option("-c,--concurrency", s.concurrency, "worker threads")->check(CLI::Range(1, 1024));
  cli.add_option("-w,--window", s.window, "most tasks in flight (sent, not finished)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}));
  CLI11_PARSE(cli, argc, argv);
  spdlog::set_level(spdlog::level::warn);
  try {
    return run(s, argv[0]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nceleriac demo failed: %s\n", e.what());
    return 1;
  }
}
