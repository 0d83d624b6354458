// gather, wait, as_completed, timeout/wait_for, shield, TaskGroup.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "aio_test_util.hpp"
#include "celeriac/aio/errors.hpp"
#include "celeriac/aio/gather.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/task_group.hpp"
#include "celeriac/aio/timeout.hpp"
#include "celeriac/aio/wait.hpp"

using namespace celeriac;
using namespace celeriac::aio::testing;
using namespace std::chrono_literals;

#define CO_ASSERT(cond)                \
  if (!(cond)) {                       \
    ADD_FAILURE() << "failed: " #cond; \
    co_return;                         \
  }

namespace {

aio::Task<int> after(aio::Duration d, int v) {
  co_await aio::sleep(d);
  co_return v;
}

aio::Task<int> fail_after(aio::Duration d, std::string msg) {
  co_await aio::sleep(d);
  throw std::runtime_error(msg);
}

aio::Task<void> nothing_after(aio::Duration d) {
  co_await aio::sleep(d);
}

// Counts a cancellation of a long sleep. (Coroutine lambdas must not be
// temporaries: their captures would dangle; helpers take parameters instead.)
aio::Task<int> sleep_counting_cancel(aio::Duration d, int* cancelled) {
  try {
    co_await aio::sleep(d);
  } catch (const CancelledError&) {
    ++*cancelled;
    throw;
  }
  co_return 0;
}

aio::Task<void> sleep_then_push(aio::Duration d, std::vector<int>* out, int v) {
  co_await aio::sleep(d);
  out->push_back(v);
}

}  // namespace

TEST(AioGather, VariadicResultsInOrder) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    auto t0 = loop.time();
    auto [a, b, c] = co_await aio::gather(after(3s, 1), after(1s, 2), nothing_after(2s));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    (void)c;
    EXPECT_EQ(loop.time() - t0, 3s);  // concurrent, not sequential
  });
}

TEST(AioGather, RangeAndFirstErrorPropagatesAtOnce) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    std::vector<aio::Task<int>> v;
    v.push_back(after(1s, 10));
    v.push_back(after(2s, 20));
    auto r = co_await aio::gather(std::move(v));
    EXPECT_EQ(r, (std::vector<int>{10, 20}));

    std::vector<aio::Task<int>> w;
    w.push_back(after(5s, 1));
    w.push_back(fail_after(1s, "boom"));
    auto t0 = loop.time();
    try {
      co_await aio::gather(std::move(w));
      ADD_FAILURE() << "gather should throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "boom");
    }
    EXPECT_EQ(loop.time() - t0, 1s);
  });
}

TEST(AioGather, ReturnExceptions) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    auto [a, b] = co_await aio::gather(aio::return_exceptions, after(1s, 7), fail_after(2s, "bad"));
    EXPECT_TRUE(a.ok());
    EXPECT_EQ(a.get(), 7);
    EXPECT_FALSE(b.ok());
    EXPECT_THROW(b.get(), std::runtime_error);

    std::vector<aio::Task<int>> v;
    v.push_back(fail_after(1s, "x"));
    v.push_back(after(1s, 3));
    auto outs = co_await aio::gather(aio::return_exceptions, std::move(v));
    CO_ASSERT((outs.size()) == (2u));
    EXPECT_FALSE(outs[0].ok());
    EXPECT_EQ(outs[1].get(), 3);
  });
}

TEST(AioGather, CancellingTheCallerCancelsChildren) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    int cancelled = 0;
    auto body = [&]() -> aio::Task<void> {
      co_await aio::gather(sleep_counting_cancel(10s, &cancelled),
                           sleep_counting_cancel(10s, &cancelled));
    };
    auto g = aio::spawn(body());
    co_await aio::sleep(1s);
    g.cancel();
    EXPECT_THROW(co_await g, CancelledError);
    EXPECT_EQ(cancelled, 2);
  });
}

TEST(AioWait, Modes) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    std::vector<aio::TaskHandle<int>> hs{aio::spawn(after(1s, 1)), aio::spawn(after(3s, 3))};
    auto r = co_await aio::wait(hs, aio::FIRST_COMPLETED);
    EXPECT_EQ(r.done.size(), 1u);
    EXPECT_EQ(r.pending.size(), 1u);
    EXPECT_EQ(r.done[0].result(), 1);

    std::vector<aio::TaskHandle<int>> fs{aio::spawn(fail_after(1s, "e")), aio::spawn(after(5s, 5))};
    auto t0 = loop.time();
    auto r2 = co_await aio::wait(fs, aio::FIRST_EXCEPTION);
    EXPECT_EQ(loop.time() - t0, 1s);
    CO_ASSERT((r2.done.size()) == (1u));
    EXPECT_THROW(r2.done[0].result(), std::runtime_error);

    auto r3 = co_await aio::wait(fs, aio::ALL_COMPLETED, aio::Duration(1s));
    EXPECT_EQ(r3.pending.size(), 1u);  // timed out: no error, still pending
    auto r4 = co_await aio::wait(fs);
    EXPECT_EQ(r4.done.size(), 2u);
  });
}

