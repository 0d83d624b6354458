// Debug mode: a slow plain callback and a slow timer callback are reported
// with the callback's readable type name; an exception escaping a callback
// is reported (debug mode or not) and the loop carries on; the threshold is
// respected (fast callbacks are not reported).
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

// Named callables, so that the warning can name them.
struct SlowFlush {
  void operator()() const { std::this_thread::sleep_for(30ms); }
};
struct SlowTimerTick {
  void operator()() const { std::this_thread::sleep_for(30ms); }
};
struct FailingCallback {
  void operator()() const { throw std::runtime_error("callback went wrong"); }
};

bool any_contains(const std::vector<std::string>& v, const std::string& needle) {
  for (const auto& s : v)
    if (s.find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(AioDebug, SlowCallbacksAreNamedAndFastOnesAreNot) {
  aio::LoopOptions o;
  o.debug = true;
  o.slow_callback_duration = 10ms;
  aio::EventLoop loop(o);
  std::vector<std::string> warnings;
  loop.set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
  loop.run_until_complete([](aio::EventLoop& l) -> aio::Task<void> {
    l.call_soon(SlowFlush{});
    l.call_later(1ms, SlowTimerTick{});
    l.call_soon([] {});  // fast: no warning
    co_await aio::sleep(50ms);
  }(loop));
  EXPECT_EQ(warnings.size(), 2u) << ::testing::PrintToString(warnings);
  EXPECT_TRUE(any_contains(warnings, "Executing callback (anonymous namespace)::SlowFlush took"))
      << ::testing::PrintToString(warnings);
  EXPECT_TRUE(
      any_contains(warnings, "Executing timer callback (anonymous namespace)::SlowTimerTick"))
      << ::testing::PrintToString(warnings);
}

TEST(AioDebug, ExceptionInACallbackIsReportedAndTheLoopGoesOn) {
  aio::EventLoop loop;  // not in debug mode: still reported
  std::vector<std::string> warnings;
  loop.set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
  int after = 0;
  loop.run_until_complete([](aio::EventLoop& l, int* after) -> aio::Task<void> {
    l.call_soon(FailingCallback{});
    l.call_soon([after] { ++*after; });
    co_await aio::sleep(0s);
    co_await aio::sleep(0s);
  }(loop, &after));
  EXPECT_EQ(after, 1);
  ASSERT_EQ(warnings.size(), 1u) << ::testing::PrintToString(warnings);
  EXPECT_NE(warnings[0].find("(anonymous namespace)::FailingCallback"), std::string::npos)
      << warnings[0];
  EXPECT_NE(warnings[0].find("callback went wrong"), std::string::npos) << warnings[0];
}
