// wait() and as_completed(), as in concurrent.futures.
#include "celeriac/futures.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using celeriac::Future;
using celeriac::Promise;

namespace {
std::vector<Future<int>> futures_of(std::vector<Promise<int>>& promises) {
  std::vector<Future<int>> out;
  for (auto& p : promises) out.push_back(p.get_future());
  return out;
}
}  // namespace

TEST(Wait, AllCompleted) {
  std::vector<Promise<int>> promises(3);
  auto futures = futures_of(promises);
  std::thread producer([&] {
    for (int i = 0; i < 3; ++i) promises[i].set_value(i);
  });
  auto r = celeriac::wait(futures);
  producer.join();
  EXPECT_EQ(r.done.size(), 3u);
  EXPECT_TRUE(r.not_done.empty());
}

TEST(Wait, FirstCompletedReturnsAfterOne) {
  std::vector<Promise<int>> promises(3);
  auto futures = futures_of(promises);
  promises[1].set_value(1);
  auto r = celeriac::wait(futures, celeriac::FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_EQ(r.done[0], futures[1]);
  EXPECT_EQ(r.not_done.size(), 2u);
}

TEST(Wait, FirstExceptionStopsAtAFailureNotAtASuccess) {
  std::vector<Promise<int>> promises(3);
  auto futures = futures_of(promises);
  promises[0].set_value(0);
  std::thread failer([&] {
    std::this_thread::sleep_for(5ms);
    promises[2].set_exception(std::make_exception_ptr(std::runtime_error("x")));
  });
  auto r = celeriac::wait(futures, celeriac::FIRST_EXCEPTION, 30s);
  failer.join();
  EXPECT_EQ(r.done.size(), 2u);
  EXPECT_EQ(r.not_done.size(), 1u);
  EXPECT_EQ(r.not_done[0], futures[1]);
}

TEST(Wait, FirstExceptionWithoutFailuresWaitsForAll) {
  std::vector<Promise<int>> promises(2);
  auto futures = futures_of(promises);
  promises[0].set_value(0);
  promises[1].get_future().cancel();
  auto r = celeriac::wait(futures, celeriac::FIRST_EXCEPTION, 30s);
  EXPECT_EQ(r.done.size(), 2u) << "cancellation is not an exception";
}

TEST(Wait, TimeoutReturnsWhatIsNotDone) {
  std::vector<Promise<int>> promises(2);
  auto futures = futures_of(promises);
  promises[0].set_value(0);
  auto r = celeriac::wait(futures, celeriac::ALL_COMPLETED, 20ms);
  EXPECT_EQ(r.done.size(), 1u);
  ASSERT_EQ(r.not_done.size(), 1u);
  EXPECT_EQ(r.not_done[0], futures[1]);
}

TEST(Wait, EmptyReturnsAtOnce) {
  auto r = celeriac::wait(std::vector<Future<int>>{}, celeriac::FIRST_COMPLETED);
  EXPECT_TRUE(r.done.empty());
  EXPECT_TRUE(r.not_done.empty());
}

TEST(AsCompleted, YieldsInCompletionOrderDoneFirst) {
  std::vector<Promise<int>> promises(3);
  auto futures = futures_of(promises);
  promises[2].set_value(2);
  std::thread producer([&] {
    std::this_thread::sleep_for(5ms);
    promises[0].set_value(0);
    std::this_thread::sleep_for(5ms);
    promises[1].set_value(1);
  });
  std::vector<int> order;
  for (const auto& f : celeriac::as_completed(futures)) order.push_back(f.result());
  producer.join();
  EXPECT_EQ(order, (std::vector<int>{2, 0, 1}));
}

TEST(AsCompleted, TimeoutThrowsNamingTheUnfinished) {
  std::vector<Promise<int>> promises(3);
  auto futures = futures_of(promises);
  promises[0].set_value(0);
  int yielded = 0;
  try {
    for (const auto& f : celeriac::as_completed(futures, 20ms)) {
      (void)f;
      ++yielded;
    }
    FAIL() << "expected TimeoutError";
  } catch (const celeriac::TimeoutError& e) {
    EXPECT_EQ(std::string(e.what()), "2 (of 3) futures unfinished");
  }
  EXPECT_EQ(yielded, 1);
}

TEST(AsCompleted, YieldsFailedAndCancelledFuturesToo) {
  std::vector<Promise<int>> promises(2);
  auto futures = futures_of(promises);
  promises[0].set_exception(std::make_exception_ptr(std::runtime_error("x")));
  futures[1].cancel();
  int failed = 0, cancelled = 0;
  for (const auto& f : celeriac::as_completed(futures, 5s)) {
    if (f.cancelled())
      ++cancelled;
    else if (f.exception())
      ++failed;
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(cancelled, 1);
}

TEST(AsCompleted, EmptyYieldsNothing) {
  int n = 0;
  for (const auto& f : celeriac::as_completed(std::vector<Future<int>>{})) {
    (void)f;
    ++n;
  }
  EXPECT_EQ(n, 0);
}
