// Queue<T>: Python's queue.Queue contract, plus closing (Python 3.13's shutdown).
#include "celeriac/sync/queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using celeriac::InvalidStateError;
using celeriac::sync::Empty;
using celeriac::sync::Full;
using celeriac::sync::Queue;
using celeriac::sync::QueueClosed;

namespace {

template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST(Queue, FifoOrderAndSizes) {
  Queue<int> q(3);
  EXPECT_EQ(q.maxsize(), 3u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put(1);
  q.put_nowait(2);
  EXPECT_TRUE(q.try_put(3));
  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_EQ(q.try_get(), std::optional<int>(3));
  EXPECT_TRUE(q.empty());
}

TEST(Queue, UnboundedIsNeverFull) {
  Queue<int> q;
  EXPECT_EQ(q.maxsize(), 0u);
  for (int i = 0; i < 10000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.qsize(), 10000u);
  for (int i = 0; i < 10000; ++i) ASSERT_EQ(q.get(), i);
}

TEST(Queue, NowaitFormsThrowFullAndEmpty) {
  Queue<int> q(1);
  EXPECT_NE(message_of<Empty>([&] { q.get_nowait(); }).find("empty"), std::string::npos);
  q.put(1);
  EXPECT_NE(message_of<Full>([&] { q.put_nowait(2); }).find("full (maxsize 1)"), std::string::npos);
  EXPECT_FALSE(q.try_put(2));
  EXPECT_EQ(q.qsize(), 1u);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.try_get(), std::nullopt);
}

TEST(Queue, ErrorsDeriveFromCeleriacError) {
  Queue<int> q(1);
  EXPECT_THROW(q.get_nowait(), celeriac::Error);
  q.put(1);
  EXPECT_THROW(q.put_nowait(1), celeriac::Error);
  q.close();
  EXPECT_THROW(q.put(1), celeriac::Error);
}

TEST(Queue, TimedFormsTimeOut) {
  Queue<int> q(1);
  EXPECT_THROW(q.get(10ms), Empty);
  EXPECT_EQ(q.try_get_for(10ms), std::nullopt);
  EXPECT_EQ(q.try_get_until(std::chrono::system_clock::now() + 10ms), std::nullopt);
  EXPECT_EQ(q.try_get_for(0ms), std::nullopt);
  q.put(7);
  EXPECT_THROW(q.put(8, 10ms), Full);
  EXPECT_FALSE(q.try_put_for(8, 10ms));
  EXPECT_FALSE(q.try_put_until(8, std::chrono::steady_clock::now() + 10ms));
  EXPECT_FALSE(q.try_put_for(8, -1s));
  EXPECT_EQ(q.get(10ms), 7);
  q.put(9, 10ms);
  EXPECT_EQ(q.try_get_for(std::chrono::hours::max()), std::optional<int>(9));
}

TEST(Queue, BlockedGetWakesOnPut) {
  Queue<std::string> q;
  std::jthread producer([&] {
    std::this_thread::sleep_for(20ms);
    q.put("hello");
  });
  EXPECT_EQ(q.get(), "hello");
}

TEST(Queue, BlockedPutWakesOnGet) {
  Queue<int> q(1);
  q.put(1);
  std::atomic<bool> second_put_done{false};
  std::jthread producer([&] {
    q.put(2);
    second_put_done = true;
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.get(30s), 2);
  producer.join();
  EXPECT_TRUE(second_put_done);
}

TEST(Queue, MoveOnlyItems) {
  Queue<std::unique_ptr<int>> q(1);
  q.put(std::make_unique<int>(5));
  auto extra = std::make_unique<int>(6);
  EXPECT_FALSE(q.try_put(std::move(extra)));
  ASSERT_NE(extra, nullptr) << "a failed try_put must leave its argument untouched";
  EXPECT_FALSE(q.try_put_for(std::move(extra), 1ms));
  ASSERT_NE(extra, nullptr);
  EXPECT_THROW(q.put_nowait(std::move(extra)), Full);
  ASSERT_NE(extra, nullptr);
  EXPECT_EQ(*q.get(), 5);
  EXPECT_TRUE(q.try_put(std::move(extra)));
  EXPECT_EQ(extra, nullptr);
  auto got = q.try_get();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(**got, 6);
}

TEST(Queue, BracedAndConvertingPuts) {
  Queue<std::pair<int, std::string>> pairs;
  pairs.put({1, "one"});
  pairs.put({2, "two"}, 1s);
  EXPECT_EQ(pairs.get().second, "one");
  EXPECT_EQ(pairs.get().first, 2);
  Queue<std::string> strings;
  strings.put("literal");
  const std::string lvalue = "copied";
  strings.put(lvalue);
  EXPECT_EQ(lvalue, "copied");
  EXPECT_EQ(strings.get(), "literal");
  EXPECT_EQ(strings.get(), "copied");
}

TEST(Queue, ClosedQueueRefusesPutsButDrains) {
  Queue<int> q;
  q.put(1);
  q.put(2);
  EXPECT_FALSE(q.closed());
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_NE(message_of<QueueClosed>([&] { q.put(3); }).find("closed"), std::string::npos);
  EXPECT_THROW(q.put_nowait(3), QueueClosed);
  EXPECT_THROW(q.try_put(3), QueueClosed);
  EXPECT_THROW(q.try_put_for(3, 1s), QueueClosed);
  EXPECT_THROW(q.put(3, 1s), QueueClosed);
  EXPECT_EQ(q.get(), 1);
  EXPECT_EQ(q.try_get(), std::optional<int>(2));
  EXPECT_THROW(q.get(), QueueClosed);
  EXPECT_THROW(q.get_nowait(), QueueClosed);
  EXPECT_THROW(q.try_get(), QueueClosed);
  EXPECT_THROW(q.try_get_for(1s), QueueClosed);
  EXPECT_THROW(q.get(1s), QueueClosed);
  q.close();  // idempotent
  EXPECT_TRUE(q.closed());
}

TEST(Queue, CloseWakesBlockedProducersAndConsumers) {
  Queue<int> full_queue(1);
  full_queue.put(0);
  Queue<int> empty_queue(1);
  std::atomic<int> producers_closed{0};
  std::atomic<int> consumers_closed{0};
  auto expect_closed = [](std::atomic<int>& counter, auto op) {
    return [&counter, op] {
      try {
        op();
      } catch (const QueueClosed&) {
        ++counter;
      }
    };
  };
  std::vector<std::jthread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back(expect_closed(producers_closed, [&] { full_queue.put(1); }));
    threads.emplace_back(expect_closed(producers_closed, [&] { full_queue.put(1, 60s); }));
    threads.emplace_back(
        expect_closed(producers_closed, [&] { (void)full_queue.try_put_for(1, 60s); }));
    threads.emplace_back(expect_closed(consumers_closed, [&] { (void)empty_queue.get(); }));
    threads.emplace_back(expect_closed(consumers_closed, [&] { (void)empty_queue.get(60s); }));
    threads.emplace_back(
        expect_closed(consumers_closed, [&] { (void)empty_queue.try_get_for(60s); }));
  }
  std::this_thread::sleep_for(30ms);  // let them block (either way they must end closed)
  full_queue.close();
  empty_queue.close();
  threads.clear();  // joins: a missed wake-up would hang here
  EXPECT_EQ(producers_closed.load(), 6);
  EXPECT_EQ(consumers_closed.load(), 6);
  EXPECT_EQ(full_queue.get(), 0) << "the item queued before close() is still delivered";
  EXPECT_THROW(full_queue.get(), QueueClosed);
}

TEST(Queue, ImmediateCloseDiscardsItemsAndReleasesJoin) {
  Queue<int> q;
  for (int i = 0; i < 5; ++i) q.put(i);
  EXPECT_EQ(q.get(), 0);  // taken but not yet done
  EXPECT_EQ(q.unfinished_tasks(), 5u);
  std::atomic<bool> joined{false};
  std::jthread joiner([&] {
    q.join();
    joined = true;
  });
  q.close(true);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.unfinished_tasks(), 1u) << "the item taken before close still counts";
  EXPECT_THROW(q.get_nowait(), QueueClosed);
  EXPECT_FALSE(joined.load());
  q.task_done();
  joiner.join();
  EXPECT_TRUE(joined.load());
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

TEST(Queue, TaskDoneAndJoin) {
  Queue<int> q;
  q.join();  // nothing put: returns at once
  EXPECT_TRUE(q.join_for(0ms));
  q.put(1);
  q.put(2);
  EXPECT_EQ(q.unfinished_tasks(), 2u);
  EXPECT_FALSE(q.join_for(10ms));
  EXPECT_FALSE(q.join_until(std::chrono::system_clock::now() + 10ms));
  std::jthread consumer([&] {
    for (int i = 0; i < 2; ++i) {
      (void)q.get();
      std::this_thread::sleep_for(5ms);
      q.task_done();
    }
  });
  q.join();
  EXPECT_EQ(q.unfinished_tasks(), 0u);
  EXPECT_TRUE(q.join_for(0ms));
  EXPECT_TRUE(q.join_until(std::chrono::steady_clock::now()));
}

TEST(Queue, TaskDoneTooOftenIsAnError) {
  Queue<int> q;
  EXPECT_NE(message_of<InvalidStateError>([&] { q.task_done(); }).find("task_done"),
            std::string::npos);
  q.put(1);
  (void)q.get();
  q.task_done();
  EXPECT_THROW(q.task_done(), InvalidStateError);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

TEST(Queue, JoinOnClosedQueueStillWaitsForUnfinishedWork) {
  Queue<int> q;
  q.put(1);
  q.close();
  EXPECT_FALSE(q.join_for(10ms));
  EXPECT_EQ(q.get(), 1);
  q.task_done();
  EXPECT_TRUE(q.join_for(30s));
}
