// bench_mp_pool: celeriac::mp::ProcessPool against Python's
// concurrent.futures.ProcessPoolExecutor and multiprocessing.Pool, running
// the same trivial function, in one run (the Python side is
// bench_mp_pool.py under /usr/bin/python3):
//   (a) submit -> result round trip, p50/p99 over sequential calls, 1 worker;
//   (b) throughput of small tasks submitted one by one, and with map()
//       chunksize 1000, 2 workers;
//   (c) a 100 MB byte array to a task and back by value (serialized; from
//       1 MiB on the bytes travel through a memfd, not the socket), and as a
//       SharedArray (only a handle travels).
// Ratios are celeriac's advantage (>1: celeriac better). `--quick` runs
// smaller sizes. Python's one-by-one figure uses fewer tasks (it is ~100
// times slower); rates are per second so they compare.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "celeriac/mp.hpp"

namespace mp = celeriac::mp;
using Clock = std::chrono::steady_clock;

namespace {

int add(int a, int b) {
  return a + b;
}
int add1(int x) {
  return x + 1;
}
std::vector<std::uint8_t> identity_bytes(std::vector<std::uint8_t> v) {
  return v;
}
mp::SharedArray<std::uint8_t> identity_array(mp::SharedArray<std::uint8_t> a) {
  return a;
}

struct Sizes {
  int rt_calls = 10'000;
  int one_by_one = 100'000;
  int python_one_by_one = 20'000;
  int chunked = 100'000;
  int megabytes = 100;
};

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void progress(const char* what) {
  std::fprintf(stderr, "  [celeriac] %s\n", what);
}

struct Percentiles {
  double p50_us, p99_us;
};

Percentiles round_trips(mp::ProcessPool& pool, int n) {
  for (int i = 0; i < std::min(200, n); ++i) pool.submit(&add, 1, 2).result();
  std::vector<double> us(static_cast<std::size_t>(n));
  for (auto& s : us) {
    auto t0 = Clock::now();
    if (pool.submit(&add, 1, 2).result() != 3) std::abort();
    s = seconds_since(t0) * 1e6;
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}

double one_by_one_per_s(mp::ProcessPool& pool, int n) {
  std::vector<celeriac::Future<int>> fs;
  fs.reserve(static_cast<std::size_t>(n));
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) fs.push_back(pool.submit(&add, i, 1));
  for (auto& f : fs) f.result();
  return n / seconds_since(t0);
}

double chunked_per_s(mp::ProcessPool& pool, int n) {
  std::vector<int> in(static_cast<std::size_t>(n));
  std::iota(in.begin(), in.end(), 0);
  auto t0 = Clock::now();
  auto out = pool.map(&add1, in, 1000).to_vector();
  double rate = n / seconds_since(t0);
  if (out.size() != in.size() || out.back() != n) std::abort();
  return rate;
}

// Best of 3 round trips of `mb` MB, in GB/s counting both directions.
template <class Send>
double best_gbps(int mb, Send send) {
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    send();
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * (static_cast<double>(mb) * (1 << 20)) / best / 1e9;
}

std::map<std::string, double> run_python(const Sizes& s) {
  std::string cmd = std::string("/usr/bin/python3 ") + CELERIAC_SOURCE_DIR +
                    "/bench/mp/bench_mp_pool.py " + std::to_string(s.rt_calls) + " " +
                    std::to_string(s.python_one_by_one) + " " + std::to_string(s.chunked) + " " +
                    std::to_string(s.megabytes);
  std::map<std::string, double> out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char line[256], name[128];
  double v;
  while (std::fgets(line, sizeof line, p))
    if (std::sscanf(line, "RESULT %127s %lf", name, &v) == 2) out[name] = v;
  if (::pclose(p) != 0) std::fprintf(stderr, "  python peer failed: %s\n", cmd.c_str());
  return out;
}

// "12.3x" when both figures exist; higher_is_better picks the direction.
std::string ratio(double ours, const std::map<std::string, double>& py, const char* key,
                  bool higher_is_better) {
  auto it = py.find(key);
  if (it == py.end() || ours <= 0 || it->second <= 0) return "n/a";
  double r = higher_is_better ? ours / it->second : it->second / ours;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fx", r);
  return buf;
}

double get(const std::map<std::string, double>& m, const char* key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  mp::init();  // the fork server, before any thread
  Sizes s;
  if (argc > 1 && std::strcmp(argv[1], "--quick") == 0) s = Sizes{2'000, 20'000, 4'000, 20'000, 20};

  std::printf(
      "bench_mp_pool: rt %d calls, one-by-one %d tasks (Python %d), chunked %d, data %d MB\n",
      s.rt_calls, s.one_by_one, s.python_one_by_one, s.chunked, s.megabytes);
  std::fflush(stdout);
  Percentiles rt;
  {
    progress("round trips (1 worker)");
    mp::ProcessPool pool(1);
    rt = round_trips(pool, s.rt_calls);
  }
  double one = 0, chunk = 0;
  {
    progress("throughput (2 workers)");
    mp::ProcessPool pool(2);
    pool.submit(&add, 0, 0).result();
    one = one_by_one_per_s(pool, s.one_by_one);
    chunk = chunked_per_s(pool, s.chunked);
  }
  double bytes_gbps = 0, shared_us = 0;
  {
    progress("data (1 worker)");
    mp::ProcessPool pool(1);
    pool.submit(&add, 0, 0).result();
    std::size_t n = static_cast<std::size_t>(s.megabytes) << 20;
    std::vector<std::uint8_t> bytes(n, 7);
    bytes_gbps = best_gbps(s.megabytes, [&] {
      if (pool.submit(&identity_bytes, bytes).result().size() != n) std::abort();
    });
    mp::SharedArray<std::uint8_t> shared(n);
    std::fill(shared.begin(), shared.end(), std::uint8_t{7});
    double gbps = best_gbps(s.megabytes, [&] {
      if (pool.submit(&identity_array, shared).result().size() != n) std::abort();
    });
    shared_us = 2.0 * (static_cast<double>(s.megabytes) * (1 << 20)) / (gbps * 1e9) * 1e6;
  }
  progress("Python peers");
  auto py = run_python(s);

  std::printf("\n(a) submit->result round trip, %d sequential calls, 1 worker\n", s.rt_calls);
  std::printf("  %-34s p50 %8.1f us   p99 %8.1f us\n", "celeriac ProcessPool", rt.p50_us,
              rt.p99_us);
  std::printf("  %-34s p50 %8.1f us   p99 %8.1f us   celeriac %s faster (p50)\n",
              "Python ProcessPoolExecutor", get(py, "ppe_rt_p50_us"), get(py, "ppe_rt_p99_us"),
              ratio(rt.p50_us, py, "ppe_rt_p50_us", false).c_str());
  std::printf("  %-34s p50 %8.1f us   p99 %8.1f us   celeriac %s faster (p50)\n",
              "Python multiprocessing.Pool.apply", get(py, "pool_rt_p50_us"),
              get(py, "pool_rt_p99_us"), ratio(rt.p50_us, py, "pool_rt_p50_us", false).c_str());

  std::printf("\n(b) throughput of small tasks, 2 workers\n");
  std::printf("  %-34s one by one %10.0f /s   chunksize 1000 %10.0f /s\n", "celeriac ProcessPool",
              one, chunk);
  std::printf("  %-34s one by one %10.0f /s   chunksize 1000 %10.0f /s   celeriac %s / %s\n",
              "Python ProcessPoolExecutor", get(py, "ppe_one_per_s"), get(py, "ppe_chunk_per_s"),
              ratio(one, py, "ppe_one_per_s", true).c_str(),
              ratio(chunk, py, "ppe_chunk_per_s", true).c_str());
  std::printf("  %-34s one by one %10.0f /s   chunksize 1000 %10.0f /s   celeriac %s / %s\n",
              "Python multiprocessing.Pool", get(py, "pool_one_per_s"), get(py, "pool_chunk_per_s"),
              ratio(one, py, "pool_one_per_s", true).c_str(),
              ratio(chunk, py, "pool_chunk_per_s", true).c_str());

  std::printf("\n(c) %d MB to a task and back (GB/s, both directions, best of 3)\n", s.megabytes);
  std::printf("  %-34s %8.2f GB/s\n", "celeriac by value (serialized)", bytes_gbps);
  std::printf("  %-34s %8.2f GB/s   celeriac by value %s\n", "Python ProcessPoolExecutor bytes",
              get(py, "ppe_data_gbps"), ratio(bytes_gbps, py, "ppe_data_gbps", true).c_str());
  std::printf("  %-34s %8.1f us round trip: only a handle travels, the %d MB are not copied\n",
              "celeriac SharedArray", shared_us, s.megabytes);
  return 0;
}
