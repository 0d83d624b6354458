// Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier, queues: all
// cancellation-safe (a cancelled waiter leaves no trace).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "aio_test_util.hpp"
#include "celeriac/aio/barrier.hpp"
#include "celeriac/aio/condition.hpp"
#include "celeriac/aio/errors.hpp"
#include "celeriac/aio/event.hpp"
#include "celeriac/aio/lock.hpp"
#include "celeriac/aio/queue.hpp"
#include "celeriac/aio/semaphore.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"

using namespace celeriac;
using namespace celeriac::aio::testing;
using namespace std::chrono_literals;

namespace {

aio::Task<void> hold_lock(aio::Lock* lock, aio::Duration d, std::vector<int>* log, int id) {
  co_await lock->acquire();
  log->push_back(id);
  co_await aio::sleep(d);
  lock->release();
}

aio::Task<void> acquire_lock(aio::Lock* lock) {
  co_await lock->acquire();
}

}  // namespace

TEST(AioLock, FifoAndCancelledWaiterLeavesNoTrace) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Lock lock;
    std::vector<int> log;
    auto a = aio::spawn(hold_lock(&lock, 2s, &log, 1));
    co_await aio::yield_now();
    auto b = aio::spawn(acquire_lock(&lock));  // will be cancelled while waiting
    auto c = aio::spawn(hold_lock(&lock, 1s, &log, 3));
    co_await aio::sleep(1s);
    EXPECT_EQ(lock.waiters(), 2u);
    b.cancel();
    EXPECT_THROW(co_await b, CancelledError);
    EXPECT_EQ(lock.waiters(), 1u);
    co_await a;
    co_await c;
    EXPECT_EQ(log, (std::vector<int>{1, 3}));
    EXPECT_FALSE(lock.locked());
    EXPECT_THROW(lock.release(), InvalidStateError);
    {
      auto guard = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
  });
}

TEST(AioEvent, WaitSetClearAndCancel) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    aio::Event ev;
    auto waiter = [&]() -> aio::Task<aio::TimePoint> {
      co_await ev.wait();
      co_return loop.time();
    };
    auto t0 = loop.time();
    auto w1 = aio::spawn(waiter());
    auto w2 = aio::spawn(waiter());
    auto w3 = aio::spawn(waiter());
    co_await aio::sleep(1s);
    w3.cancel();
    co_await aio::sleep(1s);
    ev.set();
    EXPECT_EQ(co_await w1, t0 + 2s);
    EXPECT_EQ(co_await w2, t0 + 2s);
    EXPECT_THROW(co_await w3, CancelledError);
    EXPECT_TRUE(ev.is_set());
    co_await ev.wait();  // already set: no wait
    ev.clear();
    EXPECT_FALSE(ev.is_set());
  });
}

TEST(AioCondition, NotifyAndWaitFor) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Condition cond;
    int value = 0;
    std::vector<int> got;
    auto consumer = [&]() -> aio::Task<void> {
      co_await cond.acquire();
      co_await cond.wait_for([&] { return value >= 2; });
      got.push_back(value);
      cond.release();
    };
    auto c = aio::spawn(consumer());
    for (int i = 1; i <= 3; ++i) {
      co_await aio::sleep(1s);
      auto g = co_await cond.scoped();
      value = i;
      cond.notify_all();
    }
    co_await c;
    EXPECT_EQ(got, (std::vector<int>{2}));
    EXPECT_THROW(cond.notify(), InvalidStateError);
    EXPECT_THROW(co_await cond.wait(), InvalidStateError);
  });
}

TEST(AioCondition, CancelledWaiterReacquiresTheLock) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Condition cond;
    bool held_after_cancel = false;
    auto waiter = [&]() -> aio::Task<void> {
      co_await cond.acquire();
      try {
        co_await cond.wait();
      } catch (const CancelledError&) {
        held_after_cancel = cond.locked();
        cond.release();
        throw;
      }
    };
    auto w = aio::spawn(waiter());
    co_await aio::sleep(1s);
    w.cancel();
    EXPECT_THROW(co_await w, CancelledError);
    EXPECT_TRUE(held_after_cancel);
    EXPECT_FALSE(cond.locked());
  });
}

