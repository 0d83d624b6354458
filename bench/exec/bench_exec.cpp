// bench_exec: the exec layer's thread pool side by side with oneTBB, Asio's
// thread_pool, std::async and Python's ThreadPoolExecutor, on issue 2's
// scenarios:
//   (a) 1,000,000 empty tasks posted fire-and-forget from one outside thread
//       (until all have run), tasks/s;
//   (b) the same with a future per task, tasks/s;
//   (c) submit -> result() round trip of one task, p50 and p99 over 10,000
//       sequential calls;
//   (d) recursive fib(28) spawning a child task per call, ns per spawn;
//   (e) parallel sum of sqrt over 10M doubles, speedup over one thread;
//   plus the CPU the idle pool uses.
// Each measurement runs in a forked child, so that one peer's threads (oneTBB
// keeps its workers alive, spinning a while after work) never run during
// another's. Every pool gets one worker per core; the posting thread is extra.
// `--quick` divides the sizes by 10 (a smoke run).
#include <sys/wait.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_reduce.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/exec.hpp"

using Clock = std::chrono::steady_clock;
using celeriac::exec::TaskGroup;
using celeriac::exec::ThreadPool;

namespace {

struct Sizes {
  long a = 1'000'000;
  long a_async = 20'000;    // std::async starts a thread per task
  long a_python = 200'000;  // Python manages about 100k/s
  long c = 10'000;
  int fib = 28;
  long e = 10'000'000;
  long e_python = 2'000'000;
  double idle_seconds = 0.5;
  int workers = 2;
};

// What a child measured: one or two numbers, or nothing.
struct Measure {
  bool ok = false;
  double v = 0;
  double v2 = 0;
};

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU% the process uses while its (already warmed) pool has nothing to do.
double idle_cpu_percent(double seconds) {
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let spinners settle
  const double c0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return 100.0 * (process_cpu_seconds() - c0) / since(t0);
}

template <class F>
Measure in_child(F fn) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    Measure m = fn();
    m.ok = true;
    [[maybe_unused]] auto w = ::write(fds[1], &m, sizeof m);
    ::_exit(0);
  }
  ::close(fds[1]);
  Measure m;
  if (::read(fds[0], &m, sizeof m) != sizeof m) m = {};
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return m;
}

Measure percentiles_us(std::vector<double>& ns) {
  std::sort(ns.begin(), ns.end());
  return {true, ns[ns.size() / 2] / 1e3, ns[ns.size() * 99 / 100] / 1e3};
}

long fib_spawns(int n) {
  return n < 2 ? 0 : 1 + fib_spawns(n - 1) + fib_spawns(n - 2);
}

std::vector<double> make_data(long n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  return v;
}

double serial_sqrt_sum(std::span<const double> d) {
  double s = 0;
  for (double x : d) s += std::sqrt(x);
  return s;
}

// Best of three: the parallel sum is short and the machine is shared.
template <class F>
double best_seconds(F&& run) {
  double best = 1e9;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    run();
    best = std::min(best, since(t0));
  }
  return best;
}

volatile double g_sink;  // keeps results alive

// ---- celeriac -----------------------------------------------------------