TEST(AioAsCompleted, OrderAndTimeout) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    std::vector<aio::TaskHandle<int>> hs{aio::spawn(after(3s, 3)), aio::spawn(after(1s, 1)),
                                         aio::spawn(after(2s, 2))};
    auto ac = aio::as_completed(hs);
    std::vector<int> order;
    while (ac.remaining()) {
      auto h = co_await ac.next();
      order.push_back(h.result());
    }
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_THROW(co_await ac.next(), Error);

    std::vector<aio::TaskHandle<int>> slow{aio::spawn(after(1s, 1)), aio::spawn(after(10s, 10))};
    aio::AsCompleted<int> ac2(slow, aio::Duration(5s));
    EXPECT_EQ((co_await ac2.next()).result(), 1);
    EXPECT_THROW(co_await ac2.next(), TimeoutError);
    slow[1].cancel();
  });
}

TEST(AioTimeout, TimesOutAndCancelsInner) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    bool inner_cancelled = false;
    auto inner = [&]() -> aio::Task<int> {
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        inner_cancelled = true;
        throw;
      }
      co_return 1;
    };
    auto t0 = loop.time();
    EXPECT_THROW(co_await aio::wait_for(inner(), 2s), TimeoutError);
    EXPECT_TRUE(inner_cancelled);
    EXPECT_EQ(loop.time() - t0, 2s);
    EXPECT_EQ(co_await aio::timeout(5s, after(1s, 9)), 9);
  });
}

TEST(AioTimeout, RacingCompletionKeepsTheResult) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    // The operation finishes at exactly the deadline: both are due in the
    // same tick; the inner task's timer was queued first and wins.
    EXPECT_EQ(co_await aio::wait_for(after(2s, 5), 2s), 5);
    // An inner that swallows the cancellation and returns a value: the value.
    auto stubborn = []() -> aio::Task<int> {
      try {
        co_await aio::sleep(10s);
      } catch (const CancelledError&) {
        co_return 42;
      }
      co_return 0;
    };
    EXPECT_EQ(co_await aio::wait_for(stubborn(), 1s), 42);
  });
}

TEST(AioTimeout, OuterCancelIsCancelledErrorNotTimeout) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    auto h = aio::spawn(
        []() -> aio::Task<int> { co_return co_await aio::wait_for(after(10s, 1), 5s); }());
    co_await aio::sleep(1s);
    h.cancel();
    EXPECT_THROW(co_await h, CancelledError);
  });
}

TEST(AioShield, InnerSurvivesOuterCancel) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    auto inner = aio::spawn(after(3s, 8));
    auto body = [&]() -> aio::Task<int> { co_return co_await aio::shield(inner); };
    auto outer = aio::spawn(body());
    co_await aio::sleep(1s);
    outer.cancel();
    EXPECT_THROW(co_await outer, CancelledError);
    EXPECT_FALSE(inner.done());
    EXPECT_EQ(co_await inner, 8);
  });
}

TEST(AioTaskGroup, AllSucceed) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    std::vector<int> seen;
    auto t0 = loop.time();
    co_await aio::with_task_group([&](aio::TaskGroup& g) -> aio::Task<void> {
      for (int i = 3; i >= 1; --i) {
        g.spawn(sleep_then_push(std::chrono::seconds(i), &seen, i));
      }
      co_return;
    });
    EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(loop.time() - t0, 3s);
  });
}

TEST(AioTaskGroup, TwoFailingChildrenReportedTogetherSiblingsCancelled) {
  run_v([](aio::EventLoop& loop) -> aio::Task<void> {
    int sibling_cancelled = 0;
    bool body_interrupted = true;
    auto t0 = loop.time();
    try {
      co_await aio::with_task_group([&](aio::TaskGroup& g) -> aio::Task<void> {
        g.spawn(fail_after(1s, "first"));
        g.spawn(fail_after(1s, "second"));
        g.spawn(sleep_counting_cancel(100s, &sibling_cancelled));
        co_await aio::sleep(50s);  // interrupted by the group's cancellation
        body_interrupted = false;
      });
      ADD_FAILURE() << "expected ExceptionGroup";
    } catch (const aio::ExceptionGroup& eg) {
      CO_ASSERT((eg.exceptions().size()) == (2u));
      std::vector<std::string> msgs;
      for (auto& e : eg.exceptions()) {
        try {
          std::rethrow_exception(e);
        } catch (const std::runtime_error& re) {
          msgs.push_back(re.what());
        }
      }
      EXPECT_EQ(msgs, (std::vector<std::string>{"first", "second"}));
    }
    EXPECT_EQ(sibling_cancelled, 1);
    EXPECT_TRUE(body_interrupted);
    EXPECT_EQ(loop.time() - t0, 1s);
    // The owner task is not left cancelled: it can still sleep.
    co_await aio::sleep(1s);
  });
}

TEST(AioTaskGroup, BodyErrorCancelsChildrenAndParentCancelPropagates) {
  run_v([](aio::EventLoop&) -> aio::Task<void> {
    int cancelled = 0;
    auto child = [&] { return sleep_counting_cancel(100s, &cancelled); };
    try {
      co_await aio::with_task_group([&](aio::TaskGroup& g) -> aio::Task<void> {
        g.spawn(child());
        co_await aio::sleep(1s);
        throw std::logic_error("body");
      });
      ADD_FAILURE();
    } catch (const aio::ExceptionGroup& eg) {
      EXPECT_EQ(eg.exceptions().size(), 1u);
    }
    EXPECT_EQ(cancelled, 1);

    auto owner = aio::spawn(aio::with_task_group([&](aio::TaskGroup& g) -> aio::Task<void> {
      g.spawn(child());
      g.spawn(child());
      co_return;
    }));
    co_await aio::sleep(1s);
    owner.cancel();
    EXPECT_THROW(co_await owner, CancelledError);
    EXPECT_EQ(cancelled, 3);
  });
}
