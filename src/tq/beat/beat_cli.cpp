// `app beat`, `celeriac beat --schedule FILE`, `beat --list`, `worker -B`.
#include "celeriac/tq/detail/beat_cli.hpp"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <iostream>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq::detail {
namespace {

void add_common(CLI::App& cmd, BeatCliOptions& o) {
  cmd.add_option(
      "-s,--schedule", o.schedule_files,
      "JSON schedule file(s) of entries (docs/tq-beat.md), added to the app's own entries");
  cmd.add_option("--lease", o.lease,
                 "seconds a lease lasts unrenewed: the longest failover (default 5)")
      ->check(CLI::PositiveNumber);
  cmd.add_option("--renew", o.renew, "seconds between lease renewals (default 1)")
      ->check(CLI::PositiveNumber);
  cmd.add_option(
      "--starting-deadline", o.starting_deadline,
      "skip catch-up runs of slots older than this many seconds (default: always catch up)");
  cmd.add_option("--instance", o.instance,
                 "this instance's id in the lease (default host:pid:random)");
  cmd.add_option("--name", o.name,
                 "namespace of the lease and state in the store (default celeriac.beat)");
}

std::vector<PeriodicEntry> all_entries(tq::App& app, const BeatCliOptions& o) {
  auto entries = app.periodic_tasks();
  for (const auto& f : o.schedule_files) {
    auto more = load_schedule_file(f);
    entries.insert(entries.end(), more.begin(), more.end());
  }
  validate_entries(entries);
  return entries;
}

BeatOptions beat_options(const BeatCliOptions& o) {
  BeatOptions b;
  b.lease = std::chrono::milliseconds(static_cast<long long>(o.lease * 1000));
  b.renew_every = std::chrono::milliseconds(static_cast<long long>(o.renew * 1000));
  if (o.starting_deadline >= 0)
    b.starting_deadline =
        std::chrono::milliseconds(static_cast<long long>(o.starting_deadline * 1000));
  b.instance_id = o.instance;
  b.store_name = o.name;
  return b;
}

std::string when(const std::optional<std::chrono::system_clock::time_point>& t) {
  if (!t) return "-";
  std::string s = format_iso8601(*t, false);  // 2026-12-07T18:30:28.000000
  s[10] = ' ';
  return s.substr(0, 19);
}

int print_status(tq::App& app, const std::vector<PeriodicEntry>& entries, const BeatCliOptions& o) {
  const auto& cfg = app.config();
  auto store = make_beat_store(cfg.backend_url.empty() ? cfg.broker_url : cfg.backend_url, o.name);
  std::cout << "store: " << store->describe() << " (" << o.name << ")\n";
  if (auto lease = store->lease())
    std::printf("active instance: %s (lease %.1fs left)\n", lease->holder.c_str(),
                lease->remaining.count() / 1000.0);
  else
    std::cout << "active instance: none\n";
  std::printf("%-24s %-24s %-42s %-20s %-20s %s\n", "NAME", "TASK", "SCHEDULE", "LAST RUN (UTC)",
              "NEXT RUN (UTC)", "TOTAL RUNS");
  for (const auto& s : stored_status(entries, *store, std::chrono::system_clock::now()))
    std::printf("%-24s %-24s %-42s %-20s %-20s %llu\n", s.name.c_str(), s.task.c_str(),
                s.schedule.c_str(), when(s.last_run).c_str(),
                s.enabled ? when(s.next_run).c_str() : "disabled",
                static_cast<unsigned long long>(s.total_runs));
  std::cout << entries.size() << " entr" << (entries.size() == 1 ? "y" : "ies") << "\n";
  return 0;
}

}  // namespace

void add_beat_command(CLI::App& cli, BeatCliOptions& o) {
  o.command = cli.add_subcommand(
      "beat", "run the periodic task scheduler (highly available: start several)");
  add_common(*o.command, o);
  o.command->add_flag(
      "--list,--status", o.list,
      "show each entry's last run, next run, total runs and the active instance, then exit");
  // `beat status` / `beat list`: the same report as a subcommand (Celery's
  // spelling of such reports), with the options it needs after it.
  for (const char* name : {"status", "list"}) {
    CLI::App* report = o.command->add_subcommand(
        name, "show each entry's next run, last run, total runs and the active beat instance");
    report->add_option("-s,--schedule", o.schedule_files,
                       "JSON schedule file(s) of entries, added to the app's own entries");
    report->add_option("--name", o.name,
                       "namespace of the lease and state in the store (default celeriac.beat)");
    report->callback([&o] { o.list = true; });
  }
}

void add_worker_beat_options(CLI::App& worker, bool& embed, BeatCliOptions& o) {
  worker.add_flag("-B,--beat", embed,
                  "also run beat in this process (one beat is active across all instances)");
  worker.add_option("--beat-schedule", o.schedule_files,
                    "with -B: JSON schedule file(s) of extra entries");
  worker.add_option("--beat-instance", o.instance,
                    "with -B: this beat's id in the lease (default host:pid:random)");
  worker
      .add_option("--beat-lease", o.lease,
                  "with -B: seconds a beat lease lasts unrenewed (default 5)")
      ->check(CLI::PositiveNumber);
}

std::unique_ptr<Beat> make_cli_beat(tq::App& app, const BeatCliOptions& o) {
  auto entries = all_entries(app, o);
  if (entries.empty())
    throw ConfigError(
        "beat: no periodic tasks (add them with app.add_periodic_task(...) or --schedule FILE)");
  return std::make_unique<Beat>(app, std::move(entries), beat_options(o));
}

int run_beat_command(tq::App& app, const BeatCliOptions& o) {
  if (o.list) return print_status(app, all_entries(app, o), o);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto beat = make_cli_beat(app, o);
  spdlog::info("beat {}: {} entries; waiting for the lease on {}", beat->instance_id(),
               beat->entry_count(), beat->store().describe());
  beat->start();
  int sig = 0;
  while (sig <= 0) {
    timespec ts{1, 0};
    sig = sigtimedwait(&set, nullptr, &ts);
  }
  spdlog::info("beat {}: {} received, stopping", beat->instance_id(),
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  beat->stop();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  auto c = beat->counters();
  spdlog::info("beat {} stopped: {} sent, {} stale catch-ups skipped, {} takeovers",
               beat->instance_id(), c.sent, c.skipped_stale, c.takeovers);
  return 0;
}

}  // namespace celeriac::tq::detail
