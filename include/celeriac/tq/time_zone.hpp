// TimeZone: conversions between UTC instants and a zone's local wall-clock
// time, from the system tz database (/usr/share/zoneinfo, Debian's tzdata).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace celeriac::tq {

/// A time zone of the tz database, or UTC. Cheap to copy. g++ 12's
/// libstdc++ has no std::chrono::zoned_time, so conversions go through the C
/// library (TZ + localtime_r/mktime under a process-wide lock); UTC is pure
/// arithmetic.
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
  bool is_utc() const noexcept { return utc_; }

  /// Local wall-clock time of the instant `t`.
  std::chrono::local_seconds to_local(std::chrono::sys_seconds t) const;
  /// The instants whose local time is `l`: one normally, none in a
  /// spring-forward gap, two (earlier first) in a fall-back overlap.
  std::vector<std::chrono::sys_seconds> to_sys(std::chrono::local_seconds l) const;
  /// UTC offset in force at `t`.
  std::chrono::seconds offset(std::chrono::sys_seconds t) const;

 private:
  std::string name_ = "UTC";
  bool utc_ = true;
};

}  // namespace celeriac::tq
