// Cancellation at each kind of await, and cancellations and timeouts that
// race a completion in the same tick. Every case checks three things: the
// task sees CancelledError at the await, it can clean up, and the thing it
// waited on is left as if the task had never waited (no lost lock, unit,
// item or waiter). All on the virtual clock.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "aio_test_util.hpp"
#include "celeriac/aio/barrier.hpp"
#include "celeriac/aio/condition.hpp"
#include "celeriac/aio/errors.hpp"
#include "celeriac/aio/event.hpp"
#include "celeriac/aio/future_await.hpp"
#include "celeriac/aio/gather.hpp"
#include "celeriac/aio/lock.hpp"
#include "celeriac/aio/queue.hpp"
#include "celeriac/aio/semaphore.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/task_group.hpp"
#include "celeriac/aio/timeout.hpp"
#include "celeriac/aio/wait.hpp"
#include "celeriac/futures/promise.hpp"

using namespace celeriac;
using namespace celeriac::aio::testing;
using namespace std::chrono_literals;

namespace {

// What a cancelled waiter saw.
struct Seen {
  bool cancelled = false;  // CancelledError reached the await
  bool cleaned = false;    // the handler after it ran
  bool finished = false;   // the await returned normally
};

// Awaits `aw`, recording how it ended. The awaitable is built by `make`
// inside the task so that it is created on the loop.
template <class Make>
aio::Task<void> await_recording(Make make, Seen* seen) {
  try {
    co_await make();
    seen->finished = true;
  } catch (const CancelledError&) {
    seen->cancelled = true;
    seen->cleaned = true;
    throw;
  }
}

// Spawns a waiter on `make()`, lets it suspend, cancels it, and checks it
// was cancelled at that await. The lambdas given here capture by reference:
// g++ 12 destroys a temporary closure with non-trivial captures twice when
// it appears in a co_await expression (docs/aio-internals.md).
template <class Make>
aio::Task<void> expect_cancelled_at(Make make, const char* what, aio::Duration settle = 1s) {
  Seen seen;
  auto h = aio::spawn(await_recording(make, &seen));
  co_await aio::sleep(settle);
  EXPECT_FALSE(h.done()) << what;
  EXPECT_TRUE(h.cancel()) << what;
  bool threw = false;
  try {
    co_await h;
  } catch (const CancelledError&) {
    threw = true;
  }
  EXPECT_TRUE(threw) << what;
  EXPECT_TRUE(seen.cancelled && seen.cleaned) << what;
  EXPECT_FALSE(seen.finished) << what;
  EXPECT_TRUE(h.cancelled()) << what;
}

aio::Task<int> value_after(aio::Duration d, int v) {
  co_await aio::sleep(d);
  co_return v;
}

}  // namespace

TEST(AioCancelAt, TimersAndTasks) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    co_await expect_cancelled_at([] { return aio::sleep(10s); }, "sleep");
    auto until = loop.time() + 10s;
    co_await expect_cancelled_at([until] { return aio::sleep_until(until); }, "sleep_until");
    co_await expect_cancelled_at([] { return value_after(10s, 1); }, "nested Task");
    auto inner = aio::spawn(value_after(10s, 1));
    co_await expect_cancelled_at([&inner] { return inner; }, "TaskHandle");
    EXPECT_TRUE(inner.cancelled());  // awaiting a task passes the cancel on
    auto shielded = aio::spawn(value_after(10s, 2));
    co_await expect_cancelled_at([&shielded] { return aio::shield(shielded); }, "shield");
    EXPECT_FALSE(shielded.done());  // shield: the inner task keeps going
    EXPECT_EQ(co_await shielded, 2);
    // No timer is left behind by the cancelled sleeps: the loop is idle.
    EXPECT_EQ(loop.pending_tasks(), 1u);
  });
}

TEST(AioCancelAt, SyncPrimitivesLeaveNoTrace) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Lock lock;
    co_await lock.acquire();
    co_await expect_cancelled_at([&] { return lock.acquire(); }, "Lock");
    EXPECT_EQ(lock.waiters(), 0u);
    lock.release();
    EXPECT_FALSE(lock.locked());  // not handed to the cancelled waiter

    aio::Event ev;
    co_await expect_cancelled_at([&] { return ev.wait(); }, "Event");

    aio::Condition cond;
    auto cond_wait = [&]() -> aio::Task<void> {
      auto guard = co_await cond.scoped();
      co_await cond.wait();
    };
    co_await expect_cancelled_at(cond_wait, "Condition");
    EXPECT_FALSE(cond.locked());  // re-acquired on cancel, released by the guard

    aio::Semaphore sem(0);
    co_await expect_cancelled_at([&] { return sem.acquire(); }, "Semaphore");
    sem.release();
    EXPECT_EQ(sem.value(), 1);  // the unit was not given to the cancelled waiter

    aio::Barrier barrier(2);
    co_await expect_cancelled_at([&] { return barrier.wait(); }, "Barrier");
    EXPECT_EQ(barrier.n_waiting(), 0u);
    EXPECT_FALSE(barrier.broken());
  });
}

