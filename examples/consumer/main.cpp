// A program built against an installed celeriac: a named thread sums the
// numbers it reads from a bounded Queue and hands the total back through a
// Promise; main waits on the Future.
#include <chrono>
#include <cstdio>

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
  return 0;
}
