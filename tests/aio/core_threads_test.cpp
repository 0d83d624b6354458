// Posting to a loop from other threads (meant to run under TSan too): an idle
// loop blocked in epoll_wait is woken through its eventfd, posts from one
// thread run in the order they were made, stop() works from any thread, and
// spawn_threadsafe() from many threads at once delivers every result.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "celeriac/aio/future_await.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

// Runs a loop forever on its own thread; stop() ends it.
class LoopThread {
 public:
  LoopThread() {
    thread_ = std::thread([this] {
      aio::EventLoop loop;
      loop_.store(&loop);
      loop.run_forever();
      loop_.store(nullptr);
      closing_done_.store(true);
      while (!may_destroy_.load()) std::this_thread::sleep_for(1ms);
    });
    while (loop_.load() == nullptr) std::this_thread::sleep_for(1ms);
  }
  ~LoopThread() {
    if (aio::EventLoop* l = loop_.load()) l->stop();
    may_destroy_.store(true);
    thread_.join();
  }
  aio::EventLoop& loop() { return *loop_.load(); }
  /// Waits (bounded) until run_forever has returned.
  bool wait_stopped() {
    for (int i = 0; i < 10000 && !closing_done_.load(); ++i) std::this_thread::sleep_for(1ms);
    return closing_done_.load();
  }

 private:
  std::atomic<aio::EventLoop*> loop_{nullptr};
  std::atomic<bool> closing_done_{false};
  std::atomic<bool> may_destroy_{false};
  std::thread thread_;
};

aio::Task<int> twice_later(int x) {
  co_await aio::sleep(1ms);
  co_return 2 * x;
}

}  // namespace

TEST(AioThreads, IdleLoopIsWokenByAPostAndStoppedFromAnotherThread) {
  LoopThread lt;
  // The loop has nothing to do: it sleeps in epoll_wait with no timeout.
  std::this_thread::sleep_for(20ms);
  std::atomic<bool> ran{false};
  std::atomic<bool> on_loop{false};
  aio::EventLoop* loop = &lt.loop();
  loop->call_soon_threadsafe([&] {
    on_loop = loop->in_loop_thread();
    ran = true;
  });
  for (int i = 0; i < 10000 && !ran; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(ran.load());
  EXPECT_TRUE(on_loop.load());
  EXPECT_FALSE(loop->in_loop_thread());
  loop->stop();
  EXPECT_TRUE(lt.wait_stopped());
}

TEST(AioThreads, PostsFromOneThreadRunInOrderWhileTheLoopIsBusy) {
  aio::EventLoop loop;
  constexpr int kThreads = 3, kEach = 20000;
  std::vector<int> last(kThreads, -1);  // loop thread only
  int out_of_order = 0, total = 0;
  std::vector<std::thread> producers;
  std::atomic<bool> go{false};
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < kEach; ++i) {
        loop.post([&, t, i] {
          if (last[static_cast<std::size_t>(t)] != i - 1) ++out_of_order;
          last[static_cast<std::size_t>(t)] = i;
          ++total;
        });
      }
    });
  }
  auto main = [&]() -> aio::Task<void> {
    // Keep the loop busy with timers and tasks while the posts arrive.
    std::vector<aio::TaskHandle<int>> busy;
    go = true;
    while (total < kThreads * kEach) {
      busy.push_back(aio::spawn(twice_later(total)));
      co_await aio::sleep(0s);
      if (busy.size() > 64) {
        for (auto& h : busy) co_await h;
        busy.clear();
      }
    }
    for (auto& h : busy) co_await h;
  };
  loop.run_until_complete(main());
  for (auto& p : producers) p.join();
  EXPECT_EQ(total, kThreads * kEach);
  EXPECT_EQ(out_of_order, 0);
}

TEST(AioThreads, SpawnThreadsafeFromManyThreadsAtOnce) {
  LoopThread lt;
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::vector<Future<int>>> futures(kThreads);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i)
        futures[static_cast<std::size_t>(t)].push_back(
            lt.loop().spawn_threadsafe(twice_later(t * kEach + i)));
    });
  }
  for (auto& s : submitters) s.join();
  long sum = 0, expected = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      sum += futures[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)].result(10s);
      expected += 2L * (t * kEach + i);
    }
  }
  EXPECT_EQ(sum, expected);
}
