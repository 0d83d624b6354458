// Beat on a virtual clock: interval and crontab entries, catch-up, the
// starting deadline, clock steps, two instances on one store (lease and
// failover), restart from stored state, entry options, bad input. Messages go
// to a memory:// broker and are read back from its queues.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/beat.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

using namespace celeriac::tq;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

using TP = system_clock::time_point;

TP utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0, int s = 0) {
  return TP{sys_days{year{y} / month{mo} / day{d}}.time_since_epoch() + hours{h} + minutes{mi} +
            seconds{s}};
}

// Takes every waiting message of `queue` (decoded).
std::vector<TaskMessage> drain(App& app, const std::string& queue = "celery") {
  std::vector<TaskMessage> out;
  std::vector<std::string> qs{queue};
  for (;;) {
    auto ds = app.broker().reserve(qs, 1000, 0ms);
    if (ds.empty()) return out;
    for (auto& d : ds) {
      out.push_back(decode(d.envelope));
      app.broker().ack(d);
    }
  }
}

std::string slot_of(const TaskMessage& m) {
  return m.extra_headers.value("celeriac_beat_slot", std::string());
}

PeriodicOptions relative() {
  PeriodicOptions o;
  o.relative = true;
  return o;
}
PeriodicOptions disabled() {
  PeriodicOptions o;
  o.enabled = false;
  return o;
}
PeriodicOptions priority(int p) {
  PeriodicOptions o;
  o.priority = p;
  return o;
}

BeatOptions opts(const std::string& id) {
  BeatOptions o;
  o.instance_id = id;
  return o;
}

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

struct BeatFixture : ::testing::Test {
  App app{"memory://", "memory://"};
  VirtualBeatClock clock{utc(2026, 6, 1, 12, 0, 0)};
  std::shared_ptr<BeatStore> store{make_memory_beat_store(clock)};

  // Ticks `beats` once a second (virtual) for `seconds`.
  template <class... B>
  void run_for(int seconds, B&... beats) {
    for (int i = 0; i < seconds; ++i) {
      clock.advance(1s);
      (beats.tick(), ...);
    }
  }
};

TEST_F(BeatFixture, IntervalSendsOncePerSlotOnTheMonotonicClock) {
  app.add_periodic_task(10s, call("tasks.add", Json::array({2, 3})), "add-every-10s");
  Beat beat(app, app.periodic_tasks(), opts("a"), store, clock);
  EXPECT_LE(beat.tick(), 1000ms);
  EXPECT_TRUE(beat.is_active());
  run_for(9, beat);
  EXPECT_TRUE(drain(app).empty()) << "Celery's rule: the first run is one period after start";
  run_for(1, beat);
  auto sent = drain(app);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].task, "tasks.add");
  EXPECT_EQ(sent[0].args, Json::array({2, 3}));
  EXPECT_EQ(slot_of(sent[0]), format_iso8601(utc(2026, 6, 1, 12, 0, 10)));
  EXPECT_EQ(sent[0].extra_headers.value("celeriac_beat_entry", std::string()), "add-every-10s");
  // A wall-clock step back does not move an interval: it follows the monotonic clock.
  clock.set_wall(utc(2026, 6, 1, 11, 0, 10));
  run_for(10, beat);
  EXPECT_EQ(drain(app).size(), 1u);
  EXPECT_EQ(beat.counters().sent, 2u);
}

TEST_F(BeatFixture, MissedIntervalSlotsCollapseIntoOneCatchUp) {
  app.add_periodic_task(10s, call("tasks.noop"), "noop");
  Beat beat(app, app.periodic_tasks(), opts("a"), store, clock);
  beat.tick();
  clock.advance(45s);  // slots +10, +20, +30, +40 all missed (beat stalled)
  beat.tick();
  auto sent = drain(app);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(slot_of(sent[0]), format_iso8601(utc(2026, 6, 1, 12, 0, 40)));
  run_for(5, beat);
  EXPECT_EQ(drain(app).size(), 1u) << "the grid is kept: next slot +50";
}

TEST_F(BeatFixture, RelativeIntervalsAlignToThePeriod) {
  clock.advance(3s);  // 12:00:03
  app.add_periodic_task(10s, call("tasks.noop"), "aligned", relative());
  Beat beat(app, app.periodic_tasks(), opts("a"), store, clock);
  beat.tick();
  run_for(7, beat);
  auto sent = drain(app);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(slot_of(sent[0]), format_iso8601(utc(2026, 6, 1, 12, 0, 10)));
}

