// Barrier: Python's threading.Barrier contract.
#include "celeriac/sync/barrier.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/sync/errors.hpp"

using namespace std::chrono_literals;
using celeriac::sync::Barrier;
using celeriac::sync::BrokenBarrierError;

namespace {

// Polls `pred` (a state reached by other threads) for up to 30 s.
template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST(Barrier, ZeroPartiesIsRejected) {
  EXPECT_THROW(Barrier(0), std::invalid_argument);
}

TEST(Barrier, OnePartyPassesAtOnce) {
  Barrier b(1);
  EXPECT_EQ(b.parties(), 1u);
  EXPECT_EQ(b.wait(), 0u);
  EXPECT_EQ(b.wait_for(0ms), 0u);
}

TEST(Barrier, ReleasesAllWithDistinctIndicesEveryRound) {
  constexpr std::size_t kParties = 4;
  constexpr int kRounds = 50;
  std::atomic<int> actions{0};
  Barrier b(kParties, [&] { ++actions; });
  std::vector<std::vector<std::size_t>> indices(kRounds, std::vector<std::size_t>(kParties));
  std::atomic<bool> action_seen_late{false};
  std::vector<std::jthread> threads;
  for (std::size_t t = 0; t < kParties; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        indices[static_cast<std::size_t>(r)][t] = t % 2 ? b.wait() : b.wait_for(60s);
        if (actions.load() < r + 1) action_seen_late = true;  // action runs before release
      }
    });
  }
  threads.clear();
  EXPECT_EQ(actions.load(), kRounds);
  EXPECT_FALSE(action_seen_late.load());
  for (auto& round : indices) {
    std::sort(round.begin(), round.end());
    for (std::size_t i = 0; i < kParties; ++i) ASSERT_EQ(round[i], i);
  }
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, NWaitingCountsArrivals) {
  Barrier b(3);
  EXPECT_EQ(b.n_waiting(), 0u);
  std::jthread first([&] { (void)b.wait(); });
  std::jthread second([&] { (void)b.wait(); });
  EXPECT_TRUE(eventually([&] { return b.n_waiting() == 2; }));
  EXPECT_EQ(b.wait(), 2u);
}

TEST(Barrier, AbortBreaksWaitersAndLaterWaits) {
  Barrier b(3);
  std::atomic<int> broken{0};
  std::vector<std::jthread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] {
      try {
        (void)b.wait();
      } catch (const BrokenBarrierError&) {
        ++broken;
      }
    });
  }
  EXPECT_TRUE(eventually([&] { return b.n_waiting() == 2; }));
  b.abort();
  waiters.clear();
  EXPECT_EQ(broken.load(), 2);
  EXPECT_TRUE(b.broken());
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_THROW(b.wait(), BrokenBarrierError);
  EXPECT_THROW(b.wait_for(1s), BrokenBarrierError);
}

TEST(Barrier, ResetRepairsABrokenBarrier) {
  Barrier b(2);
  b.abort();
  EXPECT_TRUE(b.broken());
  b.reset();
  EXPECT_FALSE(b.broken());
  std::jthread other([&] { (void)b.wait(); });
  EXPECT_LT(b.wait_for(60s), 2u);
}

TEST(Barrier, ResetWhileWaitingRaisesInTheWaiters) {
  Barrier b(3);
  std::atomic<int> broken{0};
  std::vector<std::jthread> waiters;
  for (int i = 0; i < 2; ++i) {
    waiters.emplace_back([&] {
      try {
        (void)b.wait_for(60s);
      } catch (const BrokenBarrierError&) {
        ++broken;
      }
    });
  }
  EXPECT_TRUE(eventually([&] { return b.n_waiting() == 2; }));
  b.reset();
  waiters.clear();
  EXPECT_EQ(broken.load(), 2);
  EXPECT_FALSE(b.broken()) << "reset leaves the barrier usable";
  std::jthread a([&] { (void)b.wait(); });
  std::jthread c([&] { (void)b.wait(); });
  EXPECT_LT(b.wait(), 3u);
}

TEST(Barrier, TimeoutBreaksTheBarrier) {
  Barrier b(2);
  try {
    (void)b.wait_for(10ms);
    FAIL() << "a lone waiter must time out";
  } catch (const BrokenBarrierError& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(b.wait_until(std::chrono::system_clock::now() + 1s), BrokenBarrierError);
}

TEST(Barrier, TimeoutOfOneReleasesTheOthersBroken) {
  Barrier b(3);
  std::atomic<bool> other_broken{false};
  std::jthread patient([&] {
    try {
      (void)b.wait();
    } catch (const BrokenBarrierError&) {
      other_broken = true;
    }
  });
  EXPECT_TRUE(eventually([&] { return b.n_waiting() == 1; }));
  EXPECT_THROW(b.wait_for(10ms), BrokenBarrierError);
  patient.join();
  EXPECT_TRUE(other_broken.load());
}

TEST(Barrier, ThrowingActionBreaksTheBarrier) {
  Barrier b(2, [] { throw std::runtime_error("action failed"); });
  std::atomic<int> runtime_errors{0};
  std::atomic<int> broken{0};
  auto party = [&] {
    try {
      (void)b.wait();
    } catch (const BrokenBarrierError&) {
      ++broken;
    } catch (const std::runtime_error&) {
      ++runtime_errors;
    }
  };
  {
    std::jthread a(party);
    std::jthread c(party);
  }
  EXPECT_EQ(runtime_errors.load(), 1) << "the thread that ran the action gets its exception";
  EXPECT_EQ(broken.load(), 1);
  EXPECT_TRUE(b.broken());
}
