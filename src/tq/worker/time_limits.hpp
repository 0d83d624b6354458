// Time limits and revoke --terminate for every pool: which limits a job
// has (Celery's precedence), and the Supervisor that watches running bodies
// and acts at their soft and hard limits or on a terminating revoke. The
// pools say *how* a body is interrupted (hooks); the supervisor says *when*
// and reports the outcome to the job lifecycle exactly once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq/context.hpp"
#include "celeriac/tq/detail/execution_pool.hpp"

namespace celeriac::tq::detail {

/// A job's soft and hard time limits in seconds (nullopt: none).
struct TimeLimits {
  std::optional<double> soft;  ///< SoftTimeLimitExceeded past it
  std::optional<double> hard;  ///< TimeLimitExceeded past it
};

/// ConfigError naming `owner` (e.g. "task 'add'") and the value when a limit
/// is negative, not finite, or the soft limit is above the hard one.
void check_time_limits(const std::string& owner, std::optional<double> soft,
                       std::optional<double> hard);

/// The limits `job` runs with, each one as Celery's request does: the
/// message's timelimit header, else the task's option, else the worker's
/// default (0 or none: no limit). Throws TaskError("ValueError") naming the
/// task and value when the result is invalid (a header from another client).
TimeLimits effective_time_limits(const TaskMessage& m, const TaskOptions& task,
                                 const TimeLimits& worker);

/// How a pool interrupts one running body. Each hook runs on the
/// supervisor's thread with its lock held: quick, and never calling back.
struct InterruptHooks {
  /// At the soft limit, after Context::cancelled() became true (async:
  /// cancel the coroutine; processes: signal the child).
  std::function<void()> soft;
  /// After the outcome was reported for the body, which may still run
  /// (threads/solo: replace its thread).
  std::function<void()> abandon;
  /// Revoke with terminate: the signal number (processes: signal the
  /// child; async: cancel the coroutine). False when it could not act yet
  /// (processes: no child has started the body): the supervisor then tries
  /// again every few milliseconds until it can or the body returns, as
  /// Celery's terminate-on-accept does.
  std::function<bool(int)> terminate;
  /// The pool enforces the hard limit itself (processes: mp kills the
  /// child); the supervisor then acts only at the soft limit.
  bool hard_by_pool = false;
};

/// One body under supervision (made by Supervisor::watch()).
struct Supervised {
  JobPtr job;
  std::shared_ptr<Cancellation> cancel = std::make_shared<Cancellation>();
  InterruptHooks hooks;
  TimeLimits limits;
  std::optional<std::chrono::steady_clock::time_point> soft_at, hard_at;
  std::atomic<bool> reported{false};
  /// True for the one caller that reports the outcome.
  bool claim() noexcept { return !reported.exchange(true); }
};
using SupervisedPtr = std::shared_ptr<Supervised>;

/// Watches running bodies (one thread). Thread-safe.
class Supervisor {
 public:
  /// Reports outcomes to `runner`; `defaults` are the worker's limits.
  Supervisor(JobRunner& runner, TimeLimits defaults);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// Registers the body of `job` (after JobRunner::begin()) with the
  /// job's effective limits. nullptr (the job already reported as a FAILURE)
  /// when its message carries invalid limits.
  SupervisedPtr watch(const JobPtr& job, InterruptHooks hooks);
  /// The body returned `out`: reports it unless a limit or a terminate did
  /// already (then it is discarded with a warning). Unregisters the body.
  void finished(const SupervisedPtr& s, Outcome out);
  /// Revoke with terminate of `task_id`: a running body is asked to stop,
  /// interrupted through its pool's hook and stored REVOKED at once. False
  /// when no body of that id runs here.
  bool terminate(const std::string& task_id, int signal);
  /// The worker's limits.
  const TimeLimits& defaults() const noexcept { return defaults_; }
  /// Stops the thread (bodies still running are no longer watched).
  void stop();

 private:
  void loop();
  void unregister(const Supervised& s);

  JobRunner& runner_;
  TimeLimits defaults_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::vector<SupervisedPtr> running_;
  std::vector<std::pair<SupervisedPtr, int>> undelivered_;  // terminate signals to try again
  bool stopping_ = false;
  std::thread thread_;
};

/// begin -> watch -> body -> finished, on the calling thread, for pools
/// that run the body here; `body(ctx, supervised)` makes the Outcome.
template <class Body>
void run_supervised(JobRunner& runner, Supervisor& sup, const JobPtr& job, InterruptHooks hooks,
                    Body&& body) {
  if (!runner.begin(job)) return;
  SupervisedPtr s = sup.watch(job, std::move(hooks));
  if (!s) return;
  Context ctx(runner.app(), *job->def, job->msg, runner.hostname());
  ctx.set_cancellation(s->cancel);
  sup.finished(s, body(ctx, *s));
}

}  // namespace celeriac::tq::detail
