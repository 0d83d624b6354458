// The worker's execution pools (-P): one interface, four implementations,
// chosen once when the worker starts. A pool decides only *where* a job's
// body runs (a thread of an exec::ThreadPool, a child process, the event
// loop, the consumer's own thread); everything around the body (ack,
// STARTED, result, events, retry) belongs to the job lifecycle, which the
// pool reaches through JobRunner.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/detail/execution.hpp"

namespace celeriac::tq::detail {

/// A reserved message on its way through the worker. The consumer makes
/// it from the delivery alone; the lifecycle decodes it on the pool's
/// thread (so decoding runs in parallel, off the consumer).
struct Job {
  Delivery delivery;                                ///< the broker's receipt (ack, requeue)
  TaskMessage msg;                                  ///< the decoded message (once admitted)
  const TaskDef* def = nullptr;                     ///< the registered task (null until admitted)
  std::chrono::steady_clock::time_point started{};  ///< when the body began
  bool rate_slot_taken = false;                     ///< its rate-limit start slot is reserved
};
using JobPtr = std::shared_ptr<Job>;

/// What a pool calls around each body: the job lifecycle. Thread-safe.
class JobRunner {
 public:
  virtual ~JobRunner() = default;
  /// Called right before the body, on the thread that will run it: admits
  /// the job (decodes and checks it) if not yet done, then starts it. False:
  /// do not run it (bad, revoked, expired, held for its ETA or shutting
  /// down; already dealt with).
  virtual bool begin(const JobPtr& job) = 0;
  /// Called once with what the body produced, on any thread.
  virtual void finish(Job& job, Outcome outcome) = 0;
  /// The app whose tasks run.
  virtual App& app() = 0;
  /// The worker's node name (for Context).
  virtual const std::string& hostname() const = 0;
};

/// Where task bodies run.
class ExecutionPool {
 public:
  virtual ~ExecutionPool() = default;
  /// "threads", "processes", "async" or "solo".
  virtual std::string_view name() const noexcept = 0;
  /// Bodies that may run at once.
  virtual std::size_t concurrency() const noexcept = 0;
  /// Runs begin -> body -> finish for `job`. Returns at once, except the
  /// solo pool, which runs the job on the calling thread.
  virtual void submit(JobPtr job) = 0;
  /// Waits until every submitted job has finished, then releases the pool's
  /// threads, loop or children. Called once.
  virtual void shutdown() = 0;
  /// Revoke with terminate: stops the running body of `task_id` (processes:
  /// `signal` to its child; async: cancellation; threads/solo: the
  /// cooperative flag) and stores it REVOKED at once. False when it does
  /// not run here.
  virtual bool terminate(const std::string& task_id, int signal) {
    (void)task_id;
    (void)signal;
    return false;
  }
};

/// The pool names -P accepts.
inline constexpr std::array<std::string_view, 4> kPoolNames{"threads", "processes", "async",
                                                            "solo"};

/// Settings a pool is made with.
struct PoolSettings {
  std::size_t concurrency = 1;          ///< bodies at once (solo: 1)
  std::size_t max_tasks_per_child = 0;  ///< processes: replace a child after this many (0: never)
  std::size_t max_memory_per_child =
      0;  ///< processes: replace a child whose peak RSS passed this (KiB)
};

/// Makes the pool named `kind` (one of kPoolNames; ConfigError otherwise).
/// The processes pool starts mp's fork server: call before the worker
/// starts threads of its own.
std::unique_ptr<ExecutionPool> make_execution_pool(std::string_view kind, JobRunner& runner,
                                                   const PoolSettings& settings);

/// Tasks a pool of `kind` runs at once when -c is not given: hardware
/// threads (async: kDefaultAsyncConcurrency; solo: 1).
std::size_t default_concurrency(std::string_view kind);

}  // namespace celeriac::tq::detail
