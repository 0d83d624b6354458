// Schedule: when a periodic task runs — every fixed interval, or on a
// crontab — and the slot arithmetic beat uses (celery/schedules.py).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include "celeriac/tq/crontab.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/solar.hpp"

namespace celeriac::tq {

/// Every `period` (Celery's schedule(run_every)). Slots follow the
/// monotonic clock while beat runs.
struct Interval {
  std::chrono::milliseconds period{0};  ///< time between runs (> 0)
};

/// An interval or a crontab. Implicit from a std::chrono duration and from
/// a Crontab, so add_periodic_task(30s, ...) and add_periodic_task(crontab(...), ...)
/// both read naturally.
class Schedule {
 public:
  /// Wall-clock instants.
  using TimePoint = std::chrono::system_clock::time_point;

  /// Every `d` (must be at least 1 ms; checked when the entry is added).
  template <class Rep, class Period>
  Schedule(std::chrono::duration<Rep, Period> d)  // NOLINT: implicit on purpose
      : kind_(Interval{std::chrono::duration_cast<std::chrono::milliseconds>(d)}) {}
  /// On a crontab.
  Schedule(Crontab c) : kind_(std::move(c)) {}  // NOLINT: implicit on purpose
  /// At a solar event (follows the wall clock, as crontabs do).
  Schedule(Solar s) : kind_(std::move(s)) {}  // NOLINT: implicit on purpose

  /// Parses "30s", "500ms", "5m", "1.5h", "1d" (a number and a unit).
  /// Throws ConfigError naming `what` when malformed or not positive.
  static Schedule parse_every(const std::string& text, const std::string& what = "every");
  /// From the schedule file's JSON: {"every": "30s"} or {"every": 30} (seconds),
  /// {"crontab": "m h dom mon dow"}, optional "timezone" next to "crontab".
  static Schedule from_json(const Json& j, const std::string& what);
  /// The JSON form from_json() reads.
  Json to_json() const;

  /// True for an interval.
  bool is_interval() const noexcept { return std::holds_alternative<Interval>(kind_); }
  /// The interval's period (0 for a crontab).
  std::chrono::milliseconds period() const noexcept;
  /// The crontab, or nullptr.
  const Crontab* crontab() const noexcept { return std::get_if<Crontab>(&kind_); }
  /// The solar event, or nullptr.
  const Solar* solar() const noexcept { return std::get_if<Solar>(&kind_); }

  /// The first slot strictly after `t`. Intervals: `t + period`, or with
  /// `relative` the next multiple of the period since the epoch.
  TimePoint next_after(TimePoint t, bool relative = false) const;
  /// The latest slot at or before `now` of a grid through `anchor` (the
  /// anchor itself when now < next slot). For crontabs the anchor is unused.
  TimePoint last_at_or_before(TimePoint anchor, TimePoint now) const;
  /// "every 30s" or the crontab's line.
  std::string describe() const;

 private:
  std::variant<Interval, Crontab, Solar> kind_;
};

}  // namespace celeriac::tq
