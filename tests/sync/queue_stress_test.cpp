// Many producers and consumers on one queue: every item delivered exactly once.
#include "celeriac/sync/queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using celeriac::sync::Queue;
using celeriac::sync::QueueClosed;

namespace {

constexpr int kProducers = 4;
constexpr int kConsumers = 4;
#ifdef CELERIAC_SANITIZED
constexpr int kItemsPerProducer = 5000;
#else
constexpr int kItemsPerProducer = 25000;
#endif
constexpr int kTotal = kProducers * kItemsPerProducer;

// Producer p puts p*kItemsPerProducer .. +kItemsPerProducer-1, alternating the
// blocking and the timed form of put.
void produce(Queue<std::unique_ptr<int>>& q, int p) {
  for (int i = 0; i < kItemsPerProducer; ++i) {
    auto item = std::make_unique<int>(p * kItemsPerProducer + i);
    if (i % 2 == 0) {
      q.put(std::move(item));
    } else {
      while (!q.try_put_for(std::move(item), 1ms)) {
      }
    }
  }
}

// Counts every item it gets until the queue is closed and drained.
void consume(Queue<std::unique_ptr<int>>& q, std::vector<std::atomic<int>>& seen, int c) {
  try {
    for (int n = 0;; ++n) {
      std::unique_ptr<int> item = (c + n) % 2 == 0 ? q.get() : q.try_get_for(1ms).value_or(nullptr);
      if (!item) continue;
      seen[static_cast<std::size_t>(*item)].fetch_add(1, std::memory_order_relaxed);
      q.task_done();
    }
  } catch (const QueueClosed&) {
  }
}

// With `join_first`, waits for every item to be done before closing;
// otherwise closes as soon as the producers finish, and the consumers must
// still drain everything queued.
void run_stress(std::size_t maxsize, bool join_first) {
  Queue<std::unique_ptr<int>> q(maxsize);
  std::vector<std::atomic<int>> seen(kTotal);
  std::vector<std::jthread> consumers;
  for (int c = 0; c < kConsumers; ++c) consumers.emplace_back([&, c] { consume(q, seen, c); });
  {
    std::vector<std::jthread> producers;
    for (int p = 0; p < kProducers; ++p) producers.emplace_back([&, p] { produce(q, p); });
  }
  if (join_first) {
    ASSERT_TRUE(q.join_for(120s)) << q.unfinished_tasks() << " items never marked done";
  }
  q.close();
  consumers.clear();
  for (int i = 0; i < kTotal; ++i)
    ASSERT_EQ(seen[static_cast<std::size_t>(i)].load(), 1) << "item " << i;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

}  // namespace

TEST(QueueStress, BoundedManyProducersManyConsumers) {
  run_stress(8, true);
}

TEST(QueueStress, CapacityOneDrainsAfterClose) {
  run_stress(1, false);
}

TEST(QueueStress, UnboundedDrainsAfterClose) {
  run_stress(0, false);
}
