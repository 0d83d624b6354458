// The job lifecycle: every state a task message goes through in the worker,
// one function per transition —
//
//   admit    (decoded and checked on the pool's thread; dead-lettered,
//             revoked, expired or handed back to be held for its ETA here)
//   begin    (started: early ack, STARTED, task-started)
//   finish   -> succeed | fail | retry | requeue_lost
//   revoke   (revoked or expired, at receive or at begin)
//   put_back (shutdown before it started)
//
// Results, events, retries and dead letters happen here and nowhere else;
// features (canvas steps, rate limits, monitoring) hook into a transition.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../flow/rate_limiter.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/detail/execution_pool.hpp"
#include "celeriac/tq/worker.hpp"
#include "result_writer.hpp"

namespace celeriac::tq::detail {

/// The worker's books: counters and the requests it holds. Thread-safe.
struct WorkerBooks {
  mutable std::mutex mu;
  WorkerCounters counters;
  std::map<std::string, std::uint64_t> totals;      // succeeded per task name
  std::unordered_map<const Job*, JobPtr> waiting;   // dispatched, not begun (prefetched)
  std::unordered_map<std::string, JobPtr> running;  // begun, not finished
  std::unordered_set<std::string> revoked;          // ids revoked by remote control
};

/// Lifecycle settings, fixed when the worker starts.
struct LifecycleSettings {
  std::string hostname;
  bool acks_late = false;
  bool reject_on_worker_lost = false;
  std::size_t max_message_size = kDefaultMaxMessageSize;
};

class JobLifecycle final : public JobRunner {
 public:
  JobLifecycle(App& app, Broker& broker, WorkerBooks& books, LifecycleSettings settings);

  /// Called when a dispatched job leaves the worker (finished, rejected at
  /// admission, put back): the consumer's prefetch window reopens by one.
  void on_released(std::function<void()> fn) { released_ = std::move(fn); }
  /// Called with an admitted job whose ETA is still ahead: the consumer
  /// holds it (outside the window) and dispatches it again when due.
  void on_eta_ahead(std::function<void(JobPtr)> fn) { eta_ahead_ = std::move(fn); }
  /// Called with a job that must wait for its rate limit until the time given:
  /// the consumer holds it (outside the window) and dispatches it again then.
  void on_rate_limited(std::function<void(JobPtr, TimePoint)> fn) { rate_hold_ = std::move(fn); }
  /// The worker's rate limiter (must outlive the lifecycle).
  void set_rate_limiter(RateLimiter* limiter) { limiter_ = limiter; }
  /// Adds a service that receives the task events.
  void add_service(std::unique_ptr<WorkerService> s) { services_.push_back(std::move(s)); }
  /// Stops the services (before the broker restores what is unacknowledged).
  void stop_services();
  /// From now on begin() puts jobs back instead of running them.
  void stop() { stopping_ = true; }

  /// Jobs handed to the pool (prefetched until they begin).
  void dispatched(const std::vector<JobPtr>& jobs);
  /// Puts a reserved job back in its queue (shutdown before it ran).
  void put_back(Job& job);

  // JobRunner
  bool begin(const JobPtr& job) override;
  void finish(Job& job, Outcome outcome) override;
  App& app() override { return app_; }
  const std::string& hostname() const override { return settings_.hostname; }

  /// The request info of `job` as remote control shows it.
  Json request_info(const Job& job, bool acknowledged) const;

 private:
  enum class Admission { run, held, done };
  Admission admit(const JobPtr& job);
  void succeed(Job& job, Json result, double runtime);
  void fail(const TaskMessage& m, const TaskError& error, bool store_results,
            const std::string& what, std::optional<Delivery> ack_after = std::nullopt);
  void retry(Job& job, const Retry& r, bool store_results);
  void requeue_lost(Job& job);
  void revoke(Job& job, const std::string& why);
  void dead_letter(const Delivery& d, const std::string& reason,
                   const std::optional<std::string>& id, const std::optional<std::string>& name,
                   const std::optional<TaskError>& error);
  void release(const Job& job);

  bool acks_late(const Job& job) const {
    return job.def->options.acks_late.value_or(settings_.acks_late);
  }
  bool should_store(const TaskMessage& m, const TaskDef* def) const {
    return !m.ignore_result && !(def && def->options.ignore_result);
  }
  ResultMeta make_meta(const TaskMessage& m, State state) const;
  ResultMeta error_meta(const TaskMessage& m, const TaskError& err,
                        const std::string& traceback) const;
  std::string traceback_for(const TaskMessage& m, const TaskError& e) const;
  void ack(const Job& job);
  bool has_services() const { return !services_.empty(); }
  void emit(const Json& event);
  void count(std::uint64_t WorkerCounters::*counter);

  App& app_;
  Broker& broker_;
  LifecycleSettings settings_;
  ResultWriter writer_;
  WorkerBooks& books_;
  std::vector<std::unique_ptr<WorkerService>> services_;
  std::function<void()> released_;
  std::function<void(JobPtr)> eta_ahead_;
  std::function<void(JobPtr, TimePoint)> rate_hold_;
  RateLimiter* limiter_ = nullptr;
  std::atomic<bool> stopping_{false};
};

}  // namespace celeriac::tq::detail
