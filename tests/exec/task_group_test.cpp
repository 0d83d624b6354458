// TaskGroup: fork-join, helping waits, exceptions, cancellation.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "celeriac/exec.hpp"
#include "celeriac/sync/event.hpp"

using namespace std::chrono_literals;
using celeriac::exec::TaskGroup;
using celeriac::exec::ThreadPool;

namespace {
long fib(ThreadPool& pool, int n) {
  if (n < 2) return n;
  long x = 0;
  TaskGroup g(pool);
  g.run([&] { x = fib(pool, n - 1); });
  long y = fib(pool, n - 2);
  g.wait();
  return x + y;
}
}  // namespace

TEST(TaskGroup, RecursiveFibOnThePool) {
  ThreadPool pool(2);
  EXPECT_EQ(pool.submit([&] { return fib(pool, 20); }).result(30s), 6765);
}

TEST(TaskGroup, RecursiveFibOnOneThreadPool) {
  ThreadPool pool(1);
  EXPECT_EQ(pool.submit([&] { return fib(pool, 15); }).result(30s), 610);
}

TEST(TaskGroup, RunAndWaitFromOutsideThePool) {
  ThreadPool pool(2);
  std::atomic<int> n{0};
  TaskGroup g(pool);
  for (int i = 0; i < 1000; ++i) g.run([&n] { n.fetch_add(1); });
  g.wait();
  EXPECT_EQ(n.load(), 1000);
  EXPECT_EQ(g.pending(), 0u);
  // Reusable.
  g.run([&n] { n.fetch_add(1); });
  g.wait();
  EXPECT_EQ(n.load(), 1001);
}

TEST(TaskGroup, ChildrenMaySpawnSiblings) {
  ThreadPool pool(2);
  std::atomic<int> n{0};
  TaskGroup g(pool);
  for (int i = 0; i < 10; ++i)
    g.run([&] {
      for (int k = 0; k < 10; ++k) g.run([&n] { n.fetch_add(1); });
    });
  g.wait();
  EXPECT_EQ(n.load(), 100);
}

TEST(TaskGroup, FirstExceptionRethrownAndRestCancelled) {
  ThreadPool pool(1);
  std::atomic<int> ran{0};
  TaskGroup g(pool);
  g.run([] { throw std::runtime_error("child failed"); });
  for (int i = 0; i < 100; ++i) g.run([&ran] { ran.fetch_add(1); });
  EXPECT_THROW(g.wait(), std::runtime_error);
  EXPECT_LT(ran.load(), 100);  // FIFO from outside: the failure came first
  // After wait() the group is clean again.
  g.run([&ran] { ran.fetch_add(1000); });
  EXPECT_NO_THROW(g.wait());
  EXPECT_GE(ran.load(), 1000);
}

TEST(TaskGroup, ExplicitCancelSkipsPendingChildren) {
  ThreadPool pool(1);
  std::atomic<bool> release{false};
  std::atomic<int> ran{0};
  TaskGroup g(pool);
  g.run([&] {
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!release && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100us);
  });
  for (int i = 0; i < 10; ++i) g.run([&ran] { ran.fetch_add(1); });
  g.cancel();
  EXPECT_TRUE(g.is_cancelled());
  release = true;
  g.wait();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_FALSE(g.is_cancelled());
}

TEST(TaskGroup, WaitForTimesOut) {
  ThreadPool pool(1);
  std::atomic<bool> release{false};
  TaskGroup g(pool);
  g.run([&] {
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!release && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100us);
  });
  EXPECT_FALSE(g.wait_for(10ms));
  EXPECT_EQ(g.pending(), 1u);
  release = true;
  EXPECT_TRUE(g.wait_for(20s));
}

TEST(TaskGroup, RunAfterShutdownFromOutsideThrows) {
  ThreadPool pool(1);
  pool.shutdown();
  TaskGroup g(pool);
  EXPECT_THROW(g.run([] {}), celeriac::BrokenExecutor);
  EXPECT_EQ(g.pending(), 0u);
}

TEST(TaskGroup, ShutdownCancelFuturesCancelsQueuedChildren) {
  ThreadPool pool(1);
  std::atomic<bool> release{false};
  celeriac::sync::Event started;
  auto blocker = pool.submit([&] {
    started.set();
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!release && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100us);
  });
  // The only worker must be busy before shutdown, or shutdown would cancel
  // the blocker itself (it is queued like the children).
  ASSERT_TRUE(started.wait_for(10s));
  std::atomic<int> ran{0};
  TaskGroup g(pool);
  for (int i = 0; i < 5; ++i) g.run([&ran] { ran.fetch_add(1); });
  pool.shutdown(false, true);
  release = true;
  EXPECT_THROW(g.wait(), celeriac::CancelledError);
  EXPECT_EQ(ran.load(), 0);
  blocker.result(10s);
}
