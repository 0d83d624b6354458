// Worker: consumes task messages and runs them on a pool (Celery's
// `celery worker`): threads (default), processes, async or solo.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"

namespace celeriac::tq {

/// Tasks the async pool runs at once when no concurrency is given.
inline constexpr std::size_t kDefaultAsyncConcurrency = 100;

/// Worker settings (celery worker options of the same meaning).
struct WorkerOptions {
  std::string hostname;             ///< "" = celery@<host>
  std::vector<std::string> queues;  ///< -Q; empty = the app's default queue
  /// -P: "threads" (default), "processes" (each task in a child process of
  /// celeriac::mp: a crash fails only its task), "async" (coroutine tasks on
  /// one event loop; plain tasks go to aio::to_thread) or "solo" (one at a
  /// time on the consumer thread).
  std::string pool = "threads";
  /// -c; 0 = hardware threads (async: kDefaultAsyncConcurrency tasks at once; solo: 1)
  int concurrency = 0;
  int prefetch_multiplier = 4;  ///< messages held per pool slot
  bool acks_late = false;       ///< ack after the task finished
  /// With acks_late: a task whose child process died is put back in its
  /// queue instead of failing with WorkerLostError (processes pool).
  bool reject_on_worker_lost = false;
  /// processes pool: a child is replaced after this many tasks (0: never).
  std::size_t max_tasks_per_child = 0;
  /// processes pool: a child whose peak resident memory went above this
  /// many KiB is replaced after its task (Celery's flag; 0: never).
  std::size_t max_memory_per_child = 0;
  std::size_t max_message_size = kDefaultMaxMessageSize;  ///< bigger envelopes are dead-lettered
  /// kombu's visibility timeout: while the worker runs it renews its own
  /// reservations and restores any older than this (a crashed worker's)
  /// every quarter of it. 0 = the broker URL's `?visibility_timeout=S`, else 1 h.
  std::chrono::seconds visibility_timeout{0};
  std::chrono::milliseconds poll_interval{100};  ///< reserve() timeout per round
  /// -E: publish task-* events (the broker URL's `?events=1` is an alias).
  bool task_events = false;
  /// --time-limit: hard time limit (s) of tasks that set none (message
  /// header first, then TaskOptions::time_limit, then this); every pool.
  std::optional<double> time_limit;
  /// --soft-time-limit: the soft limit (s), with the same precedence.
  std::optional<double> soft_time_limit;
};

/// Counters, for stats/tests.
struct WorkerCounters {
  std::uint64_t received = 0;       ///< messages taken from the broker
  std::uint64_t succeeded = 0;      ///< finished with a result
  std::uint64_t failed = 0;         ///< finished with an error (FAILURE)
  std::uint64_t retried = 0;        ///< republished for a retry
  std::uint64_t revoked = 0;        ///< expired or revoked
  std::uint64_t dead_lettered = 0;  ///< malformed, unknown, canvas, oversized
};

/// Consumes queues of an App and runs its tasks. start() returns at once;
/// stop() is graceful (running tasks finish, prefetched messages go back);
/// stop(true) puts back everything not acknowledged and returns at once.
class Worker final : public WorkerControl {
 public:
  /// A worker for `app`'s tasks; nothing runs until start().
  Worker(App& app, WorkerOptions options = {});
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Starts consuming (consumer thread + pool). Throws ConfigError for bad
  /// options (unknown pool, concurrency < 1, ...).
  void start();
  /// Requests shutdown. Graceful: stop consuming, finish running tasks, put
  /// prefetched/ETA-held messages back. immediate = also do not wait for
  /// running tasks' acks_late messages (they are put back).
  void stop(bool immediate = false);
  /// Waits until stopped (after stop() or a remote shutdown); true if
  /// stopped within `timeout`.
  bool wait(std::chrono::milliseconds timeout);
  /// start(), then block until a stop() (from another thread or a signal handler thread).
  void run();
  /// Whether start() was called and the worker has not fully stopped.
  bool running() const noexcept;
  /// Counters so far.
  WorkerCounters counters() const;
  /// The options it was made with.
  const WorkerOptions& options() const noexcept;

  // WorkerControl
  std::string hostname() const override;
  std::vector<std::string> queues() const override;
  std::vector<std::string> registered() const override;
  Json stats() const override;
  Json active() const override;
  Json reserved() const override;
  /// Revokes `task_id`; with `terminate` a running one is stopped with
  /// SIGTERM (processes pool) or cancelled (other pools) and stored REVOKED.
  void revoke(const std::string& task_id, bool terminate);
  /// As revoke(), with the signal a terminated child gets (processes pool;
  /// the other pools cancel cooperatively whatever the signal).
  void revoke(const std::string& task_id, bool terminate, int signal) override;
  void shutdown() override;
  Json rate_limit(const std::string& task_name, const std::string& rate) override;
  Json conf() const override;
  Json scheduled() const override;
  Json revoked() const override;
  /// pool_grow, pool_shrink (threads and processes pools), add_consumer,
  /// cancel_consumer, live.
  std::optional<Json> control(const std::string& method, const Json& arguments) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace celeriac::tq