struct Celeriac {
  static Measure post(const Sizes& s) {
    ThreadPool pool(static_cast<std::size_t>(s.workers));
    pool.submit([] {}).result();  // threads up
    const auto t0 = Clock::now();
    for (long i = 0; i < s.a; ++i) pool.post([] {});
    pool.shutdown(true);
    return {true, static_cast<double>(s.a) / since(t0)};
  }
  static Measure futures(const Sizes& s) {
    ThreadPool pool(static_cast<std::size_t>(s.workers));
    pool.submit([] {}).result();
    std::vector<celeriac::Future<void>> fs;
    fs.reserve(static_cast<std::size_t>(s.a));
    const auto t0 = Clock::now();
    for (long i = 0; i < s.a; ++i) fs.push_back(pool.submit([] {}));
    for (auto& f : fs) f.wait();
    return {true, static_cast<double>(s.a) / since(t0)};
  }
  static Measure round_trip(const Sizes& s) {
    ThreadPool pool(static_cast<std::size_t>(s.workers));
    std::vector<double> ns;
    ns.reserve(static_cast<std::size_t>(s.c));
    for (int i = 0; i < 100; ++i) pool.submit([] {}).result();
    for (long i = 0; i < s.c; ++i) {
      const auto t0 = Clock::now();
      pool.submit([] {}).result();
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    return percentiles_us(ns);
  }
  static long fib(ThreadPool& pool, int n) {
    if (n < 2) return n;
    long x = 0;
    TaskGroup g(pool);
    g.run([&] { x = fib(pool, n - 1); });
    const long y = fib(pool, n - 2);
    g.wait();
    return x + y;
  }
  static Measure fib_spawn(const Sizes& s) {
    ThreadPool pool(static_cast<std::size_t>(s.workers));
    pool.submit([&] { return fib(pool, 20); }).result();  // warm the block caches
    const auto t0 = Clock::now();
    g_sink = static_cast<double>(pool.submit([&] { return fib(pool, s.fib); }).result());
    return {true, since(t0) * 1e9 / static_cast<double>(fib_spawns(s.fib))};
  }
  static Measure sum(const Sizes& s) {
    const auto data = make_data(s.e);
    ThreadPool pool(static_cast<std::size_t>(s.workers));
    const double t1 = best_seconds([&] { g_sink = serial_sqrt_sum(data); });
    const double tp = best_seconds([&] {
      g_sink = celeriac::exec::parallel_reduce(
          pool, data, 0.0, [](double x) { return std::sqrt(x); }, std::plus<>());
    });
    return {true, t1 / tp};
  }
  static Measure idle(const Sizes& s) {
    ThreadPool pool(static_cast<std::size_t>(s.workers));
    for (int i = 0; i < 1000; ++i) pool.post([] {});
    pool.submit([] {}).result();
    return {true, idle_cpu_percent(s.idle_seconds)};
  }
};

// ---- oneTBB -------------------------------------------------------------

struct Tbb {
  // Workers for the arena beside the slot of the thread that posts or waits.
  struct Arena {
    tbb::global_control threads;
    tbb::task_arena arena;
    explicit Arena(int workers)
        : threads(tbb::global_control::max_allowed_parallelism,
                  static_cast<std::size_t>(workers) + 1),
          arena(workers + 1, 1) {}
  };
  static Measure post(const Sizes& s) {
    Arena a(s.workers);
    double rate = 0;
    a.arena.execute([&] {
      tbb::task_group g;
      const auto t0 = Clock::now();
      for (long i = 0; i < s.a; ++i) g.run([] {});
      g.wait();
      rate = static_cast<double>(s.a) / since(t0);
    });
    return {true, rate};
  }
  static Measure round_trip(const Sizes& s) {
    Arena a(s.workers);
    std::vector<double> ns;
    ns.reserve(static_cast<std::size_t>(s.c));
    auto once = [&] {
      std::promise<void> p;
      auto f = p.get_future();
      a.arena.enqueue([&p] { p.set_value(); });
      f.get();
    };
    for (int i = 0; i < 100; ++i) once();
    for (long i = 0; i < s.c; ++i) {
      const auto t0 = Clock::now();
      once();
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    return percentiles_us(ns);
  }
  static long fib(int n) {
    if (n < 2) return n;
    long x = 0;
    tbb::task_group g;
    g.run([&] { x = fib(n - 1); });
    const long y = fib(n - 2);
    g.wait();
    return x + y;
  }
  static Measure fib_spawn(const Sizes& s) {
    Arena a(s.workers);
    double secs = 0;
    a.arena.execute([&] {
      g_sink = static_cast<double>(fib(20));
      const auto t0 = Clock::now();
      g_sink = static_cast<double>(fib(s.fib));
      secs = since(t0);
    });
    return {true, secs * 1e9 / static_cast<double>(fib_spawns(s.fib))};
  }
  static Measure sum(const Sizes& s) {
    const auto data = make_data(s.e);
    Arena a(s.workers);
    const double t1 = best_seconds([&] { g_sink = serial_sqrt_sum(data); });
    const double tp = best_seconds([&] {
      a.arena.execute([&] {
        g_sink = tbb::parallel_reduce(
            tbb::blocked_range<std::size_t>(0, data.size()), 0.0,
            [&](const tbb::blocked_range<std::size_t>& r, double acc) {
              for (std::size_t i = r.begin(); i != r.end(); ++i) acc += std::sqrt(data[i]);
              return acc;
            },
            std::plus<>());
      });
    });
    return {true, t1 / tp};
  }
  static Measure idle(const Sizes& s) {
    Arena a(s.workers);
    a.arena.execute([] {
      tbb::task_group g;
      for (int i = 0; i < 1000; ++i) g.run([] {});
      g.wait();
    });
    return {true, idle_cpu_percent(s.idle_seconds)};
  }
};

// ---- Asio thread_pool ---------------------------------------------------

struct Asio {
  static Measure post(const Sizes& s) {
    asio::thread_pool pool(static_cast<std::size_t>(s.workers));
    asio::post(pool, asio::use_future([] {})).get();
    const auto t0 = Clock::now();
    for (long i = 0; i < s.a; ++i) asio::post(pool, [] {});
    pool.join();
    return {true, static_cast<double>(s.a) / since(t0)};
  }
  static Measure futures(const Sizes& s) {
    asio::thread_pool pool(static_cast<std::size_t>(s.workers));
    asio::post(pool, asio::use_future([] {})).get();
    std::vector<std::future<void>> fs;
    fs.reserve(static_cast<std::size_t>(s.a));
    const auto t0 = Clock::now();
    for (long i = 0; i < s.a; ++i) fs.push_back(asio::post(pool, asio::use_future([] {})));
    for (auto& f : fs) f.wait();
    return {true, static_cast<double>(s.a) / since(t0)};
  }
  static Measure round_trip(const Sizes& s) {
    asio::thread_pool pool(static_cast<std::size_t>(s.workers));
    std::vector<double> ns;
    ns.reserve(static_cast<std::size_t>(s.c));
    for (int i = 0; i < 100; ++i) asio::post(pool, asio::use_future([] {})).get();
    for (long i = 0; i < s.c; ++i) {
      const auto t0 = Clock::now();
      asio::post(pool, asio::use_future([] {})).get();
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    return percentiles_us(ns);
  }
  // No fork-join: the range is cut into 8 pieces per worker up front.
  static Measure sum(const Sizes& s) {
    const auto data = make_data(s.e);
    asio::thread_pool pool(static_cast<std::size_t>(s.workers));
    const double t1 = best_seconds([&] { g_sink = serial_sqrt_sum(data); });
    const std::size_t pieces = static_cast<std::size_t>(s.workers) * 8;
    const double tp = best_seconds([&] {
      std::vector<std::future<double>> parts;
      const std::size_t step = (data.size() + pieces - 1) / pieces;
      for (std::size_t lo = 0; lo < data.size(); lo += step) {
        std::span<const double> piece(data.data() + lo, std::min(step, data.size() - lo));
        parts.push_back(
            asio::post(pool, asio::use_future([piece] { return serial_sqrt_sum(piece); })));
      }
      double total = 0;
      for (auto& p : parts) total += p.get();
      g_sink = total;
    });
    return {true, t1 / tp};
  }
  static Measure idle(const Sizes& s) {
    asio::thread_pool pool(static_cast<std::size_t>(s.workers));
    for (int i = 0; i < 1000; ++i) asio::post(pool, [] {});
    asio::post(pool, asio::use_future([] {})).get();
    return {true, idle_cpu_percent(s.idle_seconds)};
  }
};

// ---- std::async (a thread per call) -------------------------------------

struct Async {
  // A std::async future blocks in its destructor, so (a) and (b) are one
  // scenario: launch them all, then wait.
  static Measure launch_all(const Sizes& s) {
    std::vector<std::future<void>> fs;
    fs.reserve(static_cast<std::size_t>(s.a_async));
    const auto t0 = Clock::now();
    for (long i = 0; i < s.a_async; ++i) fs.push_back(std::async(std::launch::async, [] {}));
    for (auto& f : fs) f.wait();
    return {true, static_cast<double>(s.a_async) / since(t0)};
  }
  static Measure round_trip(const Sizes& s) {
    std::vector<double> ns;
    ns.reserve(static_cast<std::size_t>(s.c));
    for (long i = 0; i < s.c; ++i) {
      const auto t0 = Clock::now();
      std::async(std::launch::async, [] {}).get();
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
    return percentiles_us(ns);
  }
  static Measure sum(const Sizes& s) {
    const auto data = make_data(s.e);
    const double t1 = best_seconds([&] { g_sink = serial_sqrt_sum(data); });
    const std::size_t pieces = static_cast<std::size_t>(s.workers);
    const double tp = best_seconds([&] {
      std::vector<std::future<double>> parts;
      const std::size_t step = (data.size() + pieces - 1) / pieces;
      for (std::size_t lo = 0; lo < data.size(); lo += step) {
        std::span<const double> piece(data.data() + lo, std::min(step, data.size() - lo));
        parts.push_back(std::async(std::launch::async, [piece] { return serial_sqrt_sum(piece); }));
      }
      double total = 0;
      for (auto& p : parts) total += p.get();
      g_sink = total;
    });
    return {true, t1 / tp};
  }
};

// ---- Python's ThreadPoolExecutor ----------------------------------------

struct Python {
  Measure a, b, c, e, idle;
};

// Pulls "key": number (or "key": [n, m]) out of the script's JSON line.
Measure json_number(const std::string& json, const char* key, double scale) {
  const std::string k = std::string("\"") + key + "\": ";
  const auto at = json.find(k);
  if (at == std::string::npos) return {};
  const char* p = json.c_str() + at + k.size();
  Measure m;
  m.ok = true;
  if (*p == '[') {
    char* end = nullptr;
    m.v = std::strtod(p + 1, &end) * scale;
    m.v2 = std::strtod(end + 1, nullptr) * scale;
  } else {
    m.v = std::strtod(p, nullptr) * scale;
  }
  return m;
}

Python run_python(const Sizes& s) {
  const std::string script = std::string(CELERIAC_SOURCE_DIR) + "/bench/exec/bench_exec.py";
  char sizes[256];
  std::snprintf(sizes, sizeof sizes,
                "{\"workers\": %d, \"a\": %ld, \"b\": %ld, \"c\": %ld, \"e\": %ld, "
                "\"idle_seconds\": %g}",
                s.workers, s.a_python, s.a_python, s.c, s.e_python, s.idle_seconds);
  const std::string cmd = "/usr/bin/python3 '" + script + "' '" + sizes + "'";
  std::fflush(stdout);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string out;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (::pclose(p) != 0) return {};
  return {json_number(out, "a", 1), json_number(out, "b", 1), json_number(out, "c", 1e-3),
          json_number(out, "e", 1), json_number(out, "idle", 1)};
}

// ---- the table ------------------------------------------------------------

constexpr int kPeers = 5;
const char* const kPeerNames[kPeers] = {"celeriac", "oneTBB", "Asio pool", "std::async",
                                        "Python TPE"};

struct Row {
  const char* name;
  const char* unit;
  bool higher_is_better;
  bool second;  // show Measure::v2 instead of v
  Measure cells[kPeers];
};

std::string format_value(double v, const char* unit) {
  char buf[32];
  if (std::strcmp(unit, "tasks/s") == 0) {
    if (v >= 1e6) {
      std::snprintf(buf, sizeof buf, "%.2f M/s", v / 1e6);
    } else {
      std::snprintf(buf, sizeof buf, "%.0f k/s", v / 1e3);
    }
  } else if (std::strcmp(unit, "us") == 0) {
    std::snprintf(buf, sizeof buf, "%.2f us", v);
  } else if (std::strcmp(unit, "ns") == 0) {
    std::snprintf(buf, sizeof buf, "%.1f ns", v);
  } else if (std::strcmp(unit, "x") == 0) {
    std::snprintf(buf, sizeof buf, "%.2fx", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %%", v);
  }
  return buf;
}

void print_table(const Sizes& s, const std::vector<Row>& rows) {
  std::printf("\n%-34s", "scenario");
  for (const char* n : kPeerNames) std::printf(" %20s", n);
  std::printf("\n");
  for (const Row& r : rows) {
    std::printf("%-34s", r.name);
    const Measure& base = r.cells[0];
    const double bv = r.second ? base.v2 : base.v;
    for (int i = 0; i < kPeers; ++i) {
      const Measure& m = r.cells[i];
      if (!m.ok) {
        std::printf(" %20s", "n/a");
        continue;
      }
      const double v = r.second ? m.v2 : m.v;
      std::string cell = format_value(v, r.unit);
      if (i > 0 && base.ok && v > 0 && bv > 0 && std::strcmp(r.unit, "%") != 0) {
        // How many times better celeriac is (>1: celeriac ahead).
        const double ratio = r.higher_is_better ? bv / v : v / bv;
        char rb[24];
        std::snprintf(rb, sizeof rb, " (%.2fx)", ratio);
        cell += rb;
      }
      std::printf(" %20s", cell.c_str());
    }
    std::printf("\n");
  }
  std::printf(
      "\n(N.NNx) = how many times better celeriac is than that peer on the row (>1: celeriac "
      "ahead).\n"
      "(a) and (b) count from the first post until every task has run; oneTBB spawns into a "
      "task_group from the thread that waits (it has no futures: no (b)).\n"
      "std::async starts a thread per call (it has no fire-and-forget: its future blocks on "
      "destruction), so its (a)/(b) are one run of %ld tasks; Python's (a)/(b) use %ld tasks "
      "and (e) %ld doubles.\n",
      s.a_async, s.a_python, s.e_python);
}

// The 1-minute load average: spinning pools lose most on an oversubscribed
// machine, so the table is read against it.
double load_average() {
  double load = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

template <class F>
Measure step(const char* label, const char* peer, const char* unit, bool second, F fn) {
  std::printf("[%s] %-11s ... ", label, peer);
  std::fflush(stdout);
  Measure m = in_child(fn);
  if (!m.ok) {
    std::printf("failed\n");
  } else if (second) {
    std::printf("p50 %s, p99 %s\n", format_value(m.v, unit).c_str(),
                format_value(m.v2, unit).c_str());
  } else {
    std::printf("%s\n", format_value(m.v, unit).c_str());
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  Sizes s;
  s.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (argc > 1 && std::strcmp(argv[1], "--quick") == 0) {
    s.a /= 10;
    s.a_async /= 10;
    s.a_python /= 10;
    s.c /= 10;
    s.fib = 22;
    s.e /= 10;
    s.e_python /= 10;
    s.idle_seconds = 0.2;
  }
  std::printf("bench_exec: %d workers per pool on %u cores, load average %.2f\n", s.workers,
              std::thread::hardware_concurrency(), load_average());
  const auto start = Clock::now();
  const Measure none{};

  Row a{"(a) post empty tasks, tasks/s", "tasks/s", true, false, {}};
  a.cells[0] = step("a", "celeriac", a.unit, false, [&] { return Celeriac::post(s); });
  a.cells[1] = step("a", "oneTBB", a.unit, false, [&] { return Tbb::post(s); });
  a.cells[2] = step("a", "Asio pool", a.unit, false, [&] { return Asio::post(s); });
  a.cells[3] = step("a", "std::async", a.unit, false, [&] { return Async::launch_all(s); });

  Row b{"(b) submit with future, tasks/s", "tasks/s", true, false, {}};
  b.cells[0] = step("b", "celeriac", b.unit, false, [&] { return Celeriac::futures(s); });
  b.cells[1] = none;  // oneTBB has no futures
  b.cells[2] = step("b", "Asio pool", b.unit, false, [&] { return Asio::futures(s); });
  b.cells[3] = a.cells[3];

  Row c50{"(c) submit->result p50", "us", false, false, {}};
  Row c99{"(c) submit->result p99", "us", false, true, {}};
  c50.cells[0] = step("c", "celeriac", "us", true, [&] { return Celeriac::round_trip(s); });
  c50.cells[1] = step("c", "oneTBB", "us", true, [&] { return Tbb::round_trip(s); });
  c50.cells[2] = step("c", "Asio pool", "us", true, [&] { return Asio::round_trip(s); });
  c50.cells[3] = step("c", "std::async", "us", true, [&] { return Async::round_trip(s); });

  Row d{"(d) fib(N) child per call, ns/spawn", "ns", false, false, {}};
  d.cells[0] = step("d", "celeriac", d.unit, false, [&] { return Celeriac::fib_spawn(s); });
  d.cells[1] = step("d", "oneTBB", d.unit, false, [&] { return Tbb::fib_spawn(s); });

  Row e{"(e) sum of sqrt, speedup vs 1 thread", "x", true, false, {}};
  e.cells[0] = step("e", "celeriac", e.unit, false, [&] { return Celeriac::sum(s); });
  e.cells[1] = step("e", "oneTBB", e.unit, false, [&] { return Tbb::sum(s); });
  e.cells[2] = step("e", "Asio pool", e.unit, false, [&] { return Asio::sum(s); });
  e.cells[3] = step("e", "std::async", e.unit, false, [&] { return Async::sum(s); });

  Row idle{"idle pool CPU", "%", false, false, {}};
  idle.cells[0] = step("idle", "celeriac", idle.unit, false, [&] { return Celeriac::idle(s); });
  idle.cells[1] = step("idle", "oneTBB", idle.unit, false, [&] { return Tbb::idle(s); });
  idle.cells[2] = step("idle", "Asio pool", idle.unit, false, [&] { return Asio::idle(s); });

  std::printf("[py] Python ThreadPoolExecutor (all scenarios but d) ...\n");
  std::fflush(stdout);
  const Python py = run_python(s);
  if (!py.a.ok) std::printf("[py] failed (is /usr/bin/python3 there?)\n");
  a.cells[4] = py.a;
  b.cells[4] = py.b;
  c50.cells[4] = py.c;
  e.cells[4] = py.e;
  idle.cells[4] = py.idle;
  for (int i = 0; i < kPeers; ++i) c99.cells[i] = c50.cells[i];

  print_table(s, {a, b, c50, c99, d, e, idle});
  std::printf("fib N = %d (%ld spawns); total run %.0f s; load average now %.2f\n", s.fib,
              fib_spawns(s.fib), since(start), load_average());
  return 0;
}