TEST(AioCancelAt, QueuesLeaveNoTrace) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Queue<int> q(1);
    co_await expect_cancelled_at([&] { return q.get(); }, "Queue::get");
    q.put_nowait(1);
    co_await expect_cancelled_at([&] { return q.put(2); }, "Queue::put");
    EXPECT_EQ(q.qsize(), 1u);  // the cancelled put added nothing
    co_await expect_cancelled_at([&] { return q.join(); }, "Queue::join");
    EXPECT_EQ(q.get_nowait(), 1);
    q.task_done();
    co_await q.join();  // returns at once: nothing unfinished
  });
}

TEST(AioCancelAt, CombinatorsStopWaitingAndCancelWhatTheyOwn) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    // gather owns its children: they are cancelled too.
    auto a = aio::spawn(value_after(10s, 1));
    auto b = aio::spawn(value_after(10s, 2));
    co_await expect_cancelled_at([&a, &b] { return aio::gather(a, b); }, "gather");
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());

    // wait() and as_completed() only watch: the tasks keep running.
    auto c = aio::spawn(value_after(10s, 3));
    co_await expect_cancelled_at([&c] { return aio::wait(std::vector<aio::TaskHandle<int>>{c}); },
                                 "wait");
    EXPECT_FALSE(c.done());
    aio::AsCompleted<int> ac({c});
    co_await expect_cancelled_at([&ac] { return ac.next(); }, "as_completed");
    EXPECT_FALSE(c.done());
    EXPECT_EQ(ac.remaining(), 1u);
    EXPECT_EQ(co_await ac.next(), c);  // still usable after the cancelled next()

    // wait_for owns its operation: cancelled with the caller, not a timeout.
    co_await expect_cancelled_at([] { return aio::wait_for(value_after(10s, 4), 20s); },
                                 "wait_for");

    // A TaskGroup's owner cancelled in join(): the children are cancelled.
    bool child_cancelled = false;
    auto group_body = [&child_cancelled]() -> aio::Task<void> {
      aio::TaskGroup g;
      g.spawn([](bool* flag) -> aio::Task<void> {
        try {
          co_await aio::sleep(10s);
        } catch (const CancelledError&) {
          *flag = true;
          throw;
        }
      }(&child_cancelled));
      co_await g.join();
    };
    co_await expect_cancelled_at(group_body, "TaskGroup::join");
    EXPECT_TRUE(child_cancelled);
  });
}

TEST(AioCancelAt, FuturesAndThreads) {
  aio::EventLoop loop;  // real time: another thread completes the future
  loop.run_until_complete([]() -> aio::Task<void> {
    Promise<int> p;
    Future<int> f = p.get_future();
    co_await expect_cancelled_at([&f] { return aio::FutureAwaiter<int>(f); }, "Future",
                                 5ms);
    p.set_value(5);  // a late completion goes nowhere
    EXPECT_EQ(co_await f, 5);
    // to_thread: once the call runs on a thread, cancelling the awaiting task
    // stops the wait only; the thread finishes the call.
    auto started = std::make_shared<std::atomic<bool>>(false);
    auto release = std::make_shared<std::atomic<bool>>(false);
    auto done = std::make_shared<std::atomic<bool>>(false);
    auto call = [started, release, done] {
      started->store(true);
      while (!release->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      done->store(true);
      return 1;
    };
    Seen seen;
    auto h = aio::spawn(await_recording([&call] { return aio::to_thread(call); }, &seen));
    while (!started->load()) co_await aio::sleep(1ms);
    h.cancel();
    EXPECT_THROW(co_await h, CancelledError);
    EXPECT_TRUE(seen.cancelled && !seen.finished);
    EXPECT_FALSE(done->load());
    release->store(true);
    while (!done->load()) co_await aio::sleep(1ms);
  }());
}

TEST(AioCancelAt, YieldNowCancelArrivesAtTheNextSuspension) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    std::vector<std::string> log;
    auto body = [&]() -> aio::Task<void> {
      co_await aio::yield_now();  // already woken when the cancel comes
      log.push_back("after yield");
      try {
        co_await aio::sleep(1s);
        log.push_back("slept");
      } catch (const CancelledError&) {
        log.push_back("cancelled at sleep");
        throw;
      }
    };
    auto h = aio::spawn(body());
    co_await aio::sleep(0s);  // h is now parked in yield_now with its wake-up queued
    h.cancel();
    EXPECT_THROW(co_await h, CancelledError);
    EXPECT_EQ(log, (std::vector<std::string>{"after yield", "cancelled at sleep"}));
  });
}