TEST(AioSemaphore, LimitsConcurrencyAndBounded) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    aio::Semaphore sem(2);
    int active = 0, peak = 0;
    auto worker = [&]() -> aio::Task<void> {
      co_await sem.acquire();
      ++active;
      peak = std::max(peak, active);
      co_await aio::sleep(1s);
      --active;
      sem.release();
    };
    auto t0 = loop.time();
    std::vector<aio::TaskHandle<void>> hs;
    for (int i = 0; i < 6; ++i) hs.push_back(aio::spawn(worker()));
    for (auto& h : hs) co_await h;
    EXPECT_EQ(peak, 2);
    EXPECT_EQ(loop.time() - t0, 3s);
    EXPECT_EQ(sem.value(), 2);

    aio::BoundedSemaphore bs(1);
    EXPECT_THROW(bs.release(), Error);
    co_await bs.acquire();
    EXPECT_TRUE(bs.locked());
    auto blocked =
        aio::spawn([](aio::BoundedSemaphore* s) -> aio::Task<void> { co_await s->acquire(); }(&bs));
    co_await aio::sleep(1s);
    blocked.cancel();
    EXPECT_THROW(co_await blocked, CancelledError);
    bs.release();
    EXPECT_EQ(bs.value(), 1);  // the cancelled waiter took nothing
    EXPECT_THROW(aio::Semaphore(-1), Error);
  });
}

TEST(AioBarrier, TripsAbortResetAndCancel) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Barrier b(3);
    auto arrive = [&]() -> aio::Task<std::size_t> { co_return co_await b.wait(); };
    auto x = aio::spawn(arrive());
    auto y = aio::spawn(arrive());
    co_await aio::sleep(1s);
    EXPECT_EQ(b.n_waiting(), 2u);
    y.cancel();
    EXPECT_THROW(co_await y, CancelledError);
    EXPECT_EQ(b.n_waiting(), 1u);
    auto z = aio::spawn(arrive());
    co_await aio::yield_now();  // let z arrive first
    std::size_t last = co_await b.wait();
    EXPECT_EQ(last, 2u);
    EXPECT_EQ(co_await x, 0u);
    EXPECT_EQ(co_await z, 1u);

    auto w = aio::spawn(arrive());
    co_await aio::sleep(1s);
    b.reset();
    EXPECT_THROW(co_await w, aio::BrokenBarrierError);
    EXPECT_FALSE(b.broken());
    b.abort();
    EXPECT_THROW(co_await b.wait(), aio::BrokenBarrierError);
    EXPECT_THROW(aio::Barrier(0), Error);
  });
}

TEST(AioQueue, FifoBoundedNowaitErrors) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    aio::Queue<int> q(2);
    q.put_nowait(1);
    co_await q.put(2);
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait(3), aio::QueueFull);
    auto t0 = loop.time();
    auto producer =
        aio::spawn([](aio::Queue<int>* q) -> aio::Task<void> { co_await q->put(3); }(&q));
    co_await aio::sleep(1s);
    EXPECT_FALSE(producer.done());  // blocked: full
    EXPECT_EQ(q.get_nowait(), 1);
    co_await producer;
    EXPECT_EQ(loop.time() - t0, 1s);
    EXPECT_EQ(co_await q.get(), 2);
    EXPECT_EQ(co_await q.get(), 3);
    EXPECT_THROW(q.get_nowait(), aio::QueueEmpty);
  });
}

