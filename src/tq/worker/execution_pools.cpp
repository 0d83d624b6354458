// The four execution pools of the worker (-P threads|processes|async|solo).
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/sync/thread_name.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/detail/execution_pool.hpp"
#include "celeriac/tq/worker.hpp"

namespace celeriac::tq::detail {

namespace {

// begin -> the body (`body(ctx)`) -> finish, on the calling thread.
template <class Body>
void run_job(JobRunner& runner, const JobPtr& job, Body&& body) {
  if (!runner.begin(job)) return;
  Context ctx(runner.app(), *job->def, job->msg, runner.hostname());
  runner.finish(*job, body(ctx));
}

// -P threads: bodies on an exec::ThreadPool of `concurrency` threads.
class ThreadsPool final : public ExecutionPool {
 public:
  ThreadsPool(JobRunner& runner, std::size_t n) : runner_(runner), threads_(n) {}
  std::string_view name() const noexcept override { return "threads"; }
  std::size_t concurrency() const noexcept override { return threads_.max_workers(); }
  void submit(JobPtr job) override {
    threads_.post([this, job = std::move(job)] {
      run_job(runner_, job, [&](Context& ctx) { return run_here(ctx, *job->def, job->msg); });
    });
  }
  void shutdown() override { threads_.shutdown(true); }

 private:
  JobRunner& runner_;
  exec::ThreadPool threads_;
};

// -P processes: each body in a child process of the mp pool; a thread of
// an exec::ThreadPool waits for each running child.
class ProcessesPool final : public ExecutionPool {
 public:
  ProcessesPool(JobRunner& runner, const PoolSettings& s)
      : runner_(runner),
        children_(runner.app(), s.concurrency, s.max_tasks_per_child, s.max_memory_per_child),
        waiters_(s.concurrency) {}
  std::string_view name() const noexcept override { return "processes"; }
  std::size_t concurrency() const noexcept override { return waiters_.max_workers(); }
  void submit(JobPtr job) override {
    waiters_.post([this, job = std::move(job)] {
      run_job(runner_, job, [&](Context&) {
        return children_.run(job->delivery.envelope, runner_.hostname(), time_limit_of(job->msg));
      });
    });
  }
  void shutdown() override {
    waiters_.shutdown(true);
    children_.shutdown();
  }

 private:
  JobRunner& runner_;
  ProcessRunner children_;  // before waiters_: the fork server starts before any thread
  exec::ThreadPool waiters_;
};

// -P async: every job is a coroutine on one event loop (its own thread);
// coroutine tasks are awaited there, plain ones go to aio::to_thread.
class AsyncPool final : public ExecutionPool {
 public:
  AsyncPool(JobRunner& runner, std::size_t n) : runner_(runner), concurrency_(n) {
    std::promise<aio::EventLoop*> ready;
    auto started = ready.get_future();
    thread_ = std::thread([&ready] {
      sync::set_current_thread_name("celeriac-aloop");
      aio::EventLoop loop;
      ready.set_value(&loop);
      loop.run_forever();
    });
    loop_ = started.get();
  }
  std::string_view name() const noexcept override { return "async"; }
  std::size_t concurrency() const noexcept override { return concurrency_; }
  void submit(JobPtr job) override {
    {
      std::lock_guard lock(mu_);
      ++running_;
    }
    loop_->call_soon_threadsafe(
        [this, job = std::move(job)]() mutable { loop_->spawn(run(std::move(job))); });
  }
  void shutdown() override {
    {
      std::unique_lock lock(mu_);
      idle_.wait(lock, [&] { return running_ == 0; });
    }
    loop_->stop();
    thread_.join();
  }

 private:
  aio::Task<void> run(JobPtr job) {
    if (runner_.begin(job)) {
      Context ctx(runner_.app(), *job->def, job->msg, runner_.hostname());
      Outcome out = co_await run_on_loop(ctx, *job->def, job->msg);
      runner_.finish(*job, std::move(out));
    }
    std::lock_guard lock(mu_);
    if (--running_ == 0) idle_.notify_all();
  }

  JobRunner& runner_;
  std::size_t concurrency_;
  aio::EventLoop* loop_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::size_t running_ = 0;
};

// -P solo: one job at a time on the consumer's thread.
class SoloPool final : public ExecutionPool {
 public:
  explicit SoloPool(JobRunner& runner) : runner_(runner) {}
  std::string_view name() const noexcept override { return "solo"; }
  std::size_t concurrency() const noexcept override { return 1; }
  void submit(JobPtr job) override {
    run_job(runner_, job, [&](Context& ctx) { return run_here(ctx, *job->def, job->msg); });
  }
  void shutdown() override {}

 private:
  JobRunner& runner_;
};

}  // namespace

std::size_t default_concurrency(std::string_view kind) {
  if (kind == "solo") return 1;
  if (kind == "async") return kDefaultAsyncConcurrency;
  return std::max(1u, std::thread::hardware_concurrency());
}

std::unique_ptr<ExecutionPool> make_execution_pool(std::string_view kind, JobRunner& runner,
                                                   const PoolSettings& s) {
  if (kind == "threads") return std::make_unique<ThreadsPool>(runner, s.concurrency);
  if (kind == "processes") return std::make_unique<ProcessesPool>(runner, s);
  if (kind == "async") return std::make_unique<AsyncPool>(runner, s.concurrency);
  if (kind == "solo") return std::make_unique<SoloPool>(runner);
  throw ConfigError("unknown pool '" + std::string(kind) +
                    "' (expected threads, processes, async or solo)");
}

}  // namespace celeriac::tq::detail
