// The seed's ThreadPoolExecutor snippet in C++: submit a worker to a pool and
// wait for its result. Python:
//
//     from concurrent.futures import ThreadPoolExecutor
//
//     def worker(n):
//         print(f"Worker {n} is working")
//         return n * n
//
//     with ThreadPoolExecutor(max_workers=2) as executor:
//         future = executor.submit(worker, 3)
//         print(future.result())
//
// As Python's `with` block, the pool's destructor waits for submitted work
// and joins its threads.
#include <cstdio>

#include "celeriac/exec.hpp"

namespace {
int worker(int n) {
  std::printf("Worker %d is working\n", n);
  return n * n;
}
}  // namespace

int main() {
  celeriac::exec::ThreadPoolExecutor executor(2);
  celeriac::Future<int> future = executor.submit(worker, 3);
  std::printf("%d\n", future.result());
  return 0;
}
