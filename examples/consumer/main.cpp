// A program built against an installed celeriac: a named thread sums the
// numbers it reads from a bounded Queue and hands the total back through a
// Promise; main waits on the Future. Then a ThreadPool maps a function over a
// few numbers (the exec layer's compiled part must link too).
#include <chrono>
#include <cstdio>
#include <vector>

#include "celeriac/exec.hpp"
#include "celeriac/futures.hpp"
#include "celeriac/sync.hpp"

int main() {
  celeriac::sync::Queue<int> numbers(4);
  celeriac::Promise<long> total;
  celeriac::Future<long> result = total.get_future();

  celeriac::sync::Thread summer(
      [&] {
        long sum = 0;
        try {
          for (;;) sum += numbers.get();
        } catch (const celeriac::sync::QueueClosed&) {
          // closed and drained: every number was added
        }
        total.set_value(sum);
      },
      "summer");
  summer.start();

  for (int i = 1; i <= 100; ++i) numbers.put(i);
  numbers.close();

  std::printf("celeriac consumer: sum of 1..100 = %ld\n", result.result(std::chrono::seconds(60)));
  summer.join();

  celeriac::exec::ThreadPoolExecutor pool(2);
  std::printf("celeriac consumer: squares");
  for (int square : pool.map([](int x) { return x * x; }, std::vector<int>{1, 2, 3}))
    std::printf(" %d", square);
  std::printf("\n");
  return 0;
}
