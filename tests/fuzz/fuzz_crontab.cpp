// Fuzz target: the crontab parser (src/tq/beat/crontab.cpp), fed from
// schedule files, `beat --schedule` and the API. The input is a classic
// line "m h dom mon dow"; its lines also feed the five-field constructor.
// Properties: parsing returns or throws ConfigError (never anything else);
// what it accepts has fields within their ranges, re-parses from line() to
// the same sets, and its next slot (UTC) lies after the probe time, matches
// every field and is its own last slot.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/crontab.hpp"
#include "celeriac/tq/errors.hpp"
#include "fuzz_check.hpp"

using celeriac::fuzz::check;
using celeriac::tq::ConfigError;
using celeriac::tq::Crontab;

namespace {

bool within(const std::vector<int>& v, int lo, int hi) {
  if (v.empty()) return false;
  for (int x : v)
    if (x < lo || x > hi) return false;
  return true;
}

template <class T>
bool contains(const std::vector<int>& v, T x) {
  for (int y : v)
    if (static_cast<long long>(y) == static_cast<long long>(x)) return true;
  return false;
}

void check_accepted(const Crontab& c) {
  using namespace std::chrono;
  check(within(c.minutes(), 0, 59), "a minute out of 0-59");
  check(within(c.hours(), 0, 23), "an hour out of 0-23");
  check(within(c.days_of_week(), 0, 6), "a weekday out of 0-6");
  check(within(c.days_of_month(), 1, 31), "a day of month out of 1-31");
  check(within(c.months_of_year(), 1, 12), "a month out of 1-12");
  (void)c.describe();
  Crontab again = Crontab::parse_line(c.line());
  check(again.minutes() == c.minutes() && again.hours() == c.hours() &&
            again.days_of_week() == c.days_of_week() &&
            again.days_of_month() == c.days_of_month() &&
            again.months_of_year() == c.months_of_year(),
        "line() does not re-parse to the same schedule");

  const Crontab::TimePoint probe = sys_days{year{2026} / March / 29} + hours{0} + minutes{30};
  const auto next = c.next_after(probe);
  check(next > probe, "next_after is not after the probe");
  const auto t = floor<seconds>(next);
  check(t == next && floor<minutes>(next) == next, "a slot not on a whole minute");
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  check(contains(c.minutes(), hms.minutes().count()), "next slot's minute not in the schedule");
  check(contains(c.hours(), hms.hours().count()), "next slot's hour not in the schedule");
  check(contains(c.days_of_month(), static_cast<unsigned>(ymd.day())),
        "next slot's day not in the schedule");
  check(contains(c.months_of_year(), static_cast<unsigned>(ymd.month())),
        "next slot's month not in the schedule");
  check(contains(c.days_of_week(), weekday{day}.c_encoding()),
        "next slot's weekday not in the schedule");
  check(c.last_at_or_before(next) == next, "a slot is not its own last slot");
  check(c.next_after(next) > next, "next_after(slot) is not after the slot");
  (void)c.is_due(probe, next);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    check_accepted(Crontab::parse_line(text));
  } catch (const ConfigError&) {
  }
  // The same bytes as separate fields, one per line (missing ones "*").
  std::vector<std::string> f;
  for (std::size_t at = 0; f.size() < 5;) {
    std::size_t nl = text.find('\n', at);
    f.push_back(text.substr(at, nl == std::string::npos ? std::string::npos : nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  while (f.size() < 5) f.emplace_back("*");
  try {
    check_accepted(Crontab(f[0], f[1], f[2], f[3], f[4]));
  } catch (const ConfigError&) {
  }
  return 0;
}
