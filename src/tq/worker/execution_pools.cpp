// The four execution pools of the worker (-P threads|processes|async|solo).
#include <condition_variable>
#include <csignal>
#include <future>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/sync/thread_name.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/detail/execution_pool.hpp"
#include "celeriac/tq/worker.hpp"
#include "child_signals.hpp"
#include "task_threads.hpp"
#include "time_limits.hpp"

namespace celeriac::tq::detail {

namespace {

TimeLimits limits_of(const PoolSettings& s) {
  return TimeLimits{s.soft_time_limit, s.time_limit};
}

// A body run on a TaskThreads thread: given up (its slot replaced) when its
// result was stored at the hard limit or by a terminate.
InterruptHooks thread_hooks(TaskThreads& threads) {
  InterruptHooks h;
  h.abandon = [&threads, me = std::this_thread::get_id()] { threads.abandon(me); };
  return h;
}

// -P threads: bodies on TaskThreads (a thread past its hard time limit is
// replaced; see time_limits.hpp).
class ThreadsPool final : public ExecutionPool {
 public:
  ThreadsPool(JobRunner& runner, const PoolSettings& s)
      : runner_(runner), sup_(runner, limits_of(s)), threads_(s.concurrency, "celeriac-task") {}
  std::string_view name() const noexcept override { return "threads"; }
  std::size_t concurrency() const noexcept override { return threads_.size(); }
  void submit(JobPtr job) override {
    threads_.post([this, job = std::move(job)] {
      run_supervised(
          runner_, sup_, job, thread_hooks(threads_),
          [&](Context& ctx, const Supervised&) { return run_here(ctx, *job->def, job->msg); });
    });
  }
  void shutdown() override {
    threads_.shutdown();
    sup_.stop();
  }
  bool terminate(const std::string& id, int signal) override { return sup_.terminate(id, signal); }

 private:
  JobRunner& runner_;
  Supervisor sup_;  // before threads_: the threads use it
  TaskThreads threads_;
};

// -P processes: each body in a child process of the mp pool; a thread of
// an exec::ThreadPool waits for each running child. mp kills a child past
// the hard limit; the soft limit and terminate are signals to the child.
class ProcessesPool final : public ExecutionPool {
 public:
  ProcessesPool(JobRunner& runner, const PoolSettings& s)
      : runner_(runner),
        children_(runner.app(), s.concurrency, s.max_tasks_per_child, s.max_memory_per_child),
        sup_(runner, limits_of(s)),
        waiters_(s.concurrency) {}
  std::string_view name() const noexcept override { return "processes"; }
  std::size_t concurrency() const noexcept override { return waiters_.max_workers(); }
  void submit(JobPtr job) override {
    waiters_.post([this, job = std::move(job)] {
      InterruptHooks hooks;
      hooks.hard_by_pool = true;
      hooks.soft = [job] { signal_or_warn(*job, SIGUSR1); };
      hooks.terminate = [job](int sig) { return signal_child(job->msg.id, sig); };
      run_supervised(runner_, sup_, job, std::move(hooks), [&](Context&, const Supervised& s) {
        std::optional<std::chrono::milliseconds> hard;
        if (s.limits.hard)
          hard = std::chrono::milliseconds(static_cast<std::int64_t>(*s.limits.hard * 1000.0));
        return children_.run(job->delivery.envelope, runner_.hostname(), hard);
      });
    });
  }
  void shutdown() override {
    waiters_.shutdown(true);
    children_.shutdown();
    sup_.stop();
  }
  bool terminate(const std::string& id, int signal) override { return sup_.terminate(id, signal); }

 private:
  static void signal_or_warn(const Job& job, int sig) {
    if (!signal_child(job.msg.id, sig))
      spdlog::warn("task {}[{}]: no child process runs it now; signal {} not sent", job.msg.task,
                   job.msg.id, sig);
  }

  JobRunner& runner_;
  ProcessRunner children_;  // before waiters_: the fork server starts before any thread
  Supervisor sup_;
  exec::ThreadPool waiters_;
};

// -P async: every job is a coroutine on one event loop (its own thread);
// coroutine tasks are awaited there, plain ones go to aio::to_thread. A
// coroutine body is cancelled (CancelledError at its next await) at the
// soft limit, the hard limit and on terminate; a plain body only gets the
// cooperative flag.
class AsyncPool final : public ExecutionPool {
 public:
  AsyncPool(JobRunner& runner, const PoolSettings& s)
      : runner_(runner), concurrency_(s.concurrency), sup_(runner, limits_of(s)) {
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
    sup_.stop();
    loop_->stop();
    thread_.join();
  }
  bool terminate(const std::string& id, int signal) override { return sup_.terminate(id, signal); }

