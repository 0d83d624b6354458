// as_completed over simulated I/O-bound jobs: five "downloads" that each
// sleep a different time run at once on a pool, and the results are handled
// in the order they finish, not the order they were submitted. Python:
//
//     import time
//     from concurrent.futures import ThreadPoolExecutor, as_completed
//
//     def fetch(job, delay):
//         time.sleep(delay)  # waiting on the network
//         return f"page {job}: {int(delay * 1000)} ms"
//
//     with ThreadPoolExecutor(max_workers=5) as pool:
//         futures = [pool.submit(fetch, job, delay)
//                    for job, delay in enumerate([0.25, 0.05, 0.15, 0.1, 0.2])]
//         for f in as_completed(futures, timeout=30):
//             print(f.result())
//
// The jobs sleep rather than compute, so five threads overlap them: the
// whole run takes about as long as the slowest job, not the sum.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/exec.hpp"

using namespace std::chrono_literals;

namespace {
std::string fetch(int job, std::chrono::milliseconds delay) {
  std::this_thread::sleep_for(delay);  // waiting on the network
  return "page " + std::to_string(job) + ": " + std::to_string(delay.count()) + " ms";
}
}  // namespace

int main() {
  const std::vector<std::chrono::milliseconds> delays = {250ms, 50ms, 150ms, 100ms, 200ms};
  const auto start = std::chrono::steady_clock::now();

  celeriac::exec::ThreadPoolExecutor pool(delays.size());
  std::vector<celeriac::Future<std::string>> futures;
  for (std::size_t job = 0; job < delays.size(); ++job)
    futures.push_back(pool.submit(fetch, static_cast<int>(job), delays[job]));

  std::size_t handled = 0;
  for (const auto& f : celeriac::as_completed(futures, 30s)) {
    std::printf("%s\n", f.result().c_str());
    ++handled;
  }

  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::printf("%zu of %zu jobs done in %lld ms (the jobs add up to 750 ms)\n", handled,
              futures.size(), static_cast<long long>(elapsed.count()));
  return 0;
}
