// tq::solar: Celery's solar events, checked against almanac times computed
// with PyEphem 4.1.4 under USNO conventions (tests/tq/data/solar_ephem.csv),
// polar days and nights, bad input, and the schedule file's "solar" form.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/periodic_task.hpp"
#include "celeriac/tq/schedule.hpp"
#include "celeriac/tq/solar.hpp"

using namespace celeriac::tq;
using namespace std::chrono;

namespace {

system_clock::time_point at(const std::string& iso) {
  return system_clock::time_point(duration_cast<system_clock::duration>(
      parse_iso8601(iso.substr(0, 19) + "+00:00").time_since_epoch()));
}

struct Row {
  std::string place, event, after, expected;
  double lat, lon;
};

std::vector<Row> almanac() {
  std::ifstream in(std::string(CELERIAC_TQ_TEST_DATA) + "/solar_ephem.csv");
  std::vector<Row> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    Row r;
    std::string lat, lon;
    std::getline(ss, r.place, ',');
    std::getline(ss, lat, ',');
    std::getline(ss, lon, ',');
    std::getline(ss, r.event, ',');
    std::getline(ss, r.after, ',');
    std::getline(ss, r.expected, ',');
    r.lat = std::stod(lat);
    r.lon = std::stod(lon);
    rows.push_back(r);
  }
  return rows;
}

TEST(TqSolar, MatchesTheAlmanacForEveryEvent) {
  auto rows = almanac();
  ASSERT_GE(rows.size(), 100u);
  for (const auto& r : rows) {
    // NOAA's equations against PyEphem: a minute or two; near the polar circle the
    // sun meets the horizon at a grazing angle and minutes of arc become minutes of time.
    auto tolerance = std::abs(r.lat) > 65 ? minutes(20) : minutes(2);
    auto got = Solar(r.event, r.lat, r.lon).next_after(at(r.after));
    ASSERT_TRUE(got) << r.place << " " << r.event << " after " << r.after;
    auto diff = *got > at(r.expected) ? *got - at(r.expected) : at(r.expected) - *got;
    EXPECT_LE(diff, tolerance) << r.place << " " << r.event << " after " << r.after << ": got "
                               << format_iso8601(*got) << ", almanac " << r.expected;
  }
}

TEST(TqSolar, NextIsStrictlyAfterAndLastIsAtOrBefore) {
  Solar s("sunrise", 51.5074, -0.1278);
  auto first = *s.next_after(at("2026-06-21T00:00:00"));
  EXPECT_EQ(s.next_after(first - milliseconds(1)), first);
  auto second = *s.next_after(first);
  EXPECT_GT(second - first, hours(23));
  EXPECT_LT(second - first, hours(25));
  EXPECT_EQ(s.last_at_or_before(first), first);
  EXPECT_EQ(s.last_at_or_before(second - milliseconds(1)), first);
}

TEST(TqSolar, PolarNightAndMidnightSunSkipTheDaysWithoutTheEvent) {
  // Tromsø: no sunrise from late November to mid-January, no sunset from late May to late July.
  Solar rise("sunrise", 69.6492, 18.9553);
  auto after = at("2026-12-21T00:00:00");
  auto next = *rise.next_after(after);
  EXPECT_GT(next - after, hours(24 * 15)) << format_iso8601(next);
  EXPECT_LT(next - after, hours(24 * 35)) << format_iso8601(next);
  Solar set("sunset", 69.6492, 18.9553);
  auto summer = at("2026-06-21T00:00:00");
  auto dusk = *set.next_after(summer);
  EXPECT_GT(dusk - summer, hours(24 * 20)) << format_iso8601(dusk);
  EXPECT_LT(dusk - summer, hours(24 * 45)) << format_iso8601(dusk);
  // Solar noon happens every day everywhere.
  Solar noon("solar_noon", 89.9, 0);
  EXPECT_LT(*noon.next_after(after) - after, hours(24));
}

TEST(TqSolar, BadInputNamesWhatIsWrong) {
  auto fails_with = [](auto make, const std::string& fragment) {
    try {
      make();
      ADD_FAILURE() << "accepted; expected an error with " << fragment;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  fails_with([] { return Solar("moonrise", 0, 0); }, "unknown event 'moonrise'");
  fails_with([] { return Solar("sunrise", 91, 0); }, "latitude");
  fails_with([] { return Solar("sunrise", 0, -180.5); }, "longitude");
  fails_with([] { return Solar("sunrise", std::nan(""), 0); }, "latitude");
  fails_with(
      [] {
        return Schedule::from_json(Json{{"solar", "sunset"}, {"lat", 1}}, "e");
      },
      "e.lon");
  fails_with(
      [] {
        return Schedule::from_json(Json{{"solar", 3}, {"lat", 1}, {"lon", 2}}, "e");
      },
      "e.solar");
  fails_with(
      [] {
        return Schedule::from_json(Json{{"solar", "dusk"}, {"lat", 1}, {"lon", 2}}, "e");
      },
      "e.solar: solar: unknown event 'dusk'");
}

TEST(TqSolar, ScheduleFileFormAndDescription) {
  auto entries = parse_schedule(
      R"([{"name": "lights-on", "task": "tasks.lights", "schedule": {"solar": "sunset", "lat": 48.8566, "lon": 2.3522}}])",
      "test");
  ASSERT_EQ(entries.size(), 1u);
  const Schedule& s = entries[0].schedule;
  ASSERT_NE(s.solar(), nullptr);
  EXPECT_FALSE(s.is_interval());
  EXPECT_EQ(s.describe(), "<solar: sunset at latitude 48.8566, longitude: 2.3522>");
  EXPECT_EQ(Schedule::from_json(s.to_json(), "x").to_json(), s.to_json());
  auto t = at("2026-03-20T00:00:00");
  EXPECT_EQ(s.next_after(t), *solar("sunset", 48.8566, 2.3522).next_after(t));
}

}  // namespace
