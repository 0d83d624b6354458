// Schedule: parsing of intervals and the schedule file's schedule object.
#include "celeriac/tq/schedule.hpp"

#include <cmath>
#include <cstdlib>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {

using namespace std::chrono;

Schedule Schedule::parse_every(const std::string& text, const std::string& what) {
  const char* begin = text.c_str();
  char* end = nullptr;
  double value = std::strtod(begin, &end);
  std::string unit = end ? std::string(end) : "";
  double scale = 0;
  if (unit == "ms")
    scale = 1;
  else if (unit == "s" || unit.empty())
    scale = 1000;
  else if (unit == "m" || unit == "min")
    scale = 60e3;
  else if (unit == "h")
    scale = 3600e3;
  else if (unit == "d")
    scale = 86400e3;
  if (end == begin || scale == 0 || !std::isfinite(value))
    throw ConfigError(
        what + ": '" + text +
        "' is not an interval (expected a number and a unit: 500ms, 30s, 5m, 1h, 1d)");
  auto ms = milliseconds(static_cast<long long>(std::llround(value * scale)));
  if (ms <= milliseconds(0))
    throw ConfigError(what + ": interval '" + text + "' must be positive (at least 1ms)");
  return Schedule(ms);
}

Schedule Schedule::from_json(const Json& j, const std::string& what) {
  if (!j.is_object())
    throw ConfigError(what +
                      ": schedule must be an object {\"every\": \"30s\"} or {\"crontab\": \"*/5 * "
                      "* * *\"}, got " +
                      dumps(j));
  if (j.contains("every")) {
    const Json& e = j["every"];
    if (e.is_number()) {
      double secs = e.get<double>();
      auto ms = milliseconds(static_cast<long long>(std::llround(secs * 1000)));
      if (ms <= milliseconds(0))
        throw ConfigError(what + ".every: interval " + dumps(e) + " must be positive");
      return Schedule(ms);
    }
    if (!e.is_string())
      throw ConfigError(what + ".every: expected a string such as \"30s\", got " + dumps(e));
    return parse_every(e.get<std::string>(), what + ".every");
  }
  if (j.contains("crontab")) {
    const Json& c = j["crontab"];
    if (!c.is_string())
      throw ConfigError(what + ".crontab: expected a string \"m h dom mon dow\", got " + dumps(c));
    TimeZone tz;
    if (j.contains("timezone")) {
      if (!j["timezone"].is_string())
        throw ConfigError(what + ".timezone: expected a string, got " + dumps(j["timezone"]));
      try {
        tz = TimeZone::locate(j["timezone"].get<std::string>());
      } catch (const ConfigError& e) {
        throw ConfigError(what + ".timezone: " + e.what());
      }
    }
    try {
      return Schedule(Crontab::parse_line(c.get<std::string>(), tz));
    } catch (const ConfigError& e) {
      throw ConfigError(what + ".crontab: " + e.what());
    }
  }
  if (j.contains("solar")) {
    const Json& ev = j["solar"];
    if (!ev.is_string())
      throw ConfigError(what + ".solar: expected an event name such as \"sunrise\", got " +
                        dumps(ev));
    for (const char* k : {"lat", "lon"})
      if (!j.contains(k) || !j[k].is_number())
        throw ConfigError(what + "." + k + ": expected degrees (a number) beside \"solar\", got " +
                          (j.contains(k) ? dumps(j[k]) : std::string("nothing")));
    try {
      return Schedule(Solar(ev.get<std::string>(), j["lat"].get<double>(), j["lon"].get<double>()));
    } catch (const ConfigError& e) {
      throw ConfigError(what + ".solar: " + e.what());
    }
  }
  std::string keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys += (keys.empty() ? "" : ", ") + it.key();
  throw ConfigError(what + ": unknown schedule kind (keys: " + (keys.empty() ? "none" : keys) +
                    "); expected \"every\", \"crontab\" or \"solar\"");
}

Json Schedule::to_json() const {
  if (auto s = solar()) return Json{{"solar", s->event()}, {"lat", s->lat()}, {"lon", s->lon()}};
  if (auto c = crontab()) {
    Json j = {{"crontab", c->line()}};
    if (!c->time_zone().is_utc()) j["timezone"] = c->time_zone().name();
    return j;
  }
  return Json{{"every", std::to_string(period().count()) + "ms"}};
}

milliseconds Schedule::period() const noexcept {
  auto i = std::get_if<Interval>(&kind_);
  return i ? i->period : milliseconds(0);
}

Schedule::TimePoint Schedule::next_after(TimePoint t, bool relative) const {
  if (auto c = crontab()) return c->next_after(t);
  // No such event within a year (polar): look again a year later.
  if (auto s = solar()) return s->next_after(t).value_or(t + hours(24 * 366));
  auto p = duration_cast<TimePoint::duration>(period());
  if (!relative) return t + p;
  auto since = t.time_since_epoch();
  return TimePoint{(since / p + 1) * p};
}

Schedule::TimePoint Schedule::last_at_or_before(TimePoint anchor, TimePoint now) const {
  if (auto c = crontab()) return c->last_at_or_before(now);
  if (auto s = solar()) return s->last_at_or_before(now).value_or(anchor);
  auto p = duration_cast<TimePoint::duration>(period());
  if (now < anchor) return anchor;
  return anchor + ((now - anchor) / p) * p;
}

std::string Schedule::describe() const {
  if (auto c = crontab()) return c->describe();
  if (auto s = solar()) return s->describe();
  auto ms = period().count();
  if (ms % 1000 == 0) return "<every " + std::to_string(ms / 1000) + "s>";
  return "<every " + std::to_string(ms) + "ms>";
}

}  // namespace celeriac::tq