TEST_F(BeatFixture, CrontabFollowsTheWallClock) {
  clock.set_wall(utc(2026, 6, 1, 12, 3, 30));
  app.add_periodic_task(crontab("*/5"), call("tasks.report"), "report");
  Beat beat(app, app.periodic_tasks(), opts("a"), store, clock);
  beat.tick();
  run_for(89, beat);  // 12:04:59
  EXPECT_TRUE(drain(app).empty());
  run_for(1, beat);
  auto sent = drain(app);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(slot_of(sent[0]), format_iso8601(utc(2026, 6, 1, 12, 5)));
  // The wall clock steps back an hour: the 11:05 .. 12:05 slots are not run again.
  clock.set_wall(utc(2026, 6, 1, 11, 5, 1));
  run_for(600, beat);
  EXPECT_TRUE(drain(app).empty());
  clock.set_wall(utc(2026, 6, 1, 12, 9, 59));
  run_for(1, beat);
  EXPECT_EQ(drain(app).size(), 1u);
}

TEST_F(BeatFixture, CrontabAcrossDstOverlapRunsOnce) {
  TimeZone paris = TimeZone::locate("Europe/Paris");
  clock.set_wall(utc(2026, 10, 24, 23, 0));  // 01:00 CEST on the fall-back night
  app.add_periodic_task(crontab(30, 2, "*", "*", "*", paris), call("tasks.nightly"), "nightly");
  Beat beat(app, app.periodic_tasks(), opts("a"), store, clock);
  beat.tick();
  std::vector<std::string> slots;
  for (int i = 0; i < 4 * 60; ++i) {  // four hours, a tick a minute
    clock.advance(60s);
    beat.tick();
    for (auto& m : drain(app)) slots.push_back(slot_of(m));
  }
  EXPECT_EQ(slots, std::vector<std::string>{format_iso8601(utc(2026, 10, 25, 0, 30))});
}

TEST_F(BeatFixture, StartingDeadlineSuppressesAStaleCatchUp) {
  app.add_periodic_task(crontab(0), call("tasks.hourly"), "hourly");
  {
    Beat first(app, app.periodic_tasks(), opts("a"), store, clock);
    first.tick();
    clock.advance(1h);
    first.tick();
    EXPECT_EQ(drain(app).size(), 1u);  // 13:00
  }
  clock.advance(5h + 10min);  // nobody ran from 13:00 to 18:10
  BeatOptions o = opts("b");
  o.starting_deadline = 5min;
  Beat second(app, app.periodic_tasks(), o, store, clock);
  second.tick();
  EXPECT_TRUE(drain(app).empty()) << "the 18:00 catch-up is 10 minutes late, past the deadline";
  EXPECT_EQ(second.counters().skipped_stale, 1u);
  run_for(50 * 60, second);
  auto sent = drain(app);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(slot_of(sent[0]), format_iso8601(utc(2026, 6, 1, 19, 0)));
}

TEST_F(BeatFixture, RestartResumesFromStoredStateWithOneCatchUp) {
  app.add_periodic_task(10s, call("tasks.noop"), "noop");
  {
    Beat first(app, app.periodic_tasks(), opts("a"), store, clock);
    first.tick();
    run_for(20, first);
    EXPECT_EQ(drain(app).size(), 2u);  // +10, +20
  }
  // A restart right away sends nothing twice: the next slot is still +30.
  Beat again(app, app.periodic_tasks(), opts("b"), store, clock);
  again.tick();
  EXPECT_TRUE(drain(app).empty());
  run_for(10, again);
  auto sent = drain(app);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(slot_of(sent[0]), format_iso8601(utc(2026, 6, 1, 12, 0, 30)));
  auto status = again.status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].total_runs, 3u);
  EXPECT_EQ(status[0].last_run, utc(2026, 6, 1, 12, 0, 30));
  EXPECT_EQ(status[0].next_run, utc(2026, 6, 1, 12, 0, 40));
}

