// when_all / when_any.
#include "celeriac/futures.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using celeriac::Future;
using celeriac::Promise;

TEST(WhenAll, WaitsForEveryFutureAndKeepsOrder) {
  std::vector<Promise<int>> promises(3);
  std::vector<Future<int>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  auto all = celeriac::when_all(futures);
  promises[2].set_value(2);
  promises[0].set_value(0);
  EXPECT_FALSE(all.done());
  promises[1].set_exception(std::make_exception_ptr(std::runtime_error("one failed")));
  auto done = all.result();
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0].result(), 0);
  EXPECT_THROW(done[1].result(), std::runtime_error);
  EXPECT_EQ(done[2].result(), 2);
}

TEST(WhenAll, EmptyIsReadyAtOnce) {
  auto all = celeriac::when_all(std::vector<Future<int>>{});
  EXPECT_TRUE(all.done());
  EXPECT_TRUE(all.result().empty());
}

TEST(WhenAll, CountsCancelledFuturesAsDone) {
  Promise<int> a;
  auto all =
      celeriac::when_all(std::vector<Future<int>>{a.get_future(), celeriac::make_ready_future(1)});
  a.get_future().cancel();
  ASSERT_TRUE(all.done());
  EXPECT_TRUE(all.result()[0].cancelled());
}

TEST(WhenAll, VariadicMixesTypes) {
  Promise<std::string> s;
  Promise<void> v;
  auto all = celeriac::when_all(celeriac::make_ready_future(1), s.get_future(), v.get_future());
  s.set_value("two");
  EXPECT_FALSE(all.done());
  v.set_value();
  auto [a, b, c] = all.result();
  EXPECT_EQ(a.result(), 1);
  EXPECT_EQ(b.result(), "two");
  EXPECT_TRUE(c.done());
}

TEST(WhenAll, FromManyThreads) {
  constexpr int kCount = 64;
  std::vector<Promise<int>> promises(kCount);
  std::vector<Future<int>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  auto all = celeriac::when_all(futures);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCount; ++i) threads.emplace_back([&, i] { promises[i].set_value(i); });
  int sum = 0;
  for (auto& f : all.result()) sum += f.result();
  for (auto& t : threads) t.join();
  EXPECT_EQ(sum, kCount * (kCount - 1) / 2);
}

TEST(WhenAny, ReportsTheFirstToFinish) {
  std::vector<Promise<int>> promises(3);
  std::vector<Future<int>> futures;
  for (auto& p : promises) futures.push_back(p.get_future());
  auto any = celeriac::when_any(futures);
  EXPECT_FALSE(any.done());
  promises[1].set_value(10);
  promises[0].set_value(20);
  auto r = any.result();
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.futures[r.index].result(), 10);
  EXPECT_EQ(r.futures.size(), 3u);
}

TEST(WhenAny, AFailureAlsoCounts) {
  Promise<int> a;
  auto any = celeriac::when_any(std::vector<Future<int>>{a.get_future()});
  a.set_exception(std::make_exception_ptr(std::runtime_error("x")));
  auto r = any.result();
  EXPECT_THROW(r.futures[0].result(), std::runtime_error);
}

TEST(WhenAny, EmptyInputIsAnError) {
  auto any = celeriac::when_any(std::vector<Future<int>>{});
  EXPECT_THROW(any.result(), celeriac::InvalidStateError);
}
