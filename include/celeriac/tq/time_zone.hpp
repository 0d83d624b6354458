// TimeZone: conversions between UTC instants and a zone's local wall-clock
// time, from the system tz database (/usr/share/zoneinfo, Debian's tzdata).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace celeriac::tq {

/// A time zone of the tz database, or UTC. Cheap to copy. g++ 12's
/// libstdc++ has no std::chrono::zoned_time, so locate() reads the zone's
/// offset transitions for 1970-2100 once through the C library (TZ +
/// localtime_r under a lock) and caches them per zone; conversions are then
/// table lookups (thread-safe, no global state). After 2100 the last offset
/// stays in force.
class TimeZone {
 public:
  /// UTC.
  TimeZone() = default;
  /// UTC.
  static TimeZone utc() { return TimeZone(); }
  /// The zone `name` ("Europe/Paris", "UTC"); throws ConfigError when the
  /// tz database has no such zone.
  static TimeZone locate(const std::string& name);

  /// The zone's name ("UTC" for UTC).
  const std::string& name() const noexcept { return name_; }
  /// True for UTC (no conversion needed).
  bool is_utc() const noexcept { return !table_; }

  /// Local wall-clock time of the instant `t`.
  std::chrono::local_seconds to_local(std::chrono::sys_seconds t) const;
  /// The instants whose local time is `l`: one normally, none in a
  /// spring-forward gap, two (earlier first) in a fall-back overlap.
  std::vector<std::chrono::sys_seconds> to_sys(std::chrono::local_seconds l) const;
  /// UTC offset in force at `t`.
  std::chrono::seconds offset(std::chrono::sys_seconds t) const;

 private:
  std::string name_ = "UTC";

 public:
  struct Table;  // the zone's offset transitions (src/tq/beat/time_zone.cpp)

 private:
  std::shared_ptr<const Table> table_;  // null = UTC
};

}  // namespace celeriac::tq
