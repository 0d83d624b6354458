// ThreadPool::map: order, laziness, exceptions, timeouts, chunks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/exec.hpp"

using namespace std::chrono_literals;
using celeriac::exec::ThreadPool;

TEST(Map, ResultsInInputOrder) {
  ThreadPool pool(3);
  std::vector<int> in(200);
  for (int i = 0; i < 200; ++i) in[i] = i;
  auto results = pool.map(
      [](int x) {
        if (x % 7 == 0) std::this_thread::sleep_for(50us);  // finish out of order
        return x * 2;
      },
      in);
  int expect = 0;
  for (int r : results) {
    EXPECT_EQ(r, expect * 2);
    ++expect;
  }
  EXPECT_EQ(expect, 200);
}

TEST(Map, ChunksizeAndNonVectorInput) {
  ThreadPool pool(2);
  std::list<std::string> words{"a", "bb", "ccc", "dddd", "eeeee"};
  for (std::size_t chunk : {1u, 2u, 3u, 10u}) {
    auto v = pool.map([](const std::string& s) { return s.size(); }, words, chunk).to_vector();
    EXPECT_EQ(v, (std::vector<std::size_t>{1, 2, 3, 4, 5})) << "chunksize " << chunk;
  }
  EXPECT_THROW(pool.map([](int x) { return x; }, std::vector<int>{1}, 0), std::invalid_argument);
}

TEST(Map, EmptyInput) {
  ThreadPool pool(2);
  auto r = pool.map([](int x) { return x; }, std::vector<int>{});
  EXPECT_EQ(r.begin(), r.end());
}

TEST(Map, SubmitsEagerlyYieldsLazily) {
  ThreadPool pool(2);
  std::atomic<int> calls{0};
  std::atomic<bool> release{false};
  auto results = pool.map(
      [&](int x) {
        calls.fetch_add(1);
        if (x == 0) {
          auto until = std::chrono::steady_clock::now() + 20s;
          while (!release && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(100us);
        }
        return x;
      },
      std::vector<int>{0, 1, 2, 3});
  // Every call is under way before anyone iterates (Python submits eagerly) ...
  auto until = std::chrono::steady_clock::now() + 20s;
  while (calls.load() < 4 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(100us);
  EXPECT_EQ(calls.load(), 4);
  // ... but the first element is not available until its call finishes.
  std::thread releaser([&] {
    std::this_thread::sleep_for(10ms);
    release = true;
  });
  std::vector<int> got;
  for (int x : results) got.push_back(x);
  releaser.join();
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
}

TEST(Map, ExceptionRaisedWhenItsElementIsReached) {
  ThreadPool pool(2);
  auto results = pool.map(
      [](int x) {
        if (x == 2) throw std::domain_error("bad input 2");
        return x;
      },
      std::vector<int>{0, 1, 2, 3});
  auto it = results.begin();
  EXPECT_EQ(*it, 0);
  ++it;
  EXPECT_EQ(*it, 1);
  EXPECT_THROW(++it, std::domain_error);
}

TEST(Map, TimeoutFromTheCallToMap) {
  ThreadPool pool(1);
  std::atomic<bool> release{false};
  auto results = pool.map(
      [&](int x) {
        auto until = std::chrono::steady_clock::now() + 20s;
        while (x == 1 && !release && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(100us);
        return x;
      },
      std::vector<int>{0, 1, 2}, 20ms);
  auto it = results.begin();
  EXPECT_EQ(*it, 0);
  EXPECT_THROW(++it, celeriac::TimeoutError);
  release = true;
}

TEST(Map, DestroyingTheResultsCancelsPendingCalls) {
  ThreadPool pool(1);
  std::atomic<bool> release{false};
  std::atomic<int> calls{0};
  {
    auto results = pool.map(
        [&](int x) {
          calls.fetch_add(1);
          auto until = std::chrono::steady_clock::now() + 20s;
          while (x == 0 && !release && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(100us);
          return x;
        },
        std::vector<int>{0, 1, 2, 3, 4});
    auto until = std::chrono::steady_clock::now() + 20s;
    while (calls.load() == 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100us);
  }  // results dropped while the first call still runs
  release = true;
  pool.shutdown(true);
  EXPECT_EQ(calls.load(), 1);
}

TEST(Map, AfterShutdownThrows) {
  ThreadPool pool(1);
  pool.shutdown();
  EXPECT_THROW(pool.map([](int x) { return x; }, std::vector<int>{1, 2}), celeriac::BrokenExecutor);
}
