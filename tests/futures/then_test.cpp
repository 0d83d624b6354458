// Continuations: then(fn) and then(executor, fn).
#include "celeriac/futures.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using celeriac::CancelledError;
using celeriac::Future;
using celeriac::Promise;

namespace {

// Collects posted work and runs it when asked: shows then(executor, fn)
// really goes through the executor.
class ManualExecutor {
 public:
  void post(std::function<void()> fn) { queue_.push_back(std::move(fn)); }
  std::size_t run_all() {
    std::size_t n = 0;
    while (!queue_.empty()) {
      auto fn = std::move(queue_.front());
      queue_.erase(queue_.begin());
      fn();
      ++n;
    }
    return n;
  }

 private:
  std::vector<std::function<void()>> queue_;
};
static_assert(celeriac::Executor<ManualExecutor>);

// An executor that has shut down: refuses everything, as a closed pool does.
class RefusingExecutor {
 public:
  template <class F>
  void post(F&&) {
    throw celeriac::BrokenExecutor("refusing executor: shut down");
  }
};
static_assert(celeriac::Executor<RefusingExecutor>);
static_assert(!celeriac::Executor<int>);

}  // namespace

TEST(Then, ChainsValues) {
  Promise<int> p;
  auto f = p.get_future().then([](int x) { return x + 1; }).then([](int x) {
    return std::to_string(x * 2);
  });
  p.set_value(20);
  EXPECT_EQ(f.result(), "42");
}

TEST(Then, RunsAtOnceOnAReadyFuture) {
  bool ran = false;
  auto f = celeriac::make_ready_future(1).then([&](int) { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_TRUE(f.done());
}

TEST(Then, ErrorSkipsValueContinuationsAndPropagates) {
  Promise<int> p;
  bool ran = false;
  auto f = p.get_future().then([&](int x) {
    ran = true;
    return x;
  });
  p.set_exception(std::make_exception_ptr(std::invalid_argument("nope")));
  EXPECT_THROW(f.result(), std::invalid_argument);
  EXPECT_FALSE(ran);
}

TEST(Then, FutureTakingContinuationSeesTheError) {
  Promise<int> p;
  auto f = p.get_future().then([](Future<int> done) -> std::string {
    try {
      done.result();
      return "value";
    } catch (const std::exception& e) {
      return std::string("recovered: ") + e.what();
    }
  });
  p.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
  EXPECT_EQ(f.result(), "recovered: boom");
}

TEST(Then, CancellationArrivesAsCancelledError) {
  Promise<int> p;
  auto f = p.get_future().then([](int x) { return x; });
  p.get_future().cancel();
  EXPECT_THROW(f.result(), CancelledError);
  EXPECT_FALSE(f.cancelled()) << "the continuation failed; it was not itself cancelled";
}

TEST(Then, ContinuationThatThrowsFailsTheNextFuture) {
  auto f =
      celeriac::make_ready_future(1).then([](int) -> int { throw std::domain_error("in then"); });
  EXPECT_THROW(f.result(), std::domain_error);
}

TEST(Then, VoidToValueAndValueToVoid) {
  Promise<void> p;
  auto f = p.get_future().then([] { return 5; });
  int seen = 0;
  auto g = f.then([&](int x) { seen = x; });
  p.set_value();
  g.result();
  EXPECT_EQ(seen, 5);
}

TEST(Then, MoveOnlyValueIsMovedIntoTheContinuation) {
  Promise<std::unique_ptr<int>> p;
  auto f = p.get_future().then([](std::unique_ptr<int> v) { return *v * 3; });
  p.set_value(std::make_unique<int>(7));
  EXPECT_EQ(f.result(), 21);
}

TEST(Then, FutureReturningContinuationIsFlattened) {
  Promise<int> outer;
  Promise<std::string> inner;
  auto inner_future = inner.get_future();
  Future<std::string> f = outer.get_future().then([inner_future](int) { return inner_future; });
  outer.set_value(1);
  EXPECT_FALSE(f.done()) << "waits for the inner future too";
  inner.set_value("inner");
  EXPECT_EQ(f.result(), "inner");
}

TEST(Then, FlattenedInnerErrorPropagates) {
  auto f = celeriac::make_ready_future(1).then([](int) {
    return celeriac::make_exceptional_future<int>(
        std::make_exception_ptr(std::runtime_error("inner")));
  });
  EXPECT_THROW(f.result(), std::runtime_error);
}

TEST(Then, OnExecutorRunsThroughTheExecutor) {
  ManualExecutor ex;
  auto f = celeriac::make_ready_future(2).then(ex, [](int x) { return x * 10; });
  EXPECT_FALSE(f.done()) << "nothing runs until the executor runs it";
  EXPECT_EQ(ex.run_all(), 1u);
  EXPECT_EQ(f.result(), 20);
}

TEST(Then, CompletesOnTheProducingThread) {
  Promise<int> p;
  std::thread::id ran_on;
  auto f = p.get_future().then([&](int) { ran_on = std::this_thread::get_id(); });
  std::thread producer([&] { p.set_value(1); });
  auto producer_id = producer.get_id();
  producer.join();
  f.result();
  EXPECT_EQ(ran_on, producer_id);
}

// The continuation's future must not stay pending forever when its executor
// refuses the work: it fails with the executor's error.
TEST(Then, ExecutorThatRefusesFailsTheContinuation) {
  using namespace std::chrono_literals;
  RefusingExecutor ex;
  bool ran = false;
  auto ready = celeriac::make_ready_future(1).then(ex, [&](int) { ran = true; });
  EXPECT_THROW(ready.result(1s), celeriac::BrokenExecutor);
  Promise<int> p;
  auto later = p.get_future().then(ex, [&](int x) {
    ran = true;
    return x;
  });
  EXPECT_FALSE(later.done());
  p.set_value(2);
  EXPECT_THROW(later.result(1s), celeriac::BrokenExecutor);
  EXPECT_FALSE(ran);
}

TEST(Then, OnAnInvalidFutureThrowsInvalidState) {
  Future<int> f;
  EXPECT_THROW(f.then([](int x) { return x; }), celeriac::InvalidStateError);
  EXPECT_THROW(f.add_done_callback([] {}), celeriac::InvalidStateError);
}
