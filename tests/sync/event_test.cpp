// Event: Python's threading.Event contract.
#include "celeriac/sync/event.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using celeriac::sync::Event;

TEST(Event, StartsClearAndSetClearToggle) {
  Event e;
  EXPECT_FALSE(e.is_set());
  e.set();
  EXPECT_TRUE(e.is_set());
  e.set();  // idempotent
  EXPECT_TRUE(e.is_set());
  e.clear();
  EXPECT_FALSE(e.is_set());
  e.clear();
  EXPECT_FALSE(e.is_set());
}

TEST(Event, WaitReturnsAtOnceWhenSet) {
  Event e;
  e.set();
  e.wait();
  EXPECT_TRUE(e.wait_for(0ms));
  EXPECT_TRUE(e.wait_for(-5ms));
  EXPECT_TRUE(e.wait_until(std::chrono::steady_clock::now() - 1s));
  EXPECT_TRUE(e.wait_for(std::chrono::hours::max()));  // "no limit" must not overflow
}

TEST(Event, TimedWaitsTimeOutWhenNeverSet) {
  Event e;
  EXPECT_FALSE(e.wait_for(0ms));
  EXPECT_FALSE(e.wait_for(20ms));
  EXPECT_FALSE(e.wait_until(std::chrono::steady_clock::now() + 20ms));
  EXPECT_FALSE(e.wait_until(std::chrono::system_clock::now() + 20ms));
  EXPECT_FALSE(e.is_set());
}

TEST(Event, WaitBlocksUntilAnotherThreadSets) {
  Event e;
  int payload = 0;
  std::jthread setter([&] {
    std::this_thread::sleep_for(20ms);
    payload = 42;  // published by set()
    e.set();
  });
  e.wait();
  EXPECT_EQ(payload, 42);
}

TEST(Event, TimedWaitSucceedsWhenSetDuringTheWait) {
  Event e;
  std::jthread setter([&] {
    std::this_thread::sleep_for(20ms);
    e.set();
  });
  EXPECT_TRUE(e.wait_for(30s));
  EXPECT_TRUE(e.wait_until(std::chrono::system_clock::now() + 30s));
}

TEST(Event, SetWakesEveryWaiter) {
  Event e;
  std::atomic<int> woken{0};
  std::vector<std::jthread> waiters;
  for (int i = 0; i < 8; ++i) {
    waiters.emplace_back([&, i] {
      if (i % 2 == 0) {
        e.wait();
        ++woken;
      } else if (e.wait_for(30s)) {
        ++woken;
      }
    });
  }
  std::this_thread::sleep_for(20ms);
  e.set();
  waiters.clear();  // joins
  EXPECT_EQ(woken.load(), 8);
}

TEST(Event, ClearedEventBlocksAgain) {
  Event e;
  e.set();
  e.clear();
  EXPECT_FALSE(e.wait_for(10ms));
  std::jthread setter([&] { e.set(); });
  e.wait();
  EXPECT_TRUE(e.is_set());
}

TEST(Event, ManyRoundsOfPingPong) {
  Event ping;
  Event pong;
  constexpr int kRounds = 2000;
  std::jthread partner([&] {
    for (int i = 0; i < kRounds; ++i) {
      ping.wait();
      ping.clear();
      pong.set();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    ping.set();
    ASSERT_TRUE(pong.wait_for(30s)) << "round " << i;
    pong.clear();
  }
}
