#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "celeriac/mp.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

TEST(Queue, FifoWithinOneProcess) {
  mp::Queue<std::string> q(3);
  EXPECT_TRUE(q.empty());
  q.put("a");
  q.put("b");
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.get(), "a");
  EXPECT_EQ(q.get(1s), "b");
  EXPECT_FALSE(q.try_get().has_value());
}

TEST(Queue, BoundedByItemsAndBytes) {
  mp::Queue<int> q(2);
  EXPECT_TRUE(q.try_put(1));
  EXPECT_TRUE(q.try_put(2));
  EXPECT_FALSE(q.try_put(3));
  EXPECT_THROW(q.put(3, 20ms), mp::QueueFull);
  EXPECT_EQ(q.get(), 1);
  q.put(3, 1s);

  mp::Queue<std::string> small(0, 256);
  EXPECT_THROW(small.put(std::string(1000, 'z')), std::invalid_argument);
  small.put(std::string(200, 'a'));
  EXPECT_THROW(small.put(std::string(200, 'b'), 20ms), mp::QueueFull);
  EXPECT_EQ(small.get().size(), 200u);
  small.put(std::string(200, 'b'), 1s);  // wraps around the ring
  EXPECT_EQ(small.get(), std::string(200, 'b'));
}

TEST(Queue, GetTimesOut) {
  mp::Queue<int> q;
  EXPECT_THROW(q.get(20ms), mp::QueueEmpty);
  EXPECT_THROW(q.get(20ms), TimeoutError);
}

TEST(Queue, CloseDrainsThenFails) {
  mp::Queue<int> q;
  q.put(1);
  q.close();
  EXPECT_TRUE(q.closed());
  EXPECT_THROW(q.put(2), mp::QueueClosed);
  EXPECT_EQ(q.get(), 1);
  EXPECT_THROW(q.get(), mp::QueueClosed);
}

TEST(Queue, CloseWakesABlockedGetter) {
  mp::Queue<int> q;
  std::thread t([&] {
    std::this_thread::sleep_for(50ms);
    q.close();
  });
  EXPECT_THROW(q.get(10s), mp::QueueClosed);
  t.join();
}

TEST(Queue, DescriptorsCannotTravelThroughIt) {
  mp::Queue<mp::SharedArray<int>> q;
  EXPECT_THROW(q.put(mp::SharedArray<int>(4)), mp::SerializationError);
}

void produce(mp::Queue<int> q, int n) {
  for (int i = 0; i < n; ++i) q.put(i);
}

int consume(mp::Queue<int> q) {
  int sum = 0;
  try {
    for (;;) sum += q.get();
  } catch (const mp::QueueClosed&) {
  }
  return sum;
}

TEST(Queue, BetweenProcesses) {
  mp::Queue<int> q(8);  // small: producers block on a full queue
  mp::Process p1(&produce, q, 500);
  mp::Process p2(&produce, q, 500);
  p1.start();
  p2.start();
  mp::ProcessPool pool(1);
  auto total = pool.submit(&consume, q);
  EXPECT_TRUE(p1.join(20s));
  EXPECT_TRUE(p2.join(20s));
  EXPECT_EQ(p1.exitcode(), 0);
  q.close();
  EXPECT_EQ(total.result(20s), 2 * (499 * 500 / 2));
}