 private:
  // The body's task handle, touched on the loop thread only.
  using BodySlot = std::optional<aio::TaskHandle<Outcome>>;

  InterruptHooks hooks_for(const JobPtr& job, const std::shared_ptr<BodySlot>& body) {
    InterruptHooks h;
    if (!job->def->run_async) return h;  // plain: runs on a thread, cooperative only
    auto cancel = [loop = loop_, body] {
      loop->call_soon_threadsafe([body] {
        if (*body) (*body)->cancel();
      });
    };
    h.soft = cancel;
    h.abandon = cancel;
    h.terminate = [cancel](int) {
      cancel();
      return true;
    };
    return h;
  }

  aio::Task<void> run(JobPtr job) {
    if (runner_.begin(job)) {
      auto body = std::make_shared<BodySlot>();
      if (SupervisedPtr s = sup_.watch(job, hooks_for(job, body))) {
        Context ctx(runner_.app(), *job->def, job->msg, runner_.hostname());
        ctx.set_cancellation(s->cancel);
        *body = loop_->spawn(run_on_loop(ctx, *job->def, job->msg));
        Outcome out;
        try {
          out = co_await **body;
        } catch (...) {
          out.error = std::current_exception();
        }
        body->reset();
        sup_.finished(s, cancelled_outcome(*s, std::move(out)));
      }
    }
    std::lock_guard lock(mu_);
    if (--running_ == 0) idle_.notify_all();
  }

  // A coroutine cancelled at its soft limit ends with CancelledError; the
  // result says why, as Celery's does.
  static Outcome cancelled_outcome(const Supervised& s, Outcome out) {
    if (!out.error) return out;
    try {
      std::rethrow_exception(out.error);
    } catch (const CancelledError&) {
      if (s.cancel->reason.load() == Cancellation::kSoftTimeLimit)
        out.error = std::make_exception_ptr(SoftTimeLimitExceeded());
      else if (s.cancel->reason.load() == Cancellation::kRevoked)
        out.error = std::make_exception_ptr(TaskRevokedError("terminated"));
    } catch (...) {
    }
    return out;
  }

  JobRunner& runner_;
  std::size_t concurrency_;
  Supervisor sup_;
  aio::EventLoop* loop_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::size_t running_ = 0;
};

// -P solo: one job at a time; submit() returns when its result is in. The
// body runs on a TaskThreads thread of one, so a body given up at its hard
// limit (or by terminate) leaves the worker consuming on a fresh thread.
class SoloPool final : public ExecutionPool {
 public:
  SoloPool(JobRunner& runner, const PoolSettings& s)
      : runner_(runner), sup_(runner, limits_of(s)), thread_(1, "celeriac-solo") {}
  std::string_view name() const noexcept override { return "solo"; }
  std::size_t concurrency() const noexcept override { return 1; }
  void submit(JobPtr job) override {
    auto done = std::make_shared<std::promise<void>>();
    auto settled = std::make_shared<std::once_flag>();
    auto settle = [done, settled] { std::call_once(*settled, [&] { done->set_value(); }); };
    auto result = done->get_future();
    thread_.post([this, job = std::move(job), settle] {
      InterruptHooks hooks = thread_hooks(thread_);
      hooks.abandon = [abandon = hooks.abandon, settle] {
        abandon();
        settle();
      };
      run_supervised(runner_, sup_, job, std::move(hooks), [&](Context& ctx, const Supervised&) {
        return run_here(ctx, *job->def, job->msg);
      });
      settle();
    });
    result.wait();
  }
  void shutdown() override {
    thread_.shutdown();
    sup_.stop();
  }
  bool terminate(const std::string& id, int signal) override { return sup_.terminate(id, signal); }

 private:
  JobRunner& runner_;
  Supervisor sup_;
  TaskThreads thread_;
};

}  // namespace

std::size_t default_concurrency(std::string_view kind) {
  if (kind == "solo") return 1;
  if (kind == "async") return kDefaultAsyncConcurrency;
  return std::max(1u, std::thread::hardware_concurrency());
}

std::unique_ptr<ExecutionPool> make_execution_pool(std::string_view kind, JobRunner& runner,
                                                   const PoolSettings& s) {
  if (kind == "threads") return std::make_unique<ThreadsPool>(runner, s);
  if (kind == "processes") return std::make_unique<ProcessesPool>(runner, s);
  if (kind == "async") return std::make_unique<AsyncPool>(runner, s);
  if (kind == "solo") return std::make_unique<SoloPool>(runner, s);
  throw ConfigError("unknown pool '" + std::string(kind) +
                    "' (expected threads, processes, async or solo)");
}

}  // namespace celeriac::tq::detail
