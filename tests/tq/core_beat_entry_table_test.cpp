// Beat's compact entry table: equal schedules and equal calls stored once,
// entries that differ in any call option kept apart, names and order kept.
#include <gtest/gtest.h>

#include "celeriac/tq/crontab.hpp"
#include "celeriac/tq/detail/entry_table.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;
using celeriac::tq::detail::EntryTable;

namespace {

PeriodicEntry entry(std::string name, Schedule s, TaskCall c, PeriodicOptions o = {}) {
  return PeriodicEntry{std::move(name), std::move(s), std::move(c), std::move(o)};
}

TEST(TqBeatEntryTable, SharesEqualSchedulesAndCalls) {
  std::vector<PeriodicEntry> v;
  for (int i = 0; i < 1000; ++i) {
    std::string name = std::to_string(i);
    name.insert(0, 1, 'e');  // not "e" + ...: g++ 12's -Wrestrict false positive
    v.push_back(entry(name, i % 2 ? Schedule(30s) : Schedule(crontab("*/5")), call("tasks.noop")));
  }
  EntryTable t(std::move(v));
  ASSERT_EQ(t.size(), 1000u);
  EXPECT_EQ(t.distinct_schedules(), 2u);
  EXPECT_EQ(t.distinct_calls(), 1u);
  EXPECT_EQ(t.name(0), "e0");
  EXPECT_EQ(t.name(999), "e999");
  EXPECT_TRUE(t.schedule(1).is_interval());
  EXPECT_EQ(t.schedule(1).period(), 30s);
  EXPECT_FALSE(t.schedule(2).is_interval());
  EXPECT_EQ(t.call(500).task, "tasks.noop");
}

TEST(TqBeatEntryTable, KeepsEntriesThatDifferInAnyField) {
  CallOptions high;
  high.priority = 1;
  CallOptions headers;
  headers.headers["tenant"] = "a";
  CallOptions limit;
  limit.time_limit = 5;
  PeriodicOptions relative;
  relative.relative = true;
  PeriodicOptions disabled;
  disabled.enabled = false;
  std::vector<PeriodicEntry> v;
  v.push_back(entry("plain", 10s, call("tasks.a")));
  v.push_back(entry("args", 10s, call("tasks.a", Json::array({1}))));
  v.push_back(entry("kwargs", 10s, call("tasks.a", Json::array(), Json{{"k", 1}})));
  v.push_back(entry("priority", 10s, call("tasks.a", Json::array(), Json::object(), high)));
  v.push_back(entry("headers", 10s, call("tasks.a", Json::array(), Json::object(), headers)));
  v.push_back(entry("limit", 10s, call("tasks.a", Json::array(), Json::object(), limit)));
  v.push_back(entry("relative", 10s, call("tasks.a"), relative));
  v.push_back(entry("disabled", 10s, call("tasks.a"), disabled));
  v.push_back(entry("other-task", 10s, call("tasks.b")));
  v.push_back(entry("same-as-plain", 20s, call("tasks.a")));
  v.push_back(entry("tz",
                    Schedule(crontab("0", "9", "*", "*", "*", TimeZone::locate("Europe/Paris"))),
                    call("tasks.a")));
  v.push_back(entry("utc", Schedule(crontab("0", "9")), call("tasks.a")));
  auto copy = v;
  EntryTable t(std::move(v));
  EXPECT_EQ(t.distinct_calls(), 9u);      // all but same-as-plain, tz, utc differ
  EXPECT_EQ(t.distinct_schedules(), 4u);  // 10s, 20s, 9:00 Paris, 9:00 UTC
  for (std::size_t i = 0; i < copy.size(); ++i) {
    auto back = t.entry(i);
    EXPECT_EQ(back.name, copy[i].name);
    EXPECT_EQ(back.to_json(), copy[i].to_json()) << copy[i].name;
    EXPECT_TRUE(back.call.options == copy[i].call.options) << copy[i].name;
  }
  EXPECT_EQ(t.call(3).options.priority, 1);
  EXPECT_EQ(t.call(4).options.headers["tenant"], "a");
  EXPECT_FALSE(t.options(7).enabled);
}

TEST(TqBeatEntryTable, EmptyTable) {
  EntryTable t(std::vector<PeriodicEntry>{});
  EXPECT_EQ(t.size(), 0u);
  EXPECT_TRUE(t.to_vector().empty());
}

}  // namespace
