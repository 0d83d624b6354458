// Solar schedules (Celery's `solar(event, lat, lon)`): run at sunrise,
// sunset, solar noon or a dawn/dusk twilight at a place on Earth.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace celeriac::tq {

/// A solar event at a place. Times come from NOAA's solar position
/// algorithm (within a minute or two of an almanac at latitudes below ~65°).
/// Events, as Celery names them: "dawn_astronomical", "dawn_nautical",
/// "dawn_civil" (the sun's centre 18°, 12°, 6° below the horizon, rising),
/// "sunrise", "solar_noon", "sunset" (upper limb at -0°34', refraction
/// included), "dusk_civil", "dusk_nautical", "dusk_astronomical".
class Solar {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  /// Throws ConfigError for an unknown event, a latitude outside [-90, 90]
  /// or a longitude outside [-180, 180] (east positive), as Celery does.
  Solar(std::string event, double lat, double lon);

  const std::string& event() const noexcept { return event_; }
  double lat() const noexcept { return lat_; }
  double lon() const noexcept { return lon_; }

  /// The first event strictly after `t`. Where the sun does not reach the
  /// event's altitude on some days (polar day or night), those days are
  /// skipped, as Celery re-checks day by day; nullopt if none within a year.
  std::optional<TimePoint> next_after(TimePoint t) const;
  /// The latest event at or before `t` (nullopt if none within a year).
  std::optional<TimePoint> last_at_or_before(TimePoint t) const;
  /// Celery's repr: "<solar: sunrise at latitude 51.5, longitude: -0.13>".
  std::string describe() const;

 private:
  // The event on UTC day `day` (days since the epoch), if it happens.
  std::optional<TimePoint> on_day(long day) const;

  std::string event_;
  double lat_, lon_;
  double zenith_;  // degrees; 0 = solar noon (transit)
  int direction_;  // -1 rising, +1 setting, 0 transit
};

/// Builds a Solar (reads like Celery's `solar('sunrise', lat, lon)`).
inline Solar solar(std::string event, double lat, double lon) {
  return Solar(std::move(event), lat, lon);
}

}  // namespace celeriac::tq
