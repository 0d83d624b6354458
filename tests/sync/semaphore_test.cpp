// Semaphore and BoundedSemaphore: Python's threading semaphores.
#include "celeriac/sync/semaphore.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/error.hpp"

using namespace std::chrono_literals;
using celeriac::InvalidStateError;
using celeriac::sync::BoundedSemaphore;
using celeriac::sync::Semaphore;

TEST(Semaphore, DefaultsToOnePermit) {
  Semaphore s;
  EXPECT_EQ(s.value(), 1);
  EXPECT_TRUE(s.try_acquire());
  EXPECT_FALSE(s.try_acquire());
  EXPECT_EQ(s.value(), 0);
}

TEST(Semaphore, NegativeInitialValueIsRejected) {
  EXPECT_THROW(Semaphore(-1), std::invalid_argument);
  EXPECT_THROW(BoundedSemaphore(-3), std::invalid_argument);
  Semaphore zero(0);
  EXPECT_FALSE(zero.try_acquire());
}

TEST(Semaphore, CountsPermits) {
  Semaphore s(3);
  s.acquire();
  s.acquire();
  EXPECT_TRUE(s.try_acquire_for(1s));
  EXPECT_EQ(s.value(), 0);
  s.release(2);
  EXPECT_EQ(s.value(), 2);
  EXPECT_TRUE(s.try_acquire_until(std::chrono::system_clock::now() + 1s));
  s.release();
  s.release(5);  // a plain Semaphore may grow past its initial value
  EXPECT_EQ(s.value(), 7);
}

TEST(Semaphore, TimedAcquireTimesOut) {
  Semaphore s(0);
  EXPECT_FALSE(s.try_acquire_for(10ms));
  EXPECT_FALSE(s.try_acquire_for(0ms));
  EXPECT_FALSE(s.try_acquire_until(std::chrono::steady_clock::now() + 10ms));
  EXPECT_EQ(s.value(), 0);
}

TEST(Semaphore, ReleaseWakesABlockedAcquire) {
  Semaphore s(0);
  std::jthread releaser([&] {
    std::this_thread::sleep_for(20ms);
    s.release();
  });
  s.acquire();
  EXPECT_EQ(s.value(), 0);
}

TEST(Semaphore, ReleaseOfNWakesNWaiters) {
  Semaphore s(0);
  std::atomic<int> acquired{0};
  std::vector<std::jthread> waiters;
  for (int i = 0; i < 4; ++i) {
    waiters.emplace_back([&] {
      if (s.try_acquire_for(60s)) ++acquired;
    });
  }
  std::this_thread::sleep_for(20ms);
  s.release(4);
  waiters.clear();
  EXPECT_EQ(acquired.load(), 4);
  EXPECT_EQ(s.value(), 0);
}

TEST(Semaphore, ReleaseOfLessThanOneIsRejected) {
  Semaphore s(1);
  EXPECT_THROW(s.release(0), std::invalid_argument);
  EXPECT_THROW(s.release(-2), std::invalid_argument);
  EXPECT_EQ(s.value(), 1);
}

TEST(Semaphore, ReleasePastTheLargestCountIsAnError) {
  Semaphore s(std::numeric_limits<std::ptrdiff_t>::max() - 1);
  s.release();
  EXPECT_THROW(s.release(), InvalidStateError);
}

TEST(Semaphore, LimitsConcurrency) {
  Semaphore s(2);
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  std::vector<std::jthread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        s.acquire();
        const int now = ++inside;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::yield();
        --inside;
        s.release();
      }
    });
  }
  threads.clear();
  EXPECT_LE(most.load(), 2);
  EXPECT_GE(most.load(), 1);
  EXPECT_EQ(s.value(), 2);
}

TEST(BoundedSemaphore, ReleasePastTheInitialValueThrows) {
  BoundedSemaphore s(2);
  EXPECT_EQ(s.bound(), 2);
  try {
    s.release();
    FAIL() << "release past the bound must throw";
  } catch (const InvalidStateError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("BoundedSemaphore::release(1)"), std::string::npos) << what;
    EXPECT_NE(what.find("bound 2"), std::string::npos) << what;
  }
  EXPECT_EQ(s.value(), 2);
  s.acquire();
  s.acquire();
  EXPECT_THROW(s.release(3), InvalidStateError);
  EXPECT_EQ(s.value(), 0) << "a refused release changes nothing";
  s.release(2);
  EXPECT_EQ(s.value(), 2);
  EXPECT_THROW(s.release(), InvalidStateError);
}

TEST(BoundedSemaphore, IsUsableAsASemaphore) {
  BoundedSemaphore bounded(1);
  Semaphore& plain = bounded;
  plain.acquire();
  plain.release();
  EXPECT_THROW(plain.release(), InvalidStateError) << "the bound holds through the base class";
}
