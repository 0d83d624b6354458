// How the worker runs a task's body in each pool (-P): on the calling thread
// (threads, solo), on an event loop (async) or in a child process
// (processes), all producing the same Outcome.
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "celeriac/aio/task.hpp"
#include "celeriac/tq/context.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/task.hpp"

namespace celeriac::tq {
class App;
}

namespace celeriac::tq::detail {

/// What running a task's body produced: a result, a retry request or an error.
struct Outcome {
  Json result;
  std::optional<Retry> retry;
  std::exception_ptr error;
};

/// The outcome of an exception the body threw: Retry stays a retry; an error
/// matching the task's autoretry_for becomes a retry (backoff, jitter);
/// anything else is the error.
Outcome outcome_of_exception(const TaskDef& def, const TaskMessage& m, std::exception_ptr e);

/// Runs the body on this thread (threads and solo pools; a coroutine task
/// runs on a private event loop).
Outcome run_here(Context& ctx, const TaskDef& def, const TaskMessage& m);

/// Runs the body on the running event loop (async pool): a coroutine task is
/// awaited there, a plain task runs on aio::to_thread so the loop never blocks.
aio::Task<Outcome> run_on_loop(Context& ctx, const TaskDef& def, const TaskMessage& m);

/// The processes pool (-P processes): task bodies run in children of a
/// celeriac::mp::ProcessPool, forked from the fork server, so a task that
/// crashes, aborts or exits fails alone (WorkerLostError, as Celery's
/// prefork pool) and its child is replaced. The children know the app's
/// tasks as they were registered when the fork server started: the worker
/// starts it (mp::init()) before any thread of its own.
class ProcessRunner {
 public:
  /// `workers` children; each replaced after `max_tasks_per_child` tasks (0: never).
  /// A child whose peak RSS passed `max_memory_per_child` KiB is replaced after its task (0:
  /// never).
  ProcessRunner(App& app, std::size_t workers, std::size_t max_tasks_per_child,
                std::size_t max_memory_per_child = 0);
  ~ProcessRunner();
  ProcessRunner(const ProcessRunner&) = delete;
  ProcessRunner& operator=(const ProcessRunner&) = delete;

  /// Runs the task of `envelope` (the bytes as received: the child decodes
  /// them, nothing is encoded again) in a child and waits for it.
  /// `time_limit`: the child is killed past it and the task fails with
  /// TimeLimitExceeded.
  Outcome run(const std::string& envelope, const std::string& hostname,
              std::optional<std::chrono::milliseconds> time_limit);
  /// Waits for running tasks and reaps every child.
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The hard time limit a message carries (headers.timelimit[0]), if any.
std::optional<std::chrono::milliseconds> time_limit_of(const TaskMessage& m);

/// Starts celeriac::mp's fork server now, with `app` as the app the
/// processes pool's children run tasks of. Call before starting threads.
void prepare_process_pool(App& app);

}  // namespace celeriac::tq::detail
