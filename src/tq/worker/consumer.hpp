// The consumer: reserves messages from the broker into the prefetch window
// and hands them to the execution pool (decoding happens there, in parallel),
// holds those the lifecycle finds with a future ETA until due, and — while it runs — renews this
// worker's reservations and restores other workers' stale ones (kombu's visibility timeout), so a
// crashed worker's messages come back without a restart. Acknowledgements are batched by the
// broker, not here.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "celeriac/tq/broker.hpp"
#include "lifecycle.hpp"

namespace celeriac::tq::detail {

/// Consumer settings, fixed when the worker starts.
struct ConsumerSettings {
  std::vector<std::string> queues;                ///< consumed, in priority order
  std::size_t window = 4;                         ///< messages held at once (ETA-held excluded)
  std::chrono::milliseconds poll_interval{100};   ///< longest reserve() wait
  std::chrono::seconds visibility_timeout{3600};  ///< kombu's; restore/renew period derives from it
};

class Consumer {
 public:
  /// `dispatch` hands a job to the execution pool; `after_stop` runs on the
  /// consumer's thread once it has stopped (the worker's shutdown sequence).
  Consumer(Broker& broker, JobLifecycle& lifecycle, ConsumerSettings settings,
           std::function<void(JobPtr)> dispatch, std::function<void()> after_stop);
  ~Consumer();

  /// Starts the consumer thread.
  void start();
  /// Stops reserving; the thread puts ETA-held messages back and returns.
  void stop();
  /// Waits for the consumer thread.
  void join();
  /// A dispatched job left the worker: the window reopens by one.
  void release();
  /// An admitted job whose ETA is ahead: held outside the window until due.
  void hold(JobPtr job);
  /// A job that must not start before `when`, held like an ETA. With
  /// `keep_window` (rate limits, as Celery's unacked held requests) it keeps
  /// its prefetch-window slot, so a limited task cannot reserve the whole queue.
  void hold_until(JobPtr job, TimePoint when, bool keep_window = false);
  /// The ETA-held jobs (for remote control's `reserved`).
  std::vector<JobPtr> held() const;
  /// The held jobs with the time each is due (remote control's `scheduled`).
  std::vector<std::pair<TimePoint, JobPtr>> held_until() const;
  /// The queues consumed now.
  std::vector<std::string> queues() const;
  /// Starts consuming `queue` too (`control add_consumer`); false if it already was.
  bool add_queue(const std::string& queue);
  /// Stops consuming `queue` (`control cancel_consumer`); false if it was not
  /// consumed. Returns once no reserve() that still names it is running, so
  /// nothing sent to it afterwards is taken.
  bool cancel_queue(const std::string& queue);
  /// Changes the prefetch window (after the pool grew or shrank).
  void set_window(std::size_t window);

 private:
  void loop();
  void dispatch_due();
  bool wait_for_room(std::chrono::milliseconds timeout);
  void receive_all(std::vector<Delivery> got);
  void maintain();
  void put_back_held();

  Broker& broker_;
  JobLifecycle& lifecycle_;
  ConsumerSettings settings_;
  std::function<void(JobPtr)> dispatch_;
  std::function<void()> after_stop_;
  mutable std::mutex mu_;
  std::condition_variable cv_;  // room in the window, stop
  std::multimap<TimePoint, JobPtr> eta_held_;
  std::unordered_set<const Job*> window_held_;  // held jobs that keep their window slot
  std::size_t in_flight_ = 0;                   // dispatched and not released
  bool stopping_ = false;
  std::uint64_t queues_version_ = 0;  // bumped by add_queue/cancel_queue
  std::uint64_t round_version_ = 0;   // the version the current reserve() round uses
  std::condition_variable round_cv_;  // a new round began
  std::thread::id loop_thread_{};     // set (under mu_) once the loop runs
  std::chrono::steady_clock::time_point next_maintenance_{};
  std::thread thread_;
};

}  // namespace celeriac::tq::detail