TEST_F(BeatFixture, TwoInstancesOneActiveAndFailoverWithinTheLease) {
  app.add_periodic_task(1s, call("tasks.tick"), "every-second");
  auto a = std::make_unique<Beat>(app, app.periodic_tasks(), opts("a"), store, clock);
  Beat b(app, app.periodic_tasks(), opts("b"), store, clock);
  a->tick();
  b.tick();
  EXPECT_TRUE(a->is_active());
  EXPECT_FALSE(b.is_active());
  std::multiset<std::string> slots;
  auto collect = [&] {
    for (auto& m : drain(app)) slots.insert(slot_of(m));
  };
  for (int i = 0; i < 10; ++i) {
    clock.advance(1s);
    a->tick();
    b.tick();
    collect();
  }
  EXPECT_EQ(slots.size(), 10u);
  EXPECT_EQ(store->lease()->holder, "a");
  // `a` dies (stops ticking, never releases): `b` takes over once the 5 s lease ran out.
  int waited = 0;
  while (!b.is_active()) {
    clock.advance(1s);
    b.tick();
    collect();
    ASSERT_LE(++waited, 6) << "b did not take over within the lease";
  }
  EXPECT_GE(waited, 5);
  for (int i = 0; i < 10; ++i) {
    clock.advance(1s);
    b.tick();
    collect();
  }
  std::set<std::string> unique(slots.begin(), slots.end());
  EXPECT_EQ(unique.size(), slots.size()) << "a slot was sent twice";
  // 10 before, one catch-up for the lease gap, then one per second.
  EXPECT_EQ(slots.size(), 10u + 1u + 10u);
  EXPECT_EQ(b.counters().takeovers, 1u);
  // The dead instance, if it comes back, finds the lease taken and sends nothing.
  clock.advance(1s);
  a->tick();
  b.tick();
  EXPECT_FALSE(a->is_active());
  collect();
  EXPECT_EQ(std::set<std::string>(slots.begin(), slots.end()).size(), slots.size());
}

TEST_F(BeatFixture, OptionsReachTheMessageAndDisabledEntriesNeverRun) {
  PeriodicOptions o;
  o.queue = "reports";
  o.priority = 3;
  o.expires = 30;
  app.add_periodic_task(5s, call("tasks.a", Json::array(), Json{{"k", 1}}), "with-options", o);
  app.add_periodic_task(5s, call("tasks.b"), "disabled", disabled());
  Beat beat(app, app.periodic_tasks(), opts("a"), store, clock);
  beat.tick();
  run_for(5, beat);
  auto sent = drain(app, "reports");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].kwargs, (Json{{"k", 1}}));
  EXPECT_EQ(sent[0].priority, 3);
  ASSERT_TRUE(sent[0].expires.has_value());
  EXPECT_TRUE(drain(app).empty());
  auto status = beat.status();
  EXPECT_FALSE(status[1].enabled);
  EXPECT_FALSE(status[1].next_run.has_value());
}

TEST_F(BeatFixture, LostLeaseBeforeCommitSendsNothing) {
  app.add_periodic_task(1s, call("tasks.tick"), "t");
  Beat a(app, app.periodic_tasks(), opts("a"), store, clock);
  a.tick();
  // Another instance steals the expired lease while `a` is paused for 6 s.
  clock.advance(6s);
  ASSERT_TRUE(store->acquire("intruder", 5000ms));
  a.tick();  // renews -> fails -> standby
  EXPECT_FALSE(a.is_active());
  EXPECT_TRUE(drain(app).empty());
}

TEST(BeatBadInput, ClearErrorsBeforeBeatStarts) {
  App app{"memory://", "memory://"};
  expect_config_error([&] { app.add_periodic_task(0s, call("tasks.x"), "zero"); },
                      {"periodic task 'zero'", "interval must be positive"});
  app.add_periodic_task(1s, call("tasks.x"), "dup");
  expect_config_error([&] { app.add_periodic_task(2s, call("tasks.y"), "dup"); },
                      {"periodic task 'dup'", "duplicate"});
  expect_config_error([&] { app.add_periodic_task(1s, call(""), "no-task"); },
                      {"'no-task'", "task must not be empty"});
  expect_config_error([&] { app.add_periodic_task(1s, call("t", Json::object()), "bad-args"); },
                      {"'bad-args'", "args must be a JSON array"});
  expect_config_error([&] { app.add_periodic_task(1s, call("t"), "prio", priority(12)); },
                      {"'prio'", "priority 12"});
  expect_config_error([&] { crontab("*/7", "25"); }, {"hour", "25"});
  std::vector<PeriodicEntry> dup{{"x", Schedule(1s), call("t"), {}},
                                 {"x", Schedule(2s), call("t"), {}}};
  expect_config_error([&] { Beat beat(app, dup, {}, make_memory_beat_store()); },
                      {"'x'", "duplicate"});
  BeatOptions o;
  o.renew_every = 5s;
  expect_config_error([&] { Beat beat(app, {}, o, make_memory_beat_store()); },
                      {"renew_every", "shorter than the lease"});
}

