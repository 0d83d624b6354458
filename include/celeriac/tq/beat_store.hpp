// BeatStore: where beat keeps its lease (which instance is active) and each
// entry's run state — in the result backend's store, so any beat instance
// can take over from any other.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "celeriac/tq/beat_clock.hpp"

namespace celeriac::tq {

/// The stored run state of one entry (Celery's last_run_at, total_run_count).
struct EntryState {
  /// The slot last sent (or skipped as stale): its scheduled time, not the send time.
  std::optional<std::chrono::system_clock::time_point> last_run;
  std::uint64_t total_runs = 0;  ///< messages sent for the entry
};

/// Who holds the lease.
struct LeaseInfo {
  std::string holder;                   ///< the instance id
  std::chrono::milliseconds remaining;  ///< time left before it expires
};

/// Lease + state storage. Implementations: Redis (SET NX PX + a compare-and-
/// extend Lua script), SQLite (a lease row updated in a transaction), memory
/// (one process). Thread-safe; I/O errors throw BackendError.
class BeatStore {
 public:
  /// Entry name -> its new state, written together.
  using Updates = std::vector<std::pair<std::string, EntryState>>;
  virtual ~BeatStore() = default;
  /// Takes the lease when free or expired, or extends it when `instance`
  /// holds it, for `ttl`. Returns whether `instance` holds it now.
  virtual bool acquire(const std::string& instance, std::chrono::milliseconds ttl) = 0;
  /// Gives the lease up when `instance` holds it (a clean shutdown).
  virtual void release(const std::string& instance) = 0;
  /// The current holder, or nullopt when nobody holds it.
  virtual std::optional<LeaseInfo> lease() = 0;
  /// Every stored entry state.
  virtual std::map<std::string, EntryState> load() = 0;
  /// Writes `updates` only if `instance` still holds the lease (a fenced
  /// write, atomic with the check). Returns false, writing nothing, otherwise.
  virtual bool commit(const std::string& instance, const Updates& updates) = 0;
  /// Where it stores (URL with the password masked), for status output.
  virtual std::string describe() const = 0;
};

/// The store for a result backend URL: redis:// (and rediss://), sqlite://,
/// memory:// (process-local). Keys/rows are namespaced by `name` (default
/// "celeriac.beat"). `clock` times lease expiry where the server does not
/// (SQLite, memory). Throws ConfigError for another scheme.
std::unique_ptr<BeatStore> make_beat_store(const std::string& backend_url,
                                           const std::string& name = "celeriac.beat",
                                           const BeatClock& clock = SystemBeatClock::instance());

/// A process-local store (tests; beat on a memory:// backend).
std::unique_ptr<BeatStore> make_memory_beat_store(
    const BeatClock& clock = SystemBeatClock::instance());

}  // namespace celeriac::tq
