// Python's advice "use processes for CPU-bound work" exists because of the
// GIL. C++ threads already run in parallel, so the same CPU-bound work runs
// here on the thread pool and on the process pool, with both timings printed.
// Expect them to be close: processes cost a fork per worker and a message per
// task, and buy isolation (a task that crashes, leaks or calls a library that
// is not thread-safe cannot take the program down), not speed.
//
// The work: the longest Collatz chain starting below 1,000,000, cut into
// chunks, one task each.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/mp.hpp"

namespace {

using Best = std::pair<std::uint64_t, std::uint64_t>;  // (start, steps)

// The longest chain starting in [lo, hi).
Best longest_chain(std::uint64_t lo, std::uint64_t hi) {
  Best best{0, 0};
  for (std::uint64_t start = lo; start < hi; ++start) {
    std::uint64_t n = start, steps = 0;
    while (n != 1) {
      n = (n & 1) ? 3 * n + 1 : n / 2;
      ++steps;
    }
    if (steps > best.second) best = {start, steps};
  }
  return best;
}

constexpr std::uint64_t kLimit = 1'000'000;
constexpr std::uint64_t kChunks = 32;

// Submits every chunk to `pool`, then combines the results.
template <class Pool>
Best run_on(Pool& pool) {
  std::vector<decltype(pool.submit(&longest_chain, std::uint64_t{}, std::uint64_t{}))> parts;
  for (std::uint64_t i = 0; i < kChunks; ++i) {
    std::uint64_t lo = std::max<std::uint64_t>(1, kLimit * i / kChunks);
    parts.push_back(pool.submit(&longest_chain, lo, kLimit * (i + 1) / kChunks));
  }
  Best best{0, 0};
  for (auto& f : parts) {
    Best b = f.result();
    if (b.second > best.second) best = b;
  }
  return best;
}

template <class Pool>
void time_on(Pool& pool, const char* name) {
  auto t0 = std::chrono::steady_clock::now();
  Best best = run_on(pool);
  std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - t0;
  std::printf(
      "%-13s (%zu workers): longest chain below %llu starts at %llu (%llu steps), %.1f ms\n", name,
      pool.max_workers(), static_cast<unsigned long long>(kLimit),
      static_cast<unsigned long long>(best.first), static_cast<unsigned long long>(best.second),
      ms.count());
}

}  // namespace

int main() {
  celeriac::mp::init();  // before any thread starts
  std::size_t workers = std::max(1u, std::thread::hardware_concurrency());
  {
    celeriac::exec::ThreadPool threads(workers);
    time_on(threads, "thread pool");
  }
  {
    celeriac::mp::ProcessPool processes(workers);
    time_on(processes, "process pool");
  }
  return 0;
}
