// Future<T>: Python's concurrent.futures.Future contract.
#include "celeriac/futures.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using celeriac::CancelledError;
using celeriac::Future;
using celeriac::InvalidStateError;
using celeriac::Promise;
using celeriac::TimeoutError;

TEST(Future, DefaultConstructedIsInvalidAndSaysSo) {
  Future<int> f;
  EXPECT_FALSE(f.valid());
  EXPECT_THROW(f.done(), InvalidStateError);
  EXPECT_THROW(f.result(), InvalidStateError);
  EXPECT_THROW(f.cancel(), InvalidStateError);
  try {
    f.wait();
    FAIL() << "wait() on an invalid future must throw";
  } catch (const InvalidStateError& e) {
    EXPECT_NE(std::string(e.what()).find("no state"), std::string::npos) << e.what();
  }
}

TEST(Future, PendingStatusQueries) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(f.valid());
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.cancelled());
}

TEST(Future, RunningAfterSetRunningAndNotCancellable) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(p.set_running_or_notify_cancel());
  EXPECT_TRUE(f.running());
  EXPECT_FALSE(f.cancel());
  EXPECT_FALSE(f.cancelled());
  p.set_value(1);
  EXPECT_FALSE(f.running());
  EXPECT_EQ(f.result(), 1);
}

TEST(Future, ResultReturnsValueAcrossThreads) {
  Promise<std::string> p;
  auto f = p.get_future();
  std::thread producer([&] {
    std::this_thread::sleep_for(5ms);
    p.set_value("hello");
  });
  EXPECT_EQ(f.result(), "hello");
  EXPECT_TRUE(f.done());
  producer.join();
}

TEST(Future, ResultRethrowsTheCallsExceptionWithItsType) {
  Promise<int> p;
  auto f = p.get_future();
  std::thread producer(
      [&] { p.set_exception(std::make_exception_ptr(std::out_of_range("index 7"))); });
  producer.join();
  try {
    f.result();
    FAIL() << "expected out_of_range";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "index 7");
  }
  // exception() returns it without throwing.
  auto e = f.exception();
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), std::out_of_range);
}

TEST(Future, ExceptionIsNullOnSuccess) {
  auto f = celeriac::make_ready_future(3);
  EXPECT_EQ(f.exception(), nullptr);
  EXPECT_EQ(f.exception(1ms), nullptr);
}

TEST(Future, ResultWithTimeoutThrowsTimeoutError) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_THROW(f.result(10ms), TimeoutError);
  EXPECT_THROW(f.exception(10ms), TimeoutError);
  EXPECT_FALSE(f.wait_for(1ms));
  p.set_value(4);
  EXPECT_EQ(f.result(10ms), 4);
  EXPECT_TRUE(f.wait_for(0ms));
}

TEST(Future, WaitUntilPastDeadlineReturnsFalseAtOnce) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_FALSE(f.wait_until(std::chrono::steady_clock::now() - 1s));
  EXPECT_FALSE(f.wait_until(std::chrono::system_clock::now() + 1ms));
}

TEST(Future, CancelSucceedsOnlyWhilePending) {
  Promise<int> p;
  auto f = p.get_future();
  EXPECT_TRUE(f.cancel());
  EXPECT_TRUE(f.cancelled());
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(f.cancel()) << "cancelling twice still reports cancelled, as Python";
  // The producer learns of it and must skip the work.
  EXPECT_FALSE(p.set_running_or_notify_cancel());
  EXPECT_FALSE(p.try_set_value(1));
  EXPECT_THROW(p.set_value(1), InvalidStateError);

  auto done = celeriac::make_ready_future(1);
  EXPECT_FALSE(done.cancel());
  EXPECT_FALSE(done.cancelled());
}

TEST(Future, ResultAfterCancelThrowsCancelledError) {
  Promise<int> p;
  auto f = p.get_future();
  f.cancel();
  EXPECT_THROW(f.result(), CancelledError);
  EXPECT_THROW(f.result(1s), CancelledError);
  EXPECT_THROW(f.exception(), CancelledError);
}

TEST(Future, CancelWakesABlockedWaiter) {
  Promise<int> p;
  auto f = p.get_future();
  std::atomic<bool> threw{false};
  std::thread waiter([&] {
    try {
      f.result();
    } catch (const CancelledError&) {
      threw = true;
    }
  });
  std::this_thread::sleep_for(10ms);
  f.cancel();
  waiter.join();
  EXPECT_TRUE(threw);
}

TEST(Future, ManyWaitersAllWakeOnCompletion) {
  Promise<int> p;
  auto f = p.get_future();
  std::atomic<int> sum{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 8; ++i) waiters.emplace_back([&, f] { sum += f.result(); });
  std::this_thread::sleep_for(5ms);
  p.set_value(5);
  for (auto& t : waiters) t.join();
  EXPECT_EQ(sum.load(), 40);
}

