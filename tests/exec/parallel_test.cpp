// parallel_for / parallel_for_each / parallel_reduce.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <deque>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "celeriac/exec.hpp"

using celeriac::exec::InlineExecutor;
using celeriac::exec::parallel_for;
using celeriac::exec::parallel_for_each;
using celeriac::exec::parallel_reduce;
using celeriac::exec::ThreadPool;

TEST(ParallelFor, VisitsEveryIndexOnce) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> hits(100000);
  parallel_for(pool, 0, 100000, [&](int i) { hits[i].fetch_add(1); });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  // With a grain and a non-zero start.
  std::vector<int> v(1000, 0);
  parallel_for(
      pool, std::size_t{10}, std::size_t{1000}, [&](std::size_t i) { v[i] = 1; }, 64);
  EXPECT_EQ(std::accumulate(v.begin(), v.end(), 0), 990);
}

TEST(ParallelFor, EmptyAndReversedRangesDoNothing) {
  ThreadPool pool(2);
  int calls = 0;
  parallel_for(pool, 5, 5, [&](int) { ++calls; });
  parallel_for(pool, 5, 3, [&](int) { ++calls; });
  InlineExecutor ex;
  parallel_for(ex, 0, 0, [&](int) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ParallelFor, ExceptionPropagatesToCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(parallel_for(pool, 0, 10000,
                            [](int i) {
                              if (i == 7777) throw std::out_of_range("7777");
                            }),
               std::out_of_range);
  // The pool is fine afterwards.
  std::atomic<int> n{0};
  parallel_for(pool, 0, 100, [&](int) { n.fetch_add(1); });
  EXPECT_EQ(n.load(), 100);
}

TEST(ParallelFor, NestedInsideATaskAndOnOneThread) {
  ThreadPool pool(1);
  auto f = pool.submit([&pool] {
    std::atomic<long> s{0};
    parallel_for(pool, 0, 1000, [&](int i) { s.fetch_add(i); });
    return s.load();
  });
  EXPECT_EQ(f.result(), 999L * 1000 / 2);
}

TEST(ParallelFor, OnOtherExecutors) {
  InlineExecutor ex;
  std::vector<int> v(1000, 0);
  parallel_for(ex, 0, 1000, [&](int i) { v[i] = i; });
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(v[i], i);
  ThreadPool pool(2);
  celeriac::exec::Strand strand(pool);
  std::vector<int> w(500, 0);
  parallel_for(
      strand, 0, 500, [&](int i) { w[i] = 2 * i; }, 7);
  for (int i = 0; i < 500; ++i) ASSERT_EQ(w[i], 2 * i);
  EXPECT_THROW(parallel_for(ex, 0, 10,
                            [](int i) {
                              if (i == 3) throw std::runtime_error("inline 3");
                            }),
               std::runtime_error);
  pool.shutdown();
  EXPECT_THROW(parallel_for(strand, 0, 10, [](int) {}), celeriac::BrokenExecutor);
}

TEST(ParallelForEach, MutatesEveryElement) {
  ThreadPool pool(2);
  std::vector<double> v(5000, 2.0);
  parallel_for_each(pool, v, [](double& x) { x *= x; });
  for (double x : v) ASSERT_EQ(x, 4.0);
}

TEST(ParallelReduce, SumOfSqrtMatchesSerial) {
  ThreadPool pool(2);
  std::vector<double> v(100000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  double serial = 0;
  for (double x : v) serial += std::sqrt(x);
  double par = parallel_reduce(
      pool, v, 0.0, [](double x) { return std::sqrt(x); }, std::plus<>{});
  EXPECT_NEAR(par, serial, 1e-6 * serial);
}

TEST(ParallelReduce, EmptyRangeGivesIdentity) {
  ThreadPool pool(2);
  std::vector<int> v;
  EXPECT_EQ(parallel_reduce(
                pool, v, 17, [](int x) { return x; }, std::plus<>{}),
            17);
}

TEST(ParallelReduce, NonCommutativeReduceKeepsOrder) {
  ThreadPool pool(3);
  std::vector<int> v(3000);
  std::iota(v.begin(), v.end(), 0);
  auto s = parallel_reduce(
      pool, v, std::string{}, [](int x) { return std::to_string(x % 10); },
      [](std::string a, const std::string& b) { return a + b; }, 16);
  std::string expect;
  for (int x : v) expect += std::to_string(x % 10);
  EXPECT_EQ(s, expect);
}

TEST(ParallelReduce, ExceptionPropagates) {
  ThreadPool pool(2);
  std::vector<int> v(10000, 1);
  v[9000] = -1;
  EXPECT_THROW(parallel_reduce(
                   pool, v, 0,
                   [](int x) {
                     if (x < 0) throw std::invalid_argument("negative");
                     return x;
                   },
                   std::plus<>{}),
               std::invalid_argument);
}

// Any sized random-access range, not only contiguous ones. (Not an iota
// view: clang 14 cannot compile libstdc++ 12's iota_view at all.)
TEST(ParallelReduce, OverANonContiguousRange) {
  ThreadPool pool(2);
  std::deque<long> r;
  for (long i = 0; i <= 100000; ++i) r.push_back(i);
  EXPECT_EQ(parallel_reduce(
                pool, r, 0L, [](long x) { return x; }, std::plus<>{}),
            100000L * 100001 / 2);
}