// ---- races: the cancel (or the timeout) and the completion in one tick ----

TEST(AioCancelRace, LockHandedToAWaiterCancelledInTheSameTick) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Lock lock;
    co_await lock.acquire();
    bool got = false;
    auto waiter = aio::spawn([](aio::Lock* l, bool* got) -> aio::Task<void> {
      auto guard = co_await l->scoped();
      *got = true;
      co_await aio::sleep(10s);  // the pending cancel lands here
    }(&lock, &got));
    co_await aio::sleep(1s);
    lock.release();   // hands the lock over: the waiter is woken...
    waiter.cancel();  // ...and cancelled before it runs
    EXPECT_THROW(co_await waiter, CancelledError);
    EXPECT_TRUE(got);             // it did get the lock (asyncio: acquire returned)
    EXPECT_FALSE(lock.locked());  // and its guard gave it back
  });
}

TEST(AioCancelRace, QueueItemArrivingAsTheTimeoutFiresIsNeverLost) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    for (int i = 0; i < 3; ++i) {
      aio::Queue<int> q;
      // The put is due at the same loop time as the timeout; which timer
      // runs first depends on the order they were scheduled.
      aio::TimerHandle early, late;
      if (i == 0) early = loop.call_later(1s, [&] { q.put_nowait(7); });
      auto got = aio::spawn(aio::wait_for(q.get(), 1s));
      if (i == 1) late = loop.call_later(1s, [&] { q.put_nowait(7); });
      if (i == 2) {
        co_await aio::sleep(0s);
        late = loop.call_later(1s, [&] { q.put_nowait(7); });
      }
      int delivered = 0;
      try {
        delivered = co_await got;
      } catch (const TimeoutError&) {
      }
      co_await aio::sleep(1s);  // let a late put land
      // Either the getter got the item or it is still in the queue.
      EXPECT_EQ(delivered == 7 ? 1u : 0u, 1u - q.qsize()) << "case " << i;
      EXPECT_TRUE(delivered == 7 || delivered == 0) << "case " << i;
    }
  });
}

TEST(AioCancelRace, SemaphoreReleaseAndCancelInOneTick) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Semaphore sem(0);
    auto waiter = aio::spawn([](aio::Semaphore* s) -> aio::Task<void> {
      co_await s->acquire();
      s->release();  // gives it back
      co_await aio::sleep(10s);
    }(&sem));
    co_await aio::sleep(1s);
    sem.release();
    waiter.cancel();
    EXPECT_THROW(co_await waiter, CancelledError);
    EXPECT_EQ(sem.value(), 1);  // no unit lost or duplicated
  });
}

TEST(AioCancelRace, EventSetAndCancelInOneTick) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    aio::Event ev;
    int after = 0;
    auto waiter = aio::spawn([](aio::Event* e, int* after) -> aio::Task<void> {
      co_await e->wait();
      ++*after;
      co_await aio::yield_now();
      ++*after;
    }(&ev, &after));
    co_await aio::sleep(1s);
    ev.set();
    waiter.cancel();
    EXPECT_THROW(co_await waiter, CancelledError);
    EXPECT_EQ(after, 1);  // the wait completed; the next await was cancelled
  });
}

TEST(AioCancelRace, TaskFinishingAsItIsCancelledKeepsItsResult) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    auto h = aio::spawn(value_after(1s, 3));
    co_await aio::sleep(1s);  // h's timer fired in this tick too: it is woken
    h.cancel();               // its last step still runs and returns
    bool cancelled = false;
    int v = 0;
    try {
      v = co_await h;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    // Either outcome is asyncio-correct; it must be one of them, consistently.
    EXPECT_NE(cancelled, v == 3);
    EXPECT_EQ(h.cancelled(), cancelled);
  });
}
