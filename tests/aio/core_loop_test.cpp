#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {
aio::LoopOptions vclock() {
  aio::LoopOptions o;
  o.virtual_clock = true;
  return o;
}
}  // namespace

TEST(AioLoop, RunReturnsValue) {
  auto main = []() -> aio::Task<int> { co_return 42; };
  EXPECT_EQ(aio::run(main()), 42);
}

TEST(AioLoop, NestedAwaitAndSleepVirtualClock) {
  aio::EventLoop loop(vclock());
  auto child = [](int x) -> aio::Task<int> {
    co_await aio::sleep(1s);
    co_return x * 2;
  };
  auto main = [&]() -> aio::Task<int> {
    auto t0 = loop.time();
    int a = co_await child(3);
    int b = co_await child(4);
    EXPECT_EQ(loop.time() - t0, 2s);
    co_return a + b;
  };
  EXPECT_EQ(loop.run_until_complete(main()), 14);
}

TEST(AioLoop, CancelSleepingTask) {
  aio::EventLoop loop(vclock());
  bool cleaned = false;
  auto sleeper = [&]() -> aio::Task<void> {
    try {
      co_await aio::sleep(10s);
    } catch (const CancelledError&) {
      cleaned = true;
      throw;
    }
  };
  auto main = [&]() -> aio::Task<void> {
    auto h = aio::spawn(sleeper());
    co_await aio::sleep(1s);
    EXPECT_TRUE(h.cancel());
    EXPECT_THROW(co_await h, CancelledError);
    EXPECT_TRUE(h.cancelled());
  };
  loop.run_until_complete(main());
  EXPECT_TRUE(cleaned);
}
