// Worker: consumes task messages and runs them on a pool (Celery's
// `celery worker`): threads (default) or solo.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"

namespace celeriac::tq {

/// Worker settings (celery worker options of the same meaning).
struct WorkerOptions {
  std::string hostname;                                  ///< "" = celery@<host>
  std::vector<std::string> queues;                       ///< -Q; empty = the app's default queue
  std::string pool = "threads";                          ///< -P: "threads" or "solo"
  int concurrency = 0;                                   ///< -c; 0 = hardware threads (solo: 1)
  int prefetch_multiplier = 4;                           ///< messages held per pool slot
  bool acks_late = false;                                ///< ack after the task finished
  std::size_t max_message_size = kDefaultMaxMessageSize; ///< bigger envelopes are dead-lettered
  std::chrono::seconds visibility_timeout{3600};         ///< restore_stale() age at start-up
  std::chrono::milliseconds poll_interval{100};          ///< reserve() timeout per round
};

/// Counters, for stats/tests.
struct WorkerCounters {
  std::uint64_t received = 0;      ///< messages taken from the broker
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::uint64_t retried = 0;
  std::uint64_t revoked = 0;       ///< expired or revoked
  std::uint64_t dead_lettered = 0; ///< malformed, unknown, canvas, oversized
};

/// Consumes queues of an App and runs its tasks. start() returns at once;
/// stop() is graceful (running tasks finish, prefetched messages go back);
/// stop(true) puts back everything not acknowledged and returns at once.
class Worker final : public WorkerControl {
 public:
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
  const WorkerOptions& options() const noexcept;

  // WorkerControl
  std::string hostname() const override;
  std::vector<std::string> queues() const override;
  std::vector<std::string> registered() const override;
  Json stats() const override;
  Json active() const override;
  Json reserved() const override;
  void revoke(const std::string& task_id, bool terminate) override;
  void shutdown() override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace celeriac::tq
