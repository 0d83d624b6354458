// bench_monitor: can the dashboard keep up with 20,000 events/s (100 busy
// workers' worth) on a redis-server it starts itself, with a page open (an
// SSE reader)? Prints, every second, events published / applied, the
// backlog and the dashboard's RSS; then the same stream through Celery's
// `celery events --dump` as the peer.
//
//   bench_monitor [events_per_second=20000] [seconds=20]
#include <httplib.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/control.hpp"
#include "celeriac/tq/redis/pool.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::tq::redis;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

// One task.multi list of `n` events: received/started/succeeded of n/3 tasks
// spread over 100 workers, as a busy fleet sends them.
std::string batch(long& seq, int n) {
  tq::OrderedJson list = tq::OrderedJson::array();
  double now = duration<double>(system_clock::now().time_since_epoch()).count();
  for (int i = 0; i < n; i += 3) {
    std::string id = "bench-" + std::to_string(seq++);
    std::string host = "celery@bench-" + std::to_string(seq % 100);
    const char* types[] = {"task-received", "task-started", "task-succeeded"};
    for (const char* t : types) {
      tq::OrderedJson e = {{"type", t},        {"uuid", id},   {"hostname", host},
                           {"timestamp", now}, {"clock", seq}, {"pid", 1}};
      if (std::string(t) == "task-received") {
        e["name"] = "bench.task";
        e["args"] = "(1, 2)";
        e["kwargs"] = "{}";
      }
      if (std::string(t) == "task-succeeded") {
        e["result"] = "3";
        e["runtime"] = 0.001;
      }
      list.push_back(std::move(e));
    }
  }
  return r::make_envelope(list, {{"hostname", "bench"}}, "celeryev", "task.multi", 1);
}

std::size_t count_lines(const std::filesystem::path& p, const std::string& needle) {
  std::ifstream f(p);
  std::string line;
  std::size_t n = 0;
  while (std::getline(f, line))
    if (line.find(needle) != std::string::npos) ++n;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  const long rate = argc > 1 ? std::stol(argv[1]) : 20000;
  const int seconds = argc > 2 ? std::stoi(argv[2]) : 20;
  constexpr int kPerBatch = 201;  // 67 tasks x 3 events
  tq::test::RedisServer redis;
  tq::App app(redis.url(), redis.url());
  tq::test::TempDir dir("celeriac-bench-monitor");
  tq::DashboardOptions d;
  d.port = 0;
  d.history_path = (dir.path() / "history.db").string();
  d.max_tasks = 10000;
  tq::Dashboard dash(app, d);
  dash.start();

  // the page is open: an SSE reader
  std::atomic<bool> done{false};
  std::atomic<long> sse_bytes{0};
  std::thread page([&] {
    httplib::Client c("127.0.0.1", dash.port());
    c.set_read_timeout(5, 0);
    c.Get("/api/stream", [&](const char*, std::size_t n) {
      sse_bytes += static_cast<long>(n);
      return !done.load();
    });
  });
  // the peer: Celery's own event consumer
  tq::test::ChildProcess celery_dump(
      {"/usr/bin/python3", "-m", "celery", "-b", redis.url(), "events", "--dump"},
      dir.path() / "celery-dump.log", tq::test::celery_env(redis.url()), tq::test::python_dir());
  std::this_thread::sleep_for(3s);  // both subscribed (no signal to wait on from `celery events`)

  r::ConnectionPool pool(r::to_redis_url(tq::Url::parse(redis.url())), {}, 5s);
  auto conn = pool.acquire();
  std::string channel = r::event_channel(0, "task.multi");
  long seq = 0, published = 0;
  long max_backlog = 0, max_rss = 0;
  auto start = steady_clock::now();
  std::printf("rate %ld events/s for %d s (batches of %d)\n", rate, seconds, kPerBatch);
  for (int s = 0; s < seconds; ++s) {
    auto second_start = start + std::chrono::seconds(s);
    long target = rate * (s + 1);
    while (published < target) {
      auto due = second_start +
                 duration_cast<nanoseconds>(duration<double>(
                     static_cast<double>(published - rate * s) / static_cast<double>(rate)));
      std::this_thread::sleep_until(due);
      conn->command({"PUBLISH", channel, batch(seq, kPerBatch)});
      published += kPerBatch;
    }
    long seen = static_cast<long>(dash.events_seen());
    max_backlog = std::max(max_backlog, published - seen);
    max_rss = std::max(max_rss, rss_kib());
    std::printf("t=%2ds published=%ld applied=%ld backlog=%ld rss=%ld MiB\n", s + 1, published,
                seen, published - seen, rss_kib() / 1024);
    std::fflush(stdout);
  }
  double elapsed = duration<double>(steady_clock::now() - start).count();
  auto drain_start = steady_clock::now();
  while (static_cast<long>(dash.events_seen()) < published &&
         steady_clock::now() - drain_start < 30s)
    std::this_thread::sleep_for(50ms);
  double drain = duration<double>(steady_clock::now() - drain_start).count();
  std::printf(
      "celeriac dashboard: %ld events in %.1f s (%.0f/s offered), all applied %.2f s after the "
      "last; "
      "max backlog %ld, max RSS %ld MiB, malformed %llu, SSE bytes %ld\n",
      published, elapsed, static_cast<double>(published) / elapsed, drain, max_backlog,
      max_rss / 1024, static_cast<unsigned long long>(dash.malformed_events()), sse_bytes.load());
  std::this_thread::sleep_for(5s);  // let `celery events --dump` catch up what it can
  std::size_t py = count_lines(celery_dump.log_path(), "task ");
  std::printf(
      "celery events --dump (peer): printed %zu of %ld events within 5 s of the end (%.0f/s)\n", py,
      published, static_cast<double>(py) / (elapsed + 5));
  celery_dump.stop(3000ms);
  done = true;
  dash.stop();
  page.join();
  return 0;
}
