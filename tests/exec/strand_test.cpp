// Strand: order and mutual exclusion on a pool and on InlineExecutor.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "celeriac/exec.hpp"

using namespace std::chrono_literals;
using celeriac::exec::InlineExecutor;
using celeriac::exec::Strand;
using celeriac::exec::ThreadPool;

TEST(Strand, RunsInOrderOneAtATime) {
  ThreadPool pool(4);
  Strand strand(pool);
  std::vector<int> order;  // no lock: the strand serialises access
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  for (int i = 0; i < 5000; ++i) {
    strand.post([&, i] {
      if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
      order.push_back(i);
      inside.fetch_sub(1);
    });
  }
  auto last = strand.submit([&] { return order.size(); });
  EXPECT_EQ(last.result(30s), 5000u);
  EXPECT_EQ(overlaps.load(), 0);
  for (int i = 0; i < 5000; ++i) ASSERT_EQ(order[i], i);
}

TEST(Strand, MutualExclusionWithManyProducers) {
  ThreadPool pool(3);
  Strand strand(pool);
  long counter = 0;  // plain, guarded only by the strand (TSan checks this)
  std::atomic<int> inside{0}, overlaps{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      int last = -1;
      for (int i = 0; i < 2000; ++i) {
        strand.post([&, p, last]() mutable {
          if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
          ++counter;
          (void)p;
          (void)last;
          inside.fetch_sub(1);
        });
        last = i;
      }
    });
  }
  for (auto& t : producers) t.join();
  EXPECT_EQ(strand.submit([&] { return counter; }).result(30s), 8000);
  EXPECT_EQ(overlaps.load(), 0);
}

TEST(Strand, PerProducerOrderIsKept) {
  ThreadPool pool(2);
  Strand strand(pool);
  std::vector<int> last(3, -1);
  std::atomic<int> bad{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < 2000; ++i)
        strand.post([&, p, i] {
          if (last[p] != i - 1) bad.fetch_add(1);
          last[p] = i;
        });
    });
  for (auto& t : producers) t.join();
  strand.submit([] {}).result(30s);
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(last, (std::vector<int>{1999, 1999, 1999}));
}

TEST(Strand, SubmitResultsExceptionsAndRunningInThisThread) {
  ThreadPool pool(2);
  Strand strand(pool);
  EXPECT_FALSE(strand.running_in_this_thread());
  EXPECT_TRUE(strand.submit([&] { return strand.running_in_this_thread(); }).result(5s));
  auto f = strand.submit([](int x) -> int { throw std::invalid_argument(std::to_string(x)); }, 5);
  EXPECT_THROW(f.result(5s), std::invalid_argument);
  testing::internal::CaptureStderr();
  strand.post([] { throw std::runtime_error("strand post boom"); });
  EXPECT_EQ(strand.submit([] { return 1; }).result(5s), 1);  // still works
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("strand post boom"), std::string::npos);
  EXPECT_EQ(&strand.executor(), &pool);
}

TEST(Strand, CopiesShareTheQueue) {
  ThreadPool pool(2);
  Strand a(pool);
  Strand b = a;
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) (i % 2 ? a : b).post([&order, i] { order.push_back(i); });
  a.submit([] {}).result(5s);
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(Strand, OnInlineExecutor) {
  InlineExecutor inline_ex;
  Strand strand(inline_ex);
  std::vector<int> order;
  strand.post([&] {
    order.push_back(1);
    strand.post([&] { order.push_back(3); });  // queued, runs after this one
    order.push_back(2);
  });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(Strand, ExecutorRefusesAfterShutdown) {
  ThreadPool pool(1);
  Strand strand(pool);
  pool.shutdown();
  EXPECT_THROW(strand.post([] {}), celeriac::BrokenExecutor);
}

TEST(InlineExecutor, RunsAtOnceAndSubmitIsReady) {
  InlineExecutor ex;
  int x = 0;
  ex.post([&x] { x = 5; });
  EXPECT_EQ(x, 5);
  auto f = ex.submit([](int a) { return a * 3; }, 4);
  EXPECT_TRUE(f.done());
  EXPECT_EQ(f.result(), 12);
  auto g = ex.submit([]() -> int { throw std::runtime_error("inline"); });
  EXPECT_TRUE(g.done());
  EXPECT_THROW(g.result(), std::runtime_error);
  EXPECT_THROW(ex.post([] { throw std::logic_error("propagates"); }), std::logic_error);
  // then() on an InlineExecutor runs on the completing thread.
  auto h = celeriac::make_ready_future(2).then(ex, [](int v) { return v + 1; });
  EXPECT_EQ(h.result(), 3);
}
