// NOAA's solar calculator (the equations of its spreadsheet, after Meeus):
// the sun's declination and the equation of time at a moment, then the hour
// angle at which the sun's centre reaches the event's zenith distance,
// iterated at the event time itself for minute accuracy.
#include "celeriac/tq/solar.hpp"

#include <cmath>
#include <cstdio>
#include <map>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {

namespace {

constexpr double kPi = 3.14159265358979323846;
double rad(double d) {
  return d * kPi / 180.0;
}
double deg(double r) {
  return r * 180.0 / kPi;
}

struct EventKind {
  double zenith;  // degrees from the zenith of the sun's centre
  int direction;  // -1 rising, +1 setting, 0 transit
};

const std::map<std::string, EventKind>& events() {
  static const std::map<std::string, EventKind> table{
      {"dawn_astronomical", {108.0, -1}}, {"dawn_nautical", {102.0, -1}},
      {"dawn_civil", {96.0, -1}},         {"sunrise", {90.8333, -1}},
      {"solar_noon", {0.0, 0}},           {"sunset", {90.8333, 1}},
      {"dusk_civil", {96.0, 1}},          {"dusk_nautical", {102.0, 1}},
      {"dusk_astronomical", {108.0, 1}}};
  return table;
}

struct SunAt {
  double declination;  // radians
  double eq_of_time;   // minutes
};

// `jd`: Julian day (UT).
SunAt sun_at(double jd) {
  double t = (jd - 2451545.0) / 36525.0;
  double l0 = std::fmod(280.46646 + t * (36000.76983 + t * 0.0003032), 360.0);
  double m = 357.52911 + t * (35999.05029 - 0.0001537 * t);
  double e = 0.016708634 - t * (0.000042037 + 0.0000001267 * t);
  double c = std::sin(rad(m)) * (1.914602 - t * (0.004817 + 0.000014 * t)) +
             std::sin(rad(2 * m)) * (0.019993 - 0.000101 * t) + std::sin(rad(3 * m)) * 0.000289;
  double omega = 125.04 - 1934.136 * t;
  double app_long = l0 + c - 0.00569 - 0.00478 * std::sin(rad(omega));
  double obliq0 =
      23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))) / 60.0) / 60.0;
  double obliq = obliq0 + 0.00256 * std::cos(rad(omega));
  double decl = std::asin(std::sin(rad(obliq)) * std::sin(rad(app_long)));
  double y = std::pow(std::tan(rad(obliq / 2)), 2);
  double eot = 4 * deg(y * std::sin(2 * rad(l0)) - 2 * e * std::sin(rad(m)) +
                       4 * e * y * std::sin(rad(m)) * std::cos(2 * rad(l0)) -
                       0.5 * y * y * std::sin(4 * rad(l0)) - 1.25 * e * e * std::sin(2 * rad(m)));
  return {decl, eot};
}

constexpr double kUnixEpochJd = 2440587.5;

}  // namespace

Solar::Solar(std::string event, double lat, double lon)
    : event_(std::move(event)), lat_(lat), lon_(lon) {
  auto it = events().find(event_);
  if (it == events().end())
    throw ConfigError("solar: unknown event '" + event_ +
                      "' (expected dawn_astronomical, dawn_nautical, dawn_civil, sunrise, "
                      "solar_noon, sunset, dusk_civil, dusk_nautical or dusk_astronomical)");
  if (!(lat >= -90 && lat <= 90))
    throw ConfigError("solar: latitude " + std::to_string(lat) + " out of range [-90, 90]");
  if (!(lon >= -180 && lon <= 180))
    throw ConfigError("solar: longitude " + std::to_string(lon) + " out of range [-180, 180]");
  zenith_ = it->second.zenith;
  direction_ = it->second.direction;
}

std::optional<Solar::TimePoint> Solar::on_day(long day) const {
  double jd0 = kUnixEpochJd + static_cast<double>(day);
  double minutes = 720.0 - 4.0 * lon_;  // first guess: mean solar noon (UTC minutes)
  for (int i = 0; i < 4; ++i) {
    SunAt s = sun_at(jd0 + minutes / 1440.0);
    double noon = 720.0 - 4.0 * lon_ - s.eq_of_time;
    if (direction_ == 0) {
      minutes = noon;
      continue;
    }
    double cos_ha = std::cos(rad(zenith_)) / (std::cos(rad(lat_)) * std::cos(s.declination)) -
                    std::tan(rad(lat_)) * std::tan(s.declination);
    if (!(cos_ha >= -1.0 && cos_ha <= 1.0)) return std::nullopt;  // never reaches it that day
    minutes = noon + direction_ * 4.0 * deg(std::acos(cos_ha));
  }
  auto ms =
      static_cast<long long>(std::llround((static_cast<double>(day) * 1440.0 + minutes) * 60000.0));
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::milliseconds(ms)));
}

std::optional<Solar::TimePoint> Solar::next_after(TimePoint t) const {
  long day = static_cast<long>(
      std::floor(std::chrono::duration<double>(t.time_since_epoch()).count() / 86400.0));
  for (long d = day - 1; d <= day + 367; ++d)
    if (auto e = on_day(d); e && *e > t) return e;
  return std::nullopt;
}

std::optional<Solar::TimePoint> Solar::last_at_or_before(TimePoint t) const {
  long day = static_cast<long>(
      std::floor(std::chrono::duration<double>(t.time_since_epoch()).count() / 86400.0));
  for (long d = day + 1; d >= day - 367; --d)
    if (auto e = on_day(d); e && *e <= t) return e;
  return std::nullopt;
}

std::string Solar::describe() const {
  char buf[160];
  std::snprintf(buf, sizeof buf, "<solar: %s at latitude %g, longitude: %g>", event_.c_str(), lat_,
                lon_);
  return buf;
}

}  // namespace celeriac::tq