TEST(Future, VoidFuture) {
  Promise<void> p;
  auto f = p.get_future();
  EXPECT_FALSE(f.done());
  p.set_value();
  f.result();
  EXPECT_TRUE(f.done());
  EXPECT_THROW(p.set_value(), InvalidStateError);

  Promise<void> failing;
  auto g = failing.get_future();
  failing.set_exception(std::make_exception_ptr(std::runtime_error("void failed")));
  EXPECT_THROW(g.result(), std::runtime_error);
}

TEST(Future, RvalueResultMovesOutMoveOnlyValue) {
  Promise<std::unique_ptr<int>> p;
  auto f = p.get_future();
  p.set_value(std::make_unique<int>(9));
  std::unique_ptr<int> v = std::move(f).result();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 9);
}

TEST(Future, RvalueResultCopiesWhenStateIsShared) {
  Promise<std::string> p;
  auto f = p.get_future();
  auto other = f;
  p.set_value("shared");
  std::string moved = std::move(f).result();
  EXPECT_EQ(moved, "shared");
  EXPECT_EQ(other.result(), "shared") << "another holder must still see the value";
}

TEST(Future, CopiesCompareEqual) {
  Promise<int> p;
  auto a = p.get_future();
  auto b = a;
  auto c = p.get_future();
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, c);
  EXPECT_FALSE(a == celeriac::make_ready_future(1));
}

TEST(DoneCallback, RunsOnCompletionWithTheFuture) {
  Promise<int> p;
  auto f = p.get_future();
  int seen = 0;
  f.add_done_callback([&](Future<int> done) { seen = done.result(); });
  EXPECT_EQ(seen, 0);
  p.set_value(11);
  EXPECT_EQ(seen, 11);
}

TEST(DoneCallback, AddedAfterCompletionRunsAtOnce) {
  auto f = celeriac::make_ready_future(std::string("x"));
  bool ran = false;
  f.add_done_callback([&] { ran = true; });
  EXPECT_TRUE(ran);
}

TEST(DoneCallback, RunInTheOrderAdded) {
  Promise<int> p;
  auto f = p.get_future();
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) f.add_done_callback([&order, i] { order.push_back(i); });
  p.set_value(0);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(DoneCallback, RunOnCancellation) {
  Promise<int> p;
  auto f = p.get_future();
  bool saw_cancelled = false;
  f.add_done_callback([&](Future<int> done) { saw_cancelled = done.cancelled(); });
  f.cancel();
  EXPECT_TRUE(saw_cancelled);
}

TEST(DoneCallback, AThrowingCallbackDoesNotStopTheOthers) {
  Promise<int> p;
  auto f = p.get_future();
  bool second_ran = false;
  f.add_done_callback([] { throw std::runtime_error("callback failure (expected in this test)"); });
  f.add_done_callback([&] { second_ran = true; });
  p.set_value(1);
  EXPECT_TRUE(second_ran);
  EXPECT_EQ(f.result(), 1);
}

TEST(DoneCallback, NeverRunWhenTheFutureIsAbandonedUnfinished) {
  auto counter = std::make_shared<int>(0);
  {
    celeriac::futures::detail::StatePtr<int> state = celeriac::futures::detail::make_state<int>();
    Future<int> f(state);
    f.add_done_callback([counter] { ++*counter; });
    EXPECT_EQ(counter.use_count(), 2);
  }
  EXPECT_EQ(*counter, 0);
  EXPECT_EQ(counter.use_count(), 1) << "the callback must be freed with the state";
}

TEST(DoneCallback, RacingAddAndCompleteRunsEveryCallbackExactlyOnce) {
  for (int round = 0; round < 200; ++round) {
    Promise<int> p;
    auto f = p.get_future();
    std::atomic<int> calls{0};
    std::thread adder([&] {
      for (int i = 0; i < 20; ++i) f.add_done_callback([&] { ++calls; });
    });
    p.set_value(round);
    adder.join();
    EXPECT_EQ(calls.load(), 20);
  }
}

TEST(ReadyFutures, MakeReadyAndExceptional) {
  auto a = celeriac::make_ready_future(std::vector<int>{1, 2});
  EXPECT_TRUE(a.done());
  EXPECT_EQ(a.result().size(), 2u);
  auto v = celeriac::make_ready_future();
  EXPECT_TRUE(v.done());
  auto e =
      celeriac::make_exceptional_future<double>(std::make_exception_ptr(std::logic_error("bad")));
  EXPECT_TRUE(e.done());
  EXPECT_THROW(e.result(), std::logic_error);
}
