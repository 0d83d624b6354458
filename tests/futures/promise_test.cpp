// Promise<T>: the producer side.
#include "celeriac/futures.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using celeriac::BrokenPromise;
using celeriac::InvalidStateError;
using celeriac::Promise;

TEST(Promise, SetValueTwiceIsInvalidState) {
  Promise<int> p;
  p.set_value(1);
  EXPECT_TRUE(p.done());
  EXPECT_THROW(p.set_value(2), InvalidStateError);
  EXPECT_FALSE(p.try_set_value(2));
  EXPECT_THROW(p.set_exception(std::make_exception_ptr(std::runtime_error("late"))),
               InvalidStateError);
  EXPECT_EQ(p.get_future().result(), 1) << "the first value wins";
}

TEST(Promise, DestroyedUnfulfilledBreaksTheFuture) {
  celeriac::Future<std::string> f;
  {
    Promise<std::string> p;
    f = p.get_future();
  }
  EXPECT_TRUE(f.done());
  EXPECT_THROW(f.result(), BrokenPromise);
}

TEST(Promise, MoveAssignAbandonsTheOverwrittenPromise) {
  Promise<int> a;
  auto fa = a.get_future();
  Promise<int> b;
  a = std::move(b);
  EXPECT_THROW(fa.result(), BrokenPromise);
  a.set_value(3);
}

TEST(Promise, MovedFromPromiseSaysSo) {
  Promise<int> a;
  Promise<int> b(std::move(a));
  EXPECT_THROW(a.get_future(), InvalidStateError);
  EXPECT_THROW(a.set_value(1), InvalidStateError);
  b.set_value(1);
}

TEST(Promise, SetRunningTwiceIsInvalidState) {
  Promise<int> p;
  EXPECT_TRUE(p.set_running_or_notify_cancel());
  EXPECT_THROW(p.set_running_or_notify_cancel(), InvalidStateError);
  p.set_value(0);
  EXPECT_THROW(p.set_running_or_notify_cancel(), InvalidStateError);
}

TEST(Promise, ValueWhoseConstructorThrowsBecomesTheError) {
  struct Explosive {
    explicit Explosive(int) { throw std::runtime_error("constructor failed"); }
  };
  Promise<Explosive> p;
  EXPECT_TRUE(p.try_set_value(1));
  EXPECT_THROW(p.get_future().result(), std::runtime_error);
}

TEST(Promise, ConcurrentSettersExactlyOneWins) {
  for (int round = 0; round < 100; ++round) {
    Promise<int> p;
    std::atomic<int> winners{0};
    std::vector<std::thread> setters;
    for (int i = 0; i < 4; ++i)
      setters.emplace_back([&, i] {
        if (p.try_set_value(i)) ++winners;
      });
    for (auto& t : setters) t.join();
    EXPECT_EQ(winners.load(), 1);
  }
}

TEST(Promise, CancelRacingSetValueLeavesOneConsistentOutcome) {
  for (int round = 0; round < 200; ++round) {
    Promise<int> p;
    auto f = p.get_future();
    bool set = false;
    std::thread setter([&] { set = p.try_set_value(1); });
    bool cancelled = f.cancel();
    setter.join();
    EXPECT_NE(set, cancelled) << "exactly one of set_value and cancel succeeds";
    EXPECT_EQ(f.cancelled(), cancelled);
  }
}
