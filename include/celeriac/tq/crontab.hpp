// Crontab: Celery's crontab schedule (celery/schedules.py): which minutes,
// hours, days and months a periodic task runs, in a time zone.
#pragma once

#include <bitset>
#include <chrono>
#include <string>
#include <vector>

#include "celeriac/tq/time_zone.hpp"

namespace celeriac::tq {

/// One crontab field as written: "*", "30", "*/15", "1-5", "mon-fri",
/// "jan,jul", "2-12/2", or a number.
struct CronField {
  std::string text;  ///< the field as written
  /// From a text spec.
  CronField(const char* t) : text(t) {}  // NOLINT: implicit, as Celery's str arguments
  /// From a text spec.
  CronField(std::string t) : text(std::move(t)) {}  // NOLINT
  /// From a single number.
  CronField(int n) : text(std::to_string(n)) {}  // NOLINT
};

/// A crontab schedule. Celery's semantics: the day fields are ANDed (Vixie
/// cron ORs day-of-month with day-of-week), day_of_week 0 = Sunday (7 is
/// rejected as Celery does), names allowed (sun..sat, sunday..., jan..dec).
/// Slots are minutes of the zone's wall clock. Across DST: a slot in a
/// spring-forward gap runs once at the first instant after the gap; a slot
/// in a fall-back overlap runs once, at its first occurrence.
class Crontab {
 public:
  /// Wall-clock instants.
  using TimePoint = std::chrono::system_clock::time_point;

  /// Parses the five fields; throws ConfigError naming the field and what
  /// was wrong (and when no calendar date can ever match).
  Crontab(CronField minute = "*", CronField hour = "*", CronField day_of_week = "*",
          CronField day_of_month = "*", CronField month_of_year = "*", TimeZone tz = {});

  /// Parses a classic five-field line "m h dom mon dow" (cron's order).
  static Crontab parse_line(const std::string& line, TimeZone tz = {});

  /// The first slot strictly after `t`.
  TimePoint next_after(TimePoint t) const;
  /// The latest slot at or before `t`.
  TimePoint last_at_or_before(TimePoint t) const;

  /// Celery's is_due(last_run_at) evaluated at `now`: {due, seconds until
  /// the next check} — when due, the next slot after now.
  std::pair<bool, std::chrono::seconds> is_due(TimePoint last_run_at, TimePoint now) const;

  /// The expanded sets, sorted (Celery's crontab.minute etc.).
  std::vector<int> minutes() const;
  std::vector<int> hours() const;           ///< 0-23
  std::vector<int> days_of_week() const;    ///< 0-6, 0 = Sunday
  std::vector<int> days_of_month() const;   ///< 1-31
  std::vector<int> months_of_year() const;  ///< 1-12
  /// The zone the fields are read in.
  const TimeZone& time_zone() const noexcept { return tz_; }
  /// "<crontab: 30 7 * * thu (m/h/dom/mon/dow)>" as Celery prints it.
  std::string describe() const;
  /// The original specs in cron's order, "m h dom mon dow".
  std::string line() const;

 private:
  bool day_matches(std::chrono::local_days d) const;
  std::chrono::local_seconds next_local_after(std::chrono::local_seconds l) const;
  std::chrono::local_seconds last_local_at_or_before(std::chrono::local_seconds l) const;

  std::bitset<60> minute_;
  std::bitset<24> hour_;
  std::bitset<7> dow_;
  std::bitset<32> dom_;    // 1..31
  std::bitset<13> month_;  // 1..12
  std::string
      line_;  // the specs as given, in cron's order "m h dom mon dow" (one string: 100k entries)
  TimeZone tz_;
};

/// Celery's spelling: tq::crontab(minute, hour, day_of_week, day_of_month,
/// month_of_year), in UTC unless a zone is given.
inline Crontab crontab(CronField minute = "*", CronField hour = "*", CronField day_of_week = "*",
                       CronField day_of_month = "*", CronField month_of_year = "*",
                       TimeZone tz = {}) {
  return Crontab(std::move(minute), std::move(hour), std::move(day_of_week),
                 std::move(day_of_month), std::move(month_of_year), std::move(tz));
}

}  // namespace celeriac::tq
