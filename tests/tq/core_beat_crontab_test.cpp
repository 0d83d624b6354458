// Crontab parsing and next-run computation, with cases taken from Celery's
// own t/unit/app/test_schedules.py (test_crontab_is_due and the DST tests),
// on fixed times (no real clock involved).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "celeriac/tq/crontab.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/schedule.hpp"

using namespace celeriac::tq;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

using TP = system_clock::time_point;

// A naive UTC datetime, as Celery's tests write them.
TP utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return TP{sys_days{year{y} / month{mo} / day{d}}.time_since_epoch() + hours{h} + minutes{mi} +
            seconds{s}};
}

// A local datetime in `tz` (the single instant; fails the test otherwise).
TP local(const TimeZone& tz, int y, unsigned mo, unsigned d, int h, int mi = 0) {
  auto l = local_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi};
  auto s = tz.to_sys(l);
  EXPECT_EQ(s.size(), 1u) << "ambiguous or missing local time";
  return s.empty() ? TP{} : TP{s.front().time_since_epoch()};
}

std::vector<int> range(int a, int b, int step = 1) {
  std::vector<int> v;
  for (int i = a; i <= b; i += step) v.push_back(i);
  return v;
}

// Expects ConfigError whose message contains every fragment.
template <class F>
void expect_config_error(F f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "expected ConfigError";
  } catch (const ConfigError& e) {
    for (const auto& frag : fragments)
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos)
          << "'" << frag << "' not in: " << e.what();
  }
}

TEST(BeatCrontab, DefaultSpecIsEveryMinute) {
  Crontab c = crontab();
  EXPECT_EQ(c.minutes(), range(0, 59));
  EXPECT_EQ(c.hours(), range(0, 23));
  EXPECT_EQ(c.days_of_week(), range(0, 6));
  EXPECT_EQ(c.days_of_month(), range(1, 31));
  EXPECT_EQ(c.months_of_year(), range(1, 12));
}

struct FieldCase {
  const char* spec;
  std::vector<int> expected;
};

TEST(BeatCrontab, MinuteAndHourFormats) {
  EXPECT_EQ(crontab(30).minutes(), (std::vector<int>{30}));
  EXPECT_EQ(crontab("30").minutes(), (std::vector<int>{30}));
  EXPECT_EQ(crontab("30,40,50").minutes(), (std::vector<int>{30, 40, 50}));
  EXPECT_EQ(crontab("*/15").minutes(), (std::vector<int>{0, 15, 30, 45}));
  EXPECT_EQ(crontab("1-59/20").minutes(), (std::vector<int>{1, 21, 41}));
  EXPECT_EQ(crontab("*", 6).hours(), (std::vector<int>{6}));
  EXPECT_EQ(crontab("*", "4,8,12").hours(), (std::vector<int>{4, 8, 12}));
}

TEST(BeatCrontab, DayOfWeekFormatsSundayIsZero) {
  const FieldCase cases[] = {{"5", {5}},
                             {"fri", {5}},
                             {"tuesday,sunday,fri", {0, 2, 5}},
                             {"mon-fri", {1, 2, 3, 4, 5}},
                             {"*/2", {0, 2, 4, 6}},
                             {"sun", {0}},
                             {"fri-mon", {0, 1, 5, 6}},
                             {"SAT", {6}}};
  for (const auto& c : cases)
    EXPECT_EQ(crontab("*", "*", c.spec).days_of_week(), c.expected) << c.spec;
}

