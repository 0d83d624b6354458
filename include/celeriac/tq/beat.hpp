// Beat: the periodic task scheduler (Celery's `celery beat`), highly
// available: any number of instances share one store, exactly one — the
// holder of a lease — sends. docs/tq-beat.md describes the design.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq/beat_clock.hpp"
#include "celeriac/tq/beat_store.hpp"
#include "celeriac/tq/detail/entry_table.hpp"
#include "celeriac/tq/periodic_task.hpp"

namespace celeriac::tq {

class App;

/// Beat settings.
struct BeatOptions {
  /// How long a lease lasts without renewal: the longest failover.
  std::chrono::milliseconds lease{5000};
  /// How often the active instance renews the lease (and standbys try to take it).
  std::chrono::milliseconds renew_every{1000};
  /// Catch-up runs of slots older than this are skipped (Celery's
  /// beat_cron_starting_deadline, for intervals too). nullopt = always catch up.
  std::optional<std::chrono::milliseconds> starting_deadline;
  /// This instance's id in the lease ("" = `host:pid:random`).
  std::string instance_id;
  /// Namespace of the lease and state in the store (one per schedule).
  std::string store_name = "celeriac.beat";
};

/// What `beat --list` shows for an entry.
struct BeatEntryStatus {
  std::string name;                                               ///< the entry's name
  std::string task;                                               ///< the task it sends
  std::string schedule;                                           ///< Schedule::describe()
  bool enabled = true;                                            ///< false: kept, never sent
  std::optional<std::chrono::system_clock::time_point> last_run;  ///< slot last sent
  std::optional<std::chrono::system_clock::time_point> next_run;  ///< nullopt when disabled
  std::uint64_t total_runs = 0;  ///< slots sent so far (stored state)
};

/// The scheduler. tick() does one step (renew or take the lease; when
/// active send what is due) and says how long to sleep; start() runs tick()
/// on a thread. All time comes from the BeatClock, so tests drive tick() on
/// a VirtualBeatClock.
class Beat {
 public:
  /// Beat for `entries` (validated: ConfigError before anything runs),
  /// sending through `app`'s broker. `store` = null: the store of the app's
  /// result backend (make_beat_store).
  Beat(App& app, std::vector<PeriodicEntry> entries, BeatOptions options = {},
       std::shared_ptr<BeatStore> store = nullptr,
       const BeatClock& clock = SystemBeatClock::instance());
  /// Stops the thread and releases the lease.
  ~Beat();
  Beat(const Beat&) = delete;
  Beat& operator=(const Beat&) = delete;

  /// One step; returns how long until the next step is needed.
  std::chrono::milliseconds tick();
  /// Runs tick() on a background thread until stop().
  void start();
  /// Stops the thread (if any) and gives the lease up. Idempotent.
  void stop();

  /// True while this instance holds the lease.
  bool is_active() const;
  /// This instance's id.
  const std::string& instance_id() const noexcept { return options_.instance_id; }
  /// The entries (copies, rebuilt from the compact table beat keeps).
  std::vector<PeriodicEntry> entries() const { return entries_.to_vector(); }
  /// How many entries.
  std::size_t entry_count() const noexcept { return entries_.size(); }
  /// Distinct schedules / distinct (call, options) pairs among the entries
  /// (each is stored once).
  std::size_t distinct_schedules() const noexcept { return entries_.distinct_schedules(); }
  std::size_t distinct_calls() const noexcept { return entries_.distinct_calls(); }
  /// The store.
  BeatStore& store() { return *store_; }

  /// What this instance knows of each entry (when standing by: the stored state).
  std::vector<BeatEntryStatus> status();

  /// Counters since construction.
  struct Counters {
    std::uint64_t sent = 0;           ///< messages published
    std::uint64_t skipped_stale = 0;  ///< catch-ups suppressed by starting_deadline
    std::uint64_t takeovers = 0;      ///< times this instance became active
    std::uint64_t ticks = 0;          ///< scheduler rounds
  };
  /// The counters so far.
  Counters counters() const;

  /// Called after each batch is published: (entry index, slot) per message,
  /// for benchmarks and tests that measure lateness. Set before start().
  std::function<void(
      const std::vector<std::pair<std::size_t, std::chrono::system_clock::time_point>>&)>
      on_sent;

 private:
  struct Runtime {
    std::int64_t next_slot_ns = 0;  // wall time of the next slot
    std::int64_t due_mono_ns = 0;   // intervals: monotonic time it is due
    std::int64_t last_run_ns = 0;   // 0 = never
    std::uint64_t total = 0;
  };
  using HeapItem = std::pair<std::int64_t, std::uint32_t>;
  using Heap = std::priority_queue<HeapItem, std::vector<HeapItem>, std::greater<>>;

  void renew(std::chrono::steady_clock::time_point now_m,
             std::chrono::system_clock::time_point now_w);
  void become_active(std::chrono::system_clock::time_point now_w,
                     std::chrono::steady_clock::time_point now_m);
  void demote(const char* why);
  void send_due(const std::vector<std::uint32_t>& due, std::chrono::system_clock::time_point now_w,
                std::chrono::steady_clock::time_point now_m);
  void push(std::uint32_t i);
  void run();

  App& app_;
  detail::EntryTable entries_;  // compact: interned schedules and calls
  BeatOptions options_;
  std::shared_ptr<BeatStore> store_;
  const BeatClock& clock_;

  mutable std::mutex mu_;  // guards everything below against status()/counters()
  bool active_ = false;
  std::optional<std::chrono::steady_clock::time_point> last_renew_;
  std::chrono::steady_clock::time_point last_renew_ok_{};
  std::vector<Runtime> rt_;
  Heap interval_heap_, cron_heap_;
  Counters counters_;

  std::mutex run_mu_;
  std::condition_variable run_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

/// The stored status of `entries` without running beat (`beat --list`).
std::vector<BeatEntryStatus> stored_status(const std::vector<PeriodicEntry>& entries,
                                           BeatStore& store,
                                           std::chrono::system_clock::time_point now);

}  // namespace celeriac::tq
