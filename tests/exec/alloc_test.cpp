// "No allocation per task for small callables, the task and its future in
// one allocation" (issue 2), checked by counting operator new on the thread
// that posts or submits.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <vector>

#include "celeriac/exec.hpp"

namespace {
thread_local bool tl_counting = false;
thread_local long tl_allocations = 0;

// Counts the allocations of `fn` on this thread.
template <class F>
long allocations_of(F&& fn) {
  tl_allocations = 0;
  tl_counting = true;
  fn();
  tl_counting = false;
  return tl_allocations;
}
}  // namespace

void* operator new(std::size_t n) {
  if (tl_counting) ++tl_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// The matching deletes are replaced too, so that sanitizers see malloc/free
// pairs; g++ 12 cannot tell that the operator new above is malloc and warns.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

using celeriac::exec::ThreadPool;
using namespace std::chrono_literals;

TEST(ThreadPoolAllocations, PostingASmallCallableFromOutsideAllocatesNothing) {
  ThreadPool pool(2);
  std::atomic<int> ran{0};
  const long allocs = allocations_of([&] {
    for (int i = 0; i < 1000; ++i) pool.post([&ran] { ran.fetch_add(1); });
  });
  EXPECT_EQ(allocs, 0);
  pool.shutdown();
  EXPECT_EQ(ran.load(), 1000);
}

TEST(ThreadPoolAllocations, SubmitMakesTaskAndFutureInOneAllocation) {
#if defined(CELERIAC_SANITIZED)
  GTEST_SKIP() << "sanitizer builds turn the block cache off";
#endif
  ThreadPool pool(2);
  std::vector<celeriac::Future<int>> futures;
  futures.reserve(1000);
  const long allocs = allocations_of([&] {
    for (int i = 0; i < 1000; ++i) futures.push_back(pool.submit([i] { return i; }));
  });
  // At most one block per task (fewer once blocks come back to this thread).
  EXPECT_LE(allocs, 1000);
  long sum = 0;
  for (auto& f : futures) sum += f.result(10s);
  EXPECT_EQ(sum, 999L * 1000 / 2);
}

TEST(ThreadPoolAllocations, SpawningFromAWorkerReusesBlocks) {
#if defined(CELERIAC_SANITIZED)
  GTEST_SKIP() << "sanitizer builds turn the block cache off";
#endif
  ThreadPool pool(1);
  // On the pool's only worker, tasks are created and freed on the same
  // thread: after a warm-up round the block cache serves every one.
  const long allocs = pool.submit([&pool] {
                            auto round = [&pool] {
                              celeriac::exec::TaskGroup g(pool);
                              for (int i = 0; i < 100; ++i) g.run([] {});
                              g.wait();
                            };
                            round();
                            return allocations_of(round);
                          })
                          .result(10s);
  EXPECT_EQ(allocs, 0);
}
