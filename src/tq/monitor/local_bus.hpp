// The channel log that carries events and remote control on brokers without
// a pub/sub of their own: memory:// (one log per process) and sqlite://
// (a table in the broker's database file, shared by every process using it).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "celeriac/tq/url.hpp"

namespace celeriac::tq::monitor {

/// Channels used on the bus.
inline constexpr const char* kEventChannel = "event";    ///< Celery events, one per row
inline constexpr const char* kPidboxChannel = "pidbox";  ///< remote-control requests
/// Replies to the client that sent routing key `oid`.
std::string reply_channel(const std::string& oid);

/// How much the bus keeps: events by count (newest kept), control by age.
struct BusLimits {
  std::int64_t max_events = 10000;       ///< events kept
  std::chrono::seconds control_ttl{60};  ///< requests/replies older are dropped
};

/// An append-only log of (id, channel, body) rows. Writers append; each
/// reader keeps a cursor (the last id it saw). read() blocks (without busy
/// waiting) until a row past the cursor arrives or the timeout passes.
/// One instance is used by one reading thread at a time; append() is
/// thread-safe.
class LocalBus {
 public:
  virtual ~LocalBus() = default;
  /// Appends `bodies` to `channel` in one transaction.
  virtual void append(const std::string& channel, const std::vector<std::string>& bodies) = 0;
  /// Bodies on `channel` after `cursor` (which is advanced), waiting up to
  /// `timeout` for the first; at most `limit`.
  virtual std::vector<std::string> read(const std::string& channel, std::int64_t& cursor,
                                        std::chrono::milliseconds timeout,
                                        std::size_t limit = 1000) = 0;
  /// The last id so far (a reader starting now uses it as its cursor).
  virtual std::int64_t tail() = 0;
};

/// A bus for a memory:// or sqlite:// broker URL (a new connection each call
/// for SQLite; the process-wide log for memory). Throws ConfigError for
/// other schemes.
std::unique_ptr<LocalBus> open_local_bus(const Url& broker_url, BusLimits limits = {});

}  // namespace celeriac::tq::monitor