TEST(BeatScheduleFile, ParsesEntriesAndRejectsBadOnes) {
  auto entries = parse_schedule(R"({"entries": [
      {"name": "add", "task": "tasks.add", "args": [2, 3], "schedule": {"every": "30s"}},
      {"name": "report", "task": "tasks.report", "kwargs": {"x": 1},
       "schedule": {"crontab": "*/5 * * * mon-fri", "timezone": "Europe/Paris"},
       "options": {"queue": "reports", "priority": 2, "expires": 60, "relative": true, "enabled": false}}]})",
                                "test.json");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].schedule.period(), 30s);
  EXPECT_EQ(entries[0].call.args, Json::array({2, 3}));
  ASSERT_NE(entries[1].schedule.crontab(), nullptr);
  EXPECT_EQ(entries[1].schedule.crontab()->days_of_week(), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(entries[1].options.queue, "reports");
  EXPECT_FALSE(entries[1].options.enabled);
  // Round trip through to_json.
  Json again = Json::array();
  for (auto& e : entries) again.push_back(e.to_json());
  EXPECT_EQ(parse_schedule(again.dump(), "again")[1].to_json(), entries[1].to_json());

  expect_config_error([] { parse_schedule("{not json", "bad.json"); },
                      {"bad.json", "not valid JSON"});
  expect_config_error([] { parse_schedule(R"({"jobs": []})", "f.json"); }, {"f.json", "entries"});
  expect_config_error(
      [] {
        parse_schedule(R"([{"name": "a", "task": "t", "schedule": {"every": "1s"}},
                              {"name": "a", "task": "t", "schedule": {"every": "2s"}}])",
                       "f.json");
      },
      {"f.json", "'a'", "duplicate"});
  expect_config_error(
      [] {
        parse_schedule(R"([{"name": "a", "task": "t", "schedule": {"hourly": true}}])", "f.json");
      },
      {"entry 0 'a'.schedule", "unknown schedule kind", "hourly"});
  expect_config_error(
      [] {
        parse_schedule(R"([{"name": "a", "task": "t", "schedule": {"every": "0s"}}])", "f.json");
      },
      {"'a'.schedule.every", "positive"});
  expect_config_error(
      [] {
        parse_schedule(R"([{"name": "c", "task": "t", "schedule": {"crontab": "*/5 * * 13 *"}}])",
                       "f.json");
      },
      {"'c'.schedule.crontab", "month_of_year", "13"});
  expect_config_error(
      [] { parse_schedule(R"([{"name": "a", "schedule": {"every": "1s"}}])", "f.json"); },
      {"'a'", "missing \"task\""});
  expect_config_error(
      [] {
        parse_schedule(
            R"([{"name": "a", "task": "t", "schedule": {"every": "1s"}, "options": {"queeu": "x"}}])",
            "f");
      },
      {"'a'.options.queeu", "unknown option"});
  expect_config_error(
      [] {
        parse_schedule(
            R"([{"name": "a", "task": "t", "schedule": {"every": "1s"}, "args": {"x": 1}}])", "f");
      },
      {"'a'.args", "array"});
  expect_config_error([] { load_schedule_file("/nonexistent/beat.json"); },
                      {"/nonexistent/beat.json", "cannot be read"});
}

TEST(BeatSqliteStore, LeaseIsExclusiveAndCommitsAreFenced) {
  auto dir =
      std::filesystem::temp_directory_path() / ("celeriac-beat-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string url = "sqlite:///" + (dir / "beat.db").string();
  VirtualBeatClock clock(utc(2026, 6, 1));
  auto s1 = make_beat_store(url, "celeriac.beat", clock);  // two connections: two processes' view
  auto s2 = make_beat_store(url, "celeriac.beat", clock);
  EXPECT_TRUE(s1->acquire("a", 5000ms));
  EXPECT_FALSE(s2->acquire("b", 5000ms));
  EXPECT_TRUE(s1->acquire("a", 5000ms));  // extend
  EXPECT_EQ(s2->lease()->holder, "a");
  EntryState st{utc(2026, 6, 1, 0, 0, 1), 7};
  EXPECT_TRUE(s1->commit("a", {{"e", st}}));
  EXPECT_FALSE(s2->commit("b", {{"e", EntryState{}}}));
  auto loaded = s2->load();
  ASSERT_EQ(loaded.count("e"), 1u);
  EXPECT_EQ(loaded["e"].total_runs, 7u);
  EXPECT_EQ(loaded["e"].last_run, st.last_run);
  clock.advance(5001ms);  // a's lease ran out
  EXPECT_FALSE(s2->lease().has_value());
  EXPECT_TRUE(s2->acquire("b", 5000ms));
  EXPECT_FALSE(s1->commit("a", {{"e", EntryState{}}})) << "a deposed holder must not write";
  EXPECT_EQ(s1->load()["e"].total_runs, 7u);
  s2->release("b");
  EXPECT_FALSE(s1->lease().has_value());
  // Another store name is another lease.
  auto other = make_beat_store(url, "other.beat", clock);
  EXPECT_TRUE(other->acquire("c", 5000ms));
  expect_config_error([&] { make_beat_store("amqp://localhost//", "x", clock); },
                      {"no state store", "amqp"});
  std::filesystem::remove_all(dir);
}

}  // namespace