TEST(AioQueue, CancelledGetterAndPutterLeaveNoTrace) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Queue<std::string> q(1);
    auto getter = [&]() -> aio::Task<std::string> { co_return co_await q.get(); };
    auto g1 = aio::spawn(getter());
    auto g2 = aio::spawn(getter());
    co_await aio::sleep(1s);
    g1.cancel();
    EXPECT_THROW(co_await g1, CancelledError);
    co_await q.put("a");
    EXPECT_EQ(co_await g2, "a");  // the item went to the live getter

    co_await q.put("b");
    auto putter = aio::spawn(
        [](aio::Queue<std::string>* q) -> aio::Task<void> { co_await q->put("lost"); }(&q));
    co_await aio::sleep(1s);
    putter.cancel();
    EXPECT_THROW(co_await putter, CancelledError);
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(co_await q.get(), "b");
    EXPECT_TRUE(q.empty());
  });
}

TEST(AioQueue, PriorityAndLifo) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::PriorityQueue<int> pq;
    for (int v : {5, 1, 4, 2, 3}) pq.put_nowait(v);
    std::vector<int> out;
    while (!pq.empty()) out.push_back(co_await pq.get());
    EXPECT_EQ(out, (std::vector<int>{1, 2, 3, 4, 5}));
    aio::PriorityQueue<int, std::greater<int>> maxq;
    for (int v : {2, 9, 4}) maxq.put_nowait(v);
    EXPECT_EQ(maxq.get_nowait(), 9);

    aio::LifoQueue<int> lq;
    for (int v : {1, 2, 3}) co_await lq.put(v);
    EXPECT_EQ(co_await lq.get(), 3);
    EXPECT_EQ(co_await lq.get(), 2);
  });
}

TEST(AioQueue, JoinAndTaskDone) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    aio::Queue<int> q;
    int processed = 0;
    auto worker = [&]() -> aio::Task<void> {
      for (;;) {
        int v = co_await q.get();
        co_await aio::sleep(std::chrono::seconds(v));
        ++processed;
        q.task_done();
      }
    };
    auto w = aio::spawn(worker());
    for (int v : {1, 2, 3}) q.put_nowait(v);
    auto t0 = loop.time();
    co_await q.join();
    EXPECT_EQ(processed, 3);
    EXPECT_EQ(loop.time() - t0, 6s);
    EXPECT_THROW(q.task_done(), Error);
    w.cancel();
    EXPECT_THROW(co_await w, CancelledError);
  });
}

TEST(AioQueue, ShutdownUnderWaitingGetters) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Queue<int> q;
    auto getter = [&]() -> aio::Task<int> { co_return co_await q.get(); };
    auto g1 = aio::spawn(getter());
    auto g2 = aio::spawn(getter());
    co_await aio::sleep(1s);
    q.shutdown();
    EXPECT_THROW(co_await g1, aio::QueueShutDown);
    EXPECT_THROW(co_await g2, aio::QueueShutDown);
    EXPECT_THROW(q.put_nowait(1), aio::QueueShutDown);
    EXPECT_THROW(co_await q.put(1), aio::QueueShutDown);

    // Non-immediate shutdown lets getters drain what is left.
    aio::Queue<int> r;
    r.put_nowait(7);
    r.shutdown();
    EXPECT_EQ(co_await r.get(), 7);
    EXPECT_THROW(co_await r.get(), aio::QueueShutDown);

    // Immediate shutdown drops the items and releases join().
    aio::Queue<int> s(1);
    s.put_nowait(1);
    auto blocked_put =
        aio::spawn([](aio::Queue<int>* s) -> aio::Task<void> { co_await s->put(2); }(&s));
    auto joiner = aio::spawn([](aio::Queue<int>* s) -> aio::Task<void> { co_await s->join(); }(&s));
    co_await aio::sleep(1s);
    s.shutdown(true);
    EXPECT_THROW(co_await blocked_put, aio::QueueShutDown);
    co_await joiner;
    EXPECT_TRUE(s.empty());
    EXPECT_THROW(s.get_nowait(), aio::QueueShutDown);
  });
}
