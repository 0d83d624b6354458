// Crontab: Celery's crontab_parser (celery/schedules.py) and a calendar
// search over the zone's local days.
#include "celeriac/tq/crontab.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <sstream>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {
namespace {

using namespace std::chrono;
using Min = std::chrono::minutes;
using Hrs = std::chrono::hours;

struct FieldSpec {
  const char* name;
  int min, max;  // inclusive
};
constexpr FieldSpec kMinute{"minute", 0, 59}, kHour{"hour", 0, 23}, kDow{"day_of_week", 0, 6},
    kDom{"day_of_month", 1, 31}, kMoy{"month_of_year", 1, 12};

constexpr std::array<const char*, 7> kDays{"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
constexpr std::array<const char*, 7> kDaysLong{"sunday",   "monday", "tuesday", "wednesday",
                                               "thursday", "friday", "saturday"};
constexpr std::array<const char*, 12> kMonths{"jan", "feb", "mar", "apr", "may", "jun",
                                              "jul", "aug", "sep", "oct", "nov", "dec"};

[[noreturn]] void bad(const FieldSpec& f, const std::string& spec, const std::string& why) {
  throw ConfigError("crontab field " + std::string(f.name) + " '" + spec + "': " + why);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A number or (for days and months) a name.
int parse_value(const FieldSpec& f, const std::string& spec, const std::string& token) {
  if (token.empty()) bad(f, spec, "empty value");
  if (std::all_of(token.begin(), token.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (token.size() > 4)
      bad(f, spec,
          "'" + token + "' out of range " + std::to_string(f.min) + "-" + std::to_string(f.max));
    return std::stoi(token);
  }
  std::string t = lower(token);
  if (&f == &kDow) {
    for (int i = 0; i < 7; ++i)
      if (t == kDays[static_cast<std::size_t>(i)] || t == kDaysLong[static_cast<std::size_t>(i)])
        return i;
    bad(f, spec, "'" + token + "' is not a weekday (sun..sat, 0 = Sunday)");
  }
  if (&f == &kMoy) {
    for (int i = 0; i < 12; ++i)
      if (t == kMonths[static_cast<std::size_t>(i)]) return i + 1;
    bad(f, spec, "'" + token + "' is not a month (jan..dec or 1-12)");
  }
  bad(f, spec, "'" + token + "' is not a number");
}

template <std::size_t N>
void set_range(std::bitset<N>& bits, const FieldSpec& f, const std::string& spec, int from, int to,
               int step) {
  for (int v : {from, to})
    if (v < f.min || v > f.max)
      bad(f, spec,
          std::to_string(v) + " out of range " + std::to_string(f.min) + "-" +
              std::to_string(f.max));
  if (step <= 0) bad(f, spec, "step must be a positive number");
  // A range written backwards wraps around (Celery: fri-mon = fri,sat,sun,mon).
  int span = to >= from ? to - from : (f.max - from) + (to - f.min) + 1;
  for (int i = 0; i <= span; i += step) {
    int v = from + i;
    if (v > f.max) v -= (f.max - f.min + 1);
    bits.set(static_cast<std::size_t>(v));
  }
}

template <std::size_t N>
std::bitset<N> parse_field(const FieldSpec& f, const std::string& spec) {
  std::bitset<N> bits;
  if (spec.empty()) bad(f, spec, "empty field");
  std::size_t start = 0;
  while (start <= spec.size()) {
    auto comma = spec.find(',', start);
    std::string part =
        spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    std::string range = part;
    int step = 1;
    if (auto slash = part.find('/'); slash != std::string::npos) {
      range = part.substr(0, slash);
      std::string s = part.substr(slash + 1);
      if (s.empty() ||
          !std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
          s.size() > 4)
        bad(f, spec, "step '" + s + "' is not a positive number");
      step = std::stoi(s);
    }
    if (range == "*") {
      set_range(bits, f, spec, f.min, f.max, step);
    } else if (auto dash = range.find('-'); dash != std::string::npos && dash > 0) {
      set_range(bits, f, spec, parse_value(f, spec, range.substr(0, dash)),
                parse_value(f, spec, range.substr(dash + 1)), step);
    } else {
      int v = parse_value(f, spec, range);
      // "n/step" means n, n+step, ... up to the maximum (Celery's _range_steps).
      set_range(bits, f, spec, v, part.find('/') != std::string::npos ? f.max : v, step);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return bits;
}

template <std::size_t N>
std::vector<int> members(const std::bitset<N>& b) {
  std::vector<int> out;
  for (std::size_t i = 0; i < N; ++i)
    if (b[i]) out.push_back(static_cast<int>(i));
  return out;
}

// "m h dom mon dow" (appends: g++ 12 warns falsely on chained operator+).
std::string cron_line(std::initializer_list<const std::string*> fields) {
  std::string out;
  for (const std::string* f : fields) {
    if (!out.empty()) out.push_back(' ');
    out.append(*f);
  }
  return out;
}

constexpr int kSearchDays = 366 * 29;  // every (dom, dow, month) combination recurs within 28 years

}  // namespace

Crontab::Crontab(CronField minute, CronField hour, CronField day_of_week, CronField day_of_month,
                 CronField month_of_year, TimeZone tz)
    : minute_(parse_field<60>(kMinute, minute.text)),
      hour_(parse_field<24>(kHour, hour.text)),
      dow_(parse_field<7>(kDow, day_of_week.text)),
      dom_(parse_field<32>(kDom, day_of_month.text)),
      month_(parse_field<13>(kMoy, month_of_year.text)),
      line_(cron_line(
          {&minute.text, &hour.text, &day_of_month.text, &month_of_year.text, &day_of_week.text})),
      tz_(std::move(tz)) {
  static constexpr int kMaxDay[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool possible = false;
  for (int m = 1; m <= 12 && !possible; ++m)
    for (int d = 1; d <= kMaxDay[m] && !possible; ++d)
      possible = month_[static_cast<std::size_t>(m)] && dom_[static_cast<std::size_t>(d)];
  if (!possible)
    throw ConfigError("crontab day_of_month '" + day_of_month.text +
                      "' never occurs in month_of_year '" + month_of_year.text + "'");
}

Crontab Crontab::parse_line(const std::string& line, TimeZone tz) {
  std::istringstream in(line);
  std::vector<std::string> f;
  for (std::string w; in >> w;) f.push_back(w);
  if (f.size() != 5)
    throw ConfigError(
        "crontab '" + line +
        "': expected 5 fields 'minute hour day_of_month month_of_year day_of_week', got " +
        std::to_string(f.size()));
  return Crontab(f[0], f[1], f[4], f[2], f[3], std::move(tz));
}

bool Crontab::day_matches(local_days d) const {
  year_month_day ymd{d};
  return month_[static_cast<unsigned>(ymd.month())] && dom_[static_cast<unsigned>(ymd.day())] &&
         dow_[weekday{d}.c_encoding()];
}

local_seconds Crontab::next_local_after(local_seconds l) const {
  local_seconds start = floor<Min>(l) + Min{1};
  local_days day = floor<days>(start);
  auto first = duration_cast<Min>(start - day).count();
  for (int i = 0; i < kSearchDays; ++i, ++day, first = 0) {
    if (!day_matches(day)) continue;
    for (auto h = first / 60; h < 24; ++h) {
      if (!hour_[static_cast<std::size_t>(h)]) continue;
      for (auto m = (h == first / 60 ? first % 60 : 0); m < 60; ++m)
        if (minute_[static_cast<std::size_t>(m)]) return day + Hrs{h} + Min{m};
    }
  }
  throw ConfigError("crontab " + line() + ": no slot within 28 years");
}

local_seconds Crontab::last_local_at_or_before(local_seconds l) const {
  local_seconds start = floor<Min>(l);
  local_days day = floor<days>(start);
  auto last = duration_cast<Min>(start - day).count();
  for (int i = 0; i < kSearchDays; ++i, --day, last = 24 * 60 - 1) {
    if (!day_matches(day)) continue;
    for (auto h = last / 60; h >= 0; --h) {
      if (!hour_[static_cast<std::size_t>(h)]) continue;
      for (auto m = (h == last / 60 ? last % 60 : 59); m >= 0; --m)
        if (minute_[static_cast<std::size_t>(m)]) return day + Hrs{h} + Min{m};
    }
  }
  throw ConfigError("crontab " + line() + ": no slot within 28 years");
}

Crontab::TimePoint Crontab::next_after(TimePoint t) const {
  auto ts = floor<seconds>(t);
  if (tz_.is_utc()) {
    auto l = next_local_after(local_seconds{ts.time_since_epoch()});
    return TimePoint{l.time_since_epoch()};
  }
  local_seconds l = tz_.to_local(ts);
  for (;;) {
    l = next_local_after(l);
    auto instants = tz_.to_sys(l);
    if (instants.empty()) {
      // In a spring-forward gap: the offset before the gap maps it just past the gap.
      auto before = tz_.offset(sys_seconds{(l - Hrs{24}).time_since_epoch()});
      sys_seconds s{(l - before).time_since_epoch()};
      if (s > ts) return TimePoint{s.time_since_epoch()};
      continue;
    }
    // An overlap runs once, at its first occurrence.
    if (instants.front() > ts) return TimePoint{instants.front().time_since_epoch()};
  }
}

Crontab::TimePoint Crontab::last_at_or_before(TimePoint t) const {
  auto ts = floor<seconds>(t);
  if (tz_.is_utc()) {
    auto l = last_local_at_or_before(local_seconds{ts.time_since_epoch()});
    return TimePoint{l.time_since_epoch()};
  }
  local_seconds l = tz_.to_local(ts);
  for (;;) {
    l = last_local_at_or_before(l);
    auto instants = tz_.to_sys(l);
    if (instants.empty()) {
      auto before = tz_.offset(sys_seconds{(l - Hrs{24}).time_since_epoch()});
      sys_seconds s{(l - before).time_since_epoch()};
      if (s <= ts) return TimePoint{s.time_since_epoch()};
    } else if (instants.front() <= ts) {
      return TimePoint{instants.front().time_since_epoch()};
    }
    l -= Min{1};
  }
}

std::pair<bool, std::chrono::seconds> Crontab::is_due(TimePoint last_run_at, TimePoint now) const {
  TimePoint next = next_after(last_run_at);
  bool due = next <= now;
  if (due) next = next_after(now);
  return {due, ceil<seconds>(next - now)};
}

std::vector<int> Crontab::minutes() const {
  return members(minute_);
}
std::vector<int> Crontab::hours() const {
  return members(hour_);
}
std::vector<int> Crontab::days_of_week() const {
  return members(dow_);
}
std::vector<int> Crontab::days_of_month() const {
  return members(dom_);
}
std::vector<int> Crontab::months_of_year() const {
  return members(month_);
}

std::string Crontab::line() const {
  return line_;
}

std::string Crontab::describe() const {
  std::string s = "<crontab: " + line() + " (m/h/dom/mon/dow)";
  if (!tz_.is_utc()) s += " " + tz_.name();
  return s + ">";
}

}  // namespace celeriac::tq