TEST(BeatCrontab, DayOfMonthAndMonthFormats) {
  EXPECT_EQ(crontab("*", "*", "*", "2,4,6").days_of_month(), (std::vector<int>{2, 4, 6}));
  EXPECT_EQ(crontab("*", "*", "*", "*/5").days_of_month(),
            (std::vector<int>{1, 6, 11, 16, 21, 26, 31}));
  EXPECT_EQ(crontab("*", "*", "*", "*", "*/2").months_of_year(),
            (std::vector<int>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(crontab("*", "*", "*", "*", "2-12/2").months_of_year(),
            (std::vector<int>{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(crontab("*", "*", "*", "*", "jan,jul").months_of_year(), (std::vector<int>{1, 7}));
}

TEST(BeatCrontab, InvalidFieldsNameTheField) {
  // Celery's test_crontab_spec_invalid_* cases.
  expect_config_error([] { crontab(60); }, {"minute", "60", "0-59"});
  expect_config_error([] { crontab("0-100"); }, {"minute", "100"});
  expect_config_error([] { crontab("*", 24); }, {"hour", "24"});
  expect_config_error([] { crontab("*", "0-30"); }, {"hour"});
  for (const char* dow : {"fooday-barday", "1,4,foo", "7", "12"})
    expect_config_error([&] { crontab("*", "*", dow); }, {"day_of_week", dow});
  for (const char* dom : {"0", "0-10", "32", "31,32"})
    expect_config_error([&] { crontab("*", "*", "*", dom); }, {"day_of_month", dom});
  for (const char* moy : {"0", "0-5", "13", "12,13"})
    expect_config_error([&] { crontab("*", "*", "*", "*", moy); }, {"month_of_year", moy});
  expect_config_error([] { crontab("*/0"); }, {"minute", "step"});
  expect_config_error([] { crontab("*/x"); }, {"minute", "step 'x'"});
  expect_config_error([] { crontab(""); }, {"minute", "empty"});
  expect_config_error([] { crontab("1,,2"); }, {"minute", "empty value"});
  expect_config_error([] { crontab("*", "*", "*", "31", "feb"); },
                      {"day_of_month '31'", "never occurs"});
  expect_config_error([] { Crontab::parse_line("*/5 * *"); }, {"expected 5 fields", "got 3"});
}

TEST(BeatCrontab, ParseLineUsesCronFieldOrder) {
  Crontab c = Crontab::parse_line("30 7 8-14 3 thu");  // m h dom mon dow
  EXPECT_EQ(c.minutes(), (std::vector<int>{30}));
  EXPECT_EQ(c.hours(), (std::vector<int>{7}));
  EXPECT_EQ(c.days_of_month(), range(8, 14));
  EXPECT_EQ(c.months_of_year(), (std::vector<int>{3}));
  EXPECT_EQ(c.days_of_week(), (std::vector<int>{4}));
  EXPECT_EQ(c.line(), "30 7 8-14 3 thu");
}

// Celery's test_crontab_is_due: {schedule, now, last_run_at, due, remaining seconds}.
struct DueCase {
  const char* what;
  Crontab schedule;
  TP now, last_run;
  bool due;
  long long remaining;
};

TEST(BeatCrontab, IsDueTableFromCelery) {
  const Crontab hourly = crontab(30), quarterly = crontab("*/15"), daily = crontab(30, 7),
                weekly = crontab(30, 7, "thursday"), monthly = crontab(30, 7, "thursday", "8-14"),
                monthly_moy = crontab("*", 22, "*", "26,27,28", "2"),
                yearly = crontab(30, 7, "thursday", "8-14", "3");
  const DueCase cases[] = {
      {"every_hour_due", hourly, utc(2010, 5, 10, 10, 30), utc(2010, 5, 10, 6, 30), true, 3600},
      {"every_hour_not_due", hourly, utc(2010, 5, 10, 10, 29), utc(2010, 5, 10, 9, 30), false, 60},
      {"first_quarter_due", quarterly, utc(2010, 5, 10, 10, 15), utc(2010, 5, 10, 6, 30), true,
       15 * 60},
      {"second_quarter_due", quarterly, utc(2010, 5, 10, 10, 30), utc(2010, 5, 10, 6, 30), true,
       15 * 60},
      {"first_quarter_not_due", quarterly, utc(2010, 5, 10, 10, 14), utc(2010, 5, 10, 10, 0), false,
       60},
      {"second_quarter_not_due", quarterly, utc(2010, 5, 10, 10, 29), utc(2010, 5, 10, 10, 15),
       false, 60},
      {"daily_due", daily, utc(2010, 5, 10, 7, 30), utc(2010, 5, 9, 7, 30), true, 24 * 3600},
      {"daily_not_due", daily, utc(2010, 5, 10, 10, 30), utc(2010, 5, 10, 7, 30), false, 21 * 3600},
      {"weekly_due", weekly, utc(2010, 5, 6, 7, 30), utc(2010, 4, 30, 7, 30), true, 7 * 24 * 3600},
      {"weekly_not_due", weekly, utc(2010, 5, 7, 10, 30), utc(2010, 5, 6, 7, 30), false,
       6 * 24 * 3600 - 3 * 3600},
      {"monthly_due", monthly, utc(2010, 5, 13, 7, 30), utc(2010, 4, 8, 7, 30), true,
       28 * 24 * 3600},
      {"monthly_not_due", monthly, utc(2010, 5, 9, 10, 30), utc(2010, 4, 8, 7, 30), false,
       4 * 24 * 3600 - 3 * 3600},
      {"monthly_moy_due", monthly_moy, utc(2014, 2, 26, 22, 0), utc(2013, 7, 4, 10, 0), true, 60},
      {"monthly_moy_due2", monthly_moy, utc(2014, 2, 26, 22, 0), utc(2013, 2, 28, 10, 0), true, 60},
      {"monthly_moy_not_due2", monthly_moy, utc(2014, 2, 26, 21, 0), utc(2013, 6, 28, 22, 14),
       false, 3600},
      {"yearly_due", yearly, utc(2010, 3, 11, 7, 30), utc(2009, 3, 12, 7, 30), true,
       364 * 24 * 3600},
      {"yearly_not_due", yearly, utc(2010, 3, 7, 10, 30), utc(2009, 3, 12, 7, 30), false,
       4 * 24 * 3600 - 3 * 3600},
  };
  for (const auto& c : cases) {
    auto [due, remaining] = c.schedule.is_due(c.last_run, c.now);
    EXPECT_EQ(due, c.due) << c.what;
    EXPECT_EQ(remaining.count(), c.remaining) << c.what;
  }
}

TEST(BeatCrontab, EveryMinuteOnWeekendDays) {
  // Celery's test_execution_is_due_on_saturday/sunday/monday: every minute, last run 61 s ago.
  for (TP now : {utc(2010, 5, 29, 10, 30), utc(2010, 5, 30, 10, 30), utc(2010, 5, 31, 10, 30)}) {
    auto [due, remaining] = crontab().is_due(now - 61s, now);
    EXPECT_TRUE(due);
    EXPECT_EQ(remaining, 60s);
  }
  auto [due, remaining] = crontab().is_due(utc(2010, 5, 29, 10, 30), utc(2010, 5, 29, 10, 30, 20));
  EXPECT_FALSE(due);
  EXPECT_EQ(remaining, 40s);
}

TEST(BeatCrontab, DayFieldsAreAnded) {
  // Friday the 13th only (Vixie cron would also run on every other Friday and every 13th).
  Crontab c = crontab(0, 0, "fri", "13");
  EXPECT_EQ(c.next_after(utc(2026, 1, 1)), utc(2026, 2, 13));
  EXPECT_EQ(c.next_after(utc(2026, 2, 13)), utc(2026, 3, 13));
  EXPECT_EQ(c.next_after(utc(2026, 3, 13)), utc(2026, 11, 13));
  EXPECT_EQ(c.last_at_or_before(utc(2026, 11, 12)), utc(2026, 3, 13));
  // Feb 29th on a Monday: 2044 after 2016.
  EXPECT_EQ(crontab(0, 0, "mon", "29", "feb").next_after(utc(2016, 3, 1)), utc(2044, 2, 29));
}

TEST(BeatCrontab, NextAndLastSlotsAroundABoundary) {
  Crontab c = crontab("*/5");
  EXPECT_EQ(c.next_after(utc(2026, 12, 31, 23, 57, 10)), utc(2027, 1, 1, 0, 0));
  EXPECT_EQ(c.next_after(utc(2026, 12, 31, 23, 55)), utc(2026, 12, 31, 23, 55) + 5min);
  EXPECT_EQ(c.last_at_or_before(utc(2027, 1, 1, 0, 0)), utc(2027, 1, 1, 0, 0));
  EXPECT_EQ(c.last_at_or_before(utc(2027, 1, 1, 0, 4, 59)), utc(2027, 1, 1, 0, 0));
}

TEST(BeatCrontab, DstFromCeleryParisCases) {
  TimeZone paris = TimeZone::locate("Europe/Paris");
  Crontab nine = crontab(0, 9, "*", "*", "*", paris);
  // test_day_after_dst_end: last run before the change, next at 09:00 local (UTC+1).
  EXPECT_EQ(nine.next_after(local(paris, 2017, 10, 28, 9)), local(paris, 2017, 10, 29, 9));
  EXPECT_EQ(nine.next_after(local(paris, 2017, 10, 28, 9)), utc(2017, 10, 29, 8));
  // test_day_after_dst_start: next at 09:00 local (UTC+2).
  EXPECT_EQ(nine.next_after(local(paris, 2017, 3, 25, 9)), utc(2017, 3, 26, 7));
}

TEST(BeatCrontab, DstGapRunsOnceAfterTheGap) {
  TimeZone paris = TimeZone::locate("Europe/Paris");
  // 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 local does not exist.
  Crontab c = crontab(30, 2, "*", "*", "*", paris);
  TP before = utc(2026, 3, 28, 12);
  TP first = c.next_after(before);
  EXPECT_EQ(first, utc(2026, 3, 29, 1, 30));  // 03:30 CEST, just after the gap: not skipped
  EXPECT_EQ(c.next_after(first), utc(2026, 3, 30, 0, 30));  // then 02:30 CEST the next day
  // Every 30 minutes across the gap: no slot twice, none in the missing hour.
  Crontab half = crontab("*/30", "*", "*", "*", "*", paris);
  std::vector<TP> slots;
  for (TP t = utc(2026, 3, 29, 0, 0); slots.size() < 4;) slots.push_back(t = half.next_after(t));
  EXPECT_EQ(slots, (std::vector<TP>{utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 0),
                                    utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 0)}));
}

TEST(BeatCrontab, DstOverlapRunsOnce) {
  TimeZone paris = TimeZone::locate("Europe/Paris");
  // 2026-10-25: 03:00 CEST -> 02:00 CET; 02:30 local happens twice.
  Crontab c = crontab(30, 2, "*", "*", "*", paris);
  TP first = c.next_after(utc(2026, 10, 24, 12));
  EXPECT_EQ(first, utc(2026, 10, 25, 0, 30));                // the first 02:30 (CEST)
  EXPECT_EQ(c.next_after(first), utc(2026, 10, 26, 1, 30));  // not again at 02:30 CET
  EXPECT_EQ(c.last_at_or_before(utc(2026, 10, 25, 1, 45)), first);
}

TEST(BeatTimeZone, UnknownZoneIsAClearError) {
  expect_config_error([] { TimeZone::locate("Mars/Olympus_Mons"); },
                      {"Mars/Olympus_Mons", "unknown time zone"});
  expect_config_error([] { TimeZone::locate("../etc/passwd"); }, {"unknown time zone"});
  EXPECT_TRUE(TimeZone::locate("UTC").is_utc());
  TimeZone ny = TimeZone::locate("America/New_York");
  EXPECT_EQ(ny.offset(sys_seconds{utc(2026, 7, 1).time_since_epoch() / 1s * 1s}), -4h);
}

TEST(BeatSchedule, IntervalsParseAndReject) {
  EXPECT_EQ(Schedule::parse_every("30s").period(), 30s);
  EXPECT_EQ(Schedule::parse_every("500ms").period(), 500ms);
  EXPECT_EQ(Schedule::parse_every("1.5m").period(), 90s);
  EXPECT_EQ(Schedule::parse_every("2h").period(), 2h);
  EXPECT_EQ(Schedule::parse_every("1d").period(), 24h);
  expect_config_error([] { Schedule::parse_every("0s", "entry 'x'.every"); },
                      {"entry 'x'.every", "positive"});
  expect_config_error([] { Schedule::parse_every("soon", "e"); }, {"'soon'", "not an interval"});
  expect_config_error([] { Schedule::parse_every("5 parsecs", "e"); }, {"not an interval"});
  Schedule s = 10s;
  EXPECT_EQ(s.next_after(utc(2026, 1, 1, 0, 0, 3)), utc(2026, 1, 1, 0, 0, 13));
  EXPECT_EQ(s.next_after(utc(2026, 1, 1, 0, 0, 3), true),
            utc(2026, 1, 1, 0, 0, 10));  // relative: aligned
  EXPECT_EQ(s.last_at_or_before(utc(2026, 1, 1), utc(2026, 1, 1, 0, 0, 35)),
            utc(2026, 1, 1, 0, 0, 30));
}

TEST(BeatSchedule, JsonKinds) {
  EXPECT_EQ(Schedule::from_json(Json{{"every", "30s"}}, "e").period(), 30s);
  EXPECT_EQ(Schedule::from_json(Json{{"every", 2.5}}, "e").period(), 2500ms);
  Schedule c =
      Schedule::from_json(Json{{"crontab", "*/5 * * * *"}, {"timezone", "Europe/Paris"}}, "e");
  ASSERT_NE(c.crontab(), nullptr);
  EXPECT_EQ(c.crontab()->minutes(), range(0, 55, 5));
  EXPECT_EQ(c.crontab()->time_zone().name(), "Europe/Paris");
  expect_config_error(
      [] {
        Schedule::from_json(Json{{"solar", "sunset"}}, "entry 'x'.schedule");
      },
      {"entry 'x'.schedule.lat", "expected degrees", "solar"});  // solar needs lat and lon
  expect_config_error(
      [] {
        Schedule::from_json(Json{{"weekly", 1}}, "entry 'x'.schedule");
      },
      {"entry 'x'.schedule", "unknown schedule kind", "weekly", "solar"});
  expect_config_error(
      [] {
        Schedule::from_json(Json{{"crontab", "61 * * * *"}}, "entry 'x'.schedule");
      },
      {"entry 'x'.schedule.crontab", "minute", "61"});
  expect_config_error(
      [] {
        Schedule::from_json(Json{{"every", 0}}, "entry 'x'.schedule");
      },
      {"entry 'x'.schedule.every", "positive"});
  expect_config_error(
      [] {
        Schedule::from_json(Json{{"crontab", 5}}, "s");
      },
      {"s.crontab", "expected a string"});
  expect_config_error(
      [] {
        Schedule::from_json(Json{{"crontab", "* * * * *"}, {"timezone", "Nowhere/City"}}, "s");
      },
      {"s.timezone", "Nowhere/City"});
}

}  // namespace
