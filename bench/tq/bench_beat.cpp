// bench_beat: beat at scale.
//
//   (a) memory: bytes per entry of 100,000 entries (mixed intervals and
//       crontabs) — the entry definitions, and beat's scheduling state on top
//   (b) CPU per tick with 100,000 entries: idle ticks, and ticks that send
//       (virtual clock, memory:// broker and store)
//   (c) send lateness, p50/p99, with 1,000 entries due in the same second
//       among 100,000 (real clock, a redis-server this program starts; the
//       time between a slot and its message being in the Redis queue)
//
// usage: bench_beat [--quick]     (--quick: 10,000 entries, 3 s of sending)
#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/beat.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

std::size_t heap_in_use() {
  auto m = mallinfo2();
  return m.uordblks + m.hblkhd;  // small chunks + mmapped large ones (vectors of 100k)
}

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// n entries: half intervals (10 s .. ~1 h), half crontabs (every k minutes, hourly, daily,
// weekdays).
std::vector<tq::PeriodicEntry> make_entries(std::size_t n) {
  static const char* minutes[] = {"*/5", "*/15", "0", "30", "*/2", "7"};
  static const char* hours[] = {"*", "*", "*/2", "9-17", "*", "3"};
  static const char* dows[] = {"*", "mon-fri", "*", "*", "sat,sun", "*"};
  std::vector<tq::PeriodicEntry> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::string name = std::to_string(i);
    name.insert(0, 1, 'e');
    if (i % 2 == 0) {
      out.push_back({name,
                     tq::Schedule(seconds(10 + static_cast<long>(i % 3600))),
                     tq::call("tasks.noop"),
                     {}});
    } else {
      std::size_t k = (i / 2) % 6;
      out.push_back({name,
                     tq::Schedule(tq::crontab(minutes[k], hours[k], dows[k])),
                     tq::call("tasks.noop"),
                     {}});
    }
  }
  return out;
}

void bench_memory_and_ticks(std::size_t n) {
  auto start = system_clock::time_point(sys_days{year{2026} / 6 / 1}.time_since_epoch());
  tq::VirtualBeatClock clock(start);
  tq::App app("memory://", "memory://");
  std::size_t before = heap_in_use();
  auto entries = make_entries(n);
  std::size_t with_entries = heap_in_use();
  auto store = std::shared_ptr<tq::BeatStore>(tq::make_memory_beat_store(clock));
  tq::BeatOptions o;
  o.instance_id = "bench";
  tq::Beat beat(app, std::move(entries), o, store, clock);  // moved: the definitions are not copied
  double t0 = cpu_seconds();
  beat.tick();  // takes the lease, computes every entry's next slot
  double first = cpu_seconds() - t0;
  std::size_t with_beat = heap_in_use();
  double defs = static_cast<double>(with_entries - before) / static_cast<double>(n);
  // Beat keeps the definitions compactly (interned schedules and calls, names
  // in one buffer) and frees the vector it was given: what an entry costs is
  // everything on the heap now minus before the entries were made.
  double total =
      (static_cast<double>(with_beat) - static_cast<double>(before)) / static_cast<double>(n);
  std::printf(
      "(a) %zu entries: %.0f bytes/entry in all, held by beat (target <= 200): the compact\n"
      "    definitions (%zu distinct schedules, %zu distinct calls) and the scheduling state.\n"
      "    The PeriodicEntry vector given to beat (freed by it) was %.0f bytes/entry, "
      "sizeof(PeriodicEntry) = %zu\n",
      n, total, beat.distinct_schedules(), beat.distinct_calls(), defs, sizeof(tq::PeriodicEntry));
  std::printf("    first tick (take the lease, schedule every entry): %.1f ms CPU\n", first * 1e3);

  // Idle ticks: nothing due (1 ms apart, right after start).
  const int idle = 10000;
  t0 = cpu_seconds();
  for (int i = 0; i < idle; ++i) {
    clock.advance(1ms);
    beat.tick();
  }
  double idle_cpu = (cpu_seconds() - t0) / idle;
  // Sending ticks: one a second for 10 virtual minutes; queue drained as we go.
  std::vector<std::string> qs{"celery"};
  std::uint64_t sent0 = beat.counters().sent;
  double send_cpu = 0;
  const int ticks = 600;
  for (int i = 0; i < ticks; ++i) {
    clock.advance(1s);
    t0 = cpu_seconds();
    beat.tick();
    send_cpu += cpu_seconds() - t0;
    for (auto ds = app.broker().reserve(qs, 100000, 0ms); !ds.empty();
         ds = app.broker().reserve(qs, 100000, 0ms))
      app.broker().ack_many(ds);
  }
  auto sent = beat.counters().sent - sent0;
  std::printf(
      "(b) CPU per tick, %zu entries: idle %.2f us; sending %.2f ms per tick (%.1f messages per "
      "tick, "
      "%.2f us per message incl. building and the memory:// publish)\n",
      n, idle_cpu * 1e6, send_cpu / ticks * 1e3, static_cast<double>(sent) / ticks,
      send_cpu / static_cast<double>(std::max<std::uint64_t>(sent, 1)) * 1e6);
}

void bench_lateness(std::size_t n, int run_seconds) {
  celeriac::tq::test::RedisServer redis;
  tq::App app(redis.url(), redis.url());
  auto entries = make_entries(n - 1000);
  tq::PeriodicOptions aligned;
  aligned.relative = true;
  for (int i = 0; i < 1000; ++i)
    entries.push_back({std::string("due-").append(std::to_string(i)), tq::Schedule(1s),
                       tq::call("tasks.noop"), aligned});
  tq::BeatOptions o;
  o.instance_id = "bench";
  tq::Beat beat(app, std::move(entries), o);
  std::mutex mu;
  std::vector<double> late_ms;
  beat.on_sent = [&](const auto& sent) {
    auto now = system_clock::now();  // the batch is in Redis now
    std::lock_guard lock(mu);
    for (const auto& s : sent)
      late_ms.push_back(duration<double, std::milli>(now - s.second).count());
    if (std::getenv("BENCH_BEAT_VERBOSE"))
      std::fprintf(stderr, "batch of %zu: %.1f ms late\n", sent.size(), late_ms.back());
  };
  beat.start();
  for (int i = 0; i < run_seconds; ++i) {
    std::this_thread::sleep_for(1s);
    std::fprintf(stderr, "(c) running: %d/%d s\n", i + 1, run_seconds);
  }
  beat.stop();
  std::fprintf(stderr, "\n");
  std::lock_guard lock(mu);
  if (late_ms.empty()) {
    std::printf("(c) nothing was sent\n");
    return;
  }
  std::sort(late_ms.begin(), late_ms.end());
  auto pct = [&](double p) {
    return late_ms[static_cast<std::size_t>(p * static_cast<double>(late_ms.size() - 1))];
  };
  std::printf(
      "(c) lateness, 1,000 entries due each second among %zu, %zu messages to Redis in %d s: "
      "p50 %.1f ms, p99 %.1f ms, max %.1f ms (target p99 <= 50 ms)\n",
      n, late_ms.size(), run_seconds, pct(0.5), pct(0.99), late_ms.back());
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  spdlog::set_level(spdlog::level::warn);
  std::size_t n = quick ? 10000 : 100000;
  bench_memory_and_ticks(n);
  bench_lateness(n, quick ? 3 : 10);
  return 0;
}
