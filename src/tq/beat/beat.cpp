// Beat: lease handling, the two due-heaps (intervals on the monotonic
// clock, crontabs on the wall clock), catch-up, fenced state commits.
#include "celeriac/tq/beat.hpp"

#include <unistd.h>

#include <random>

#include <spdlog/spdlog.h>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq {

using namespace std::chrono;
using WallPoint = system_clock::time_point;
using MonoPoint = steady_clock::time_point;

namespace {

std::int64_t ns(WallPoint t) {
  return duration_cast<nanoseconds>(t.time_since_epoch()).count();
}
std::int64_t ns(MonoPoint t) {
  return duration_cast<nanoseconds>(t.time_since_epoch()).count();
}
WallPoint wall_at(std::int64_t n) {
  return WallPoint(duration_cast<system_clock::duration>(nanoseconds(n)));
}

std::string default_instance_id() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + suffix;
}

milliseconds to_ms_ceil(nanoseconds d) {
  return d <= nanoseconds(0) ? milliseconds(0) : ceil<milliseconds>(d);
}

}  // namespace

Beat::Beat(App& app, std::vector<PeriodicEntry> entries, BeatOptions options,
           std::shared_ptr<BeatStore> store, const BeatClock& clock)
    : app_(app), options_(std::move(options)), store_(std::move(store)), clock_(clock) {
  validate_entries(entries);
  entries_ = detail::EntryTable(std::move(entries));
  if (options_.lease <= milliseconds(0)) throw ConfigError("beat: lease must be positive");
  if (options_.renew_every <= milliseconds(0) || options_.renew_every >= options_.lease)
    throw ConfigError("beat: renew_every (" + std::to_string(options_.renew_every.count()) +
                      "ms) must be positive and shorter than the lease (" +
                      std::to_string(options_.lease.count()) + "ms)");
  if (options_.instance_id.empty()) options_.instance_id = default_instance_id();
  if (!store_) {
    const auto& cfg = app_.config();
    store_ = make_beat_store(cfg.backend_url.empty() ? cfg.broker_url : cfg.backend_url,
                             options_.store_name, clock_);
  }
  rt_.resize(entries_.size());
}

Beat::~Beat() {
  stop();
}

bool Beat::is_active() const {
  std::lock_guard lock(mu_);
  return active_;
}

Beat::Counters Beat::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

milliseconds Beat::tick() {
  std::lock_guard lock(mu_);
  ++counters_.ticks;
  WallPoint now_w = clock_.wall();
  MonoPoint now_m = clock_.mono();
  if (!last_renew_ || now_m - *last_renew_ >= options_.renew_every) renew(now_m, now_w);
  auto until_renew = options_.renew_every - (now_m - *last_renew_);
  if (!active_) return to_ms_ceil(until_renew);

  std::vector<std::uint32_t> due;
  while (!interval_heap_.empty() && interval_heap_.top().first <= ns(now_m)) {
    due.push_back(interval_heap_.top().second);
    interval_heap_.pop();
  }
  while (!cron_heap_.empty() && cron_heap_.top().first <= ns(now_w)) {
    due.push_back(cron_heap_.top().second);
    cron_heap_.pop();
  }
  if (!due.empty()) send_due(due, now_w, now_m);
  if (!active_) return to_ms_ceil(until_renew);

  nanoseconds wait = until_renew;
  if (!interval_heap_.empty())
    wait = std::min(wait, nanoseconds(interval_heap_.top().first - ns(now_m)));
  if (!cron_heap_.empty()) wait = std::min(wait, nanoseconds(cron_heap_.top().first - ns(now_w)));
  return to_ms_ceil(wait);
}

void Beat::renew(MonoPoint now_m, WallPoint now_w) {
  last_renew_ = now_m;
  bool held = false;
  try {
    held = store_->acquire(options_.instance_id, options_.lease);
  } catch (const std::exception& e) {
    // The store is unreachable: nobody else can take the lease before it expires, so stay active
    // until then.
    spdlog::warn("beat {}: cannot renew the lease: {}", options_.instance_id, e.what());
    if (active_ && now_m - last_renew_ok_ >= options_.lease)
      demote("the lease expired while the store was unreachable");
    return;
  }
  if (!held) {
    if (active_) demote("another instance holds the lease");
    return;
  }
  last_renew_ok_ = now_m;
  if (!active_) become_active(now_w, now_m);
}

void Beat::become_active(WallPoint now_w, MonoPoint now_m) {
  auto states = store_->load();
  interval_heap_ = Heap();
  cron_heap_ = Heap();
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    const Schedule& schedule = entries_.schedule(i);
    Runtime& r = rt_[i];
    r = Runtime{};
    std::optional<WallPoint> last;
    if (auto it = states.find(std::string(entries_.name(i))); it != states.end()) {
      last = it->second.last_run;
      r.total = it->second.total_runs;
    }
    if (last) r.last_run_ns = ns(*last);
    // Never run: Celery's rule, the first slot after now. Else the slot after
    // the last one sent, which may be in the past: then it is due at once (catch-up).
    WallPoint next = schedule.next_after(last.value_or(now_w), entries_.options(i).relative);
    r.next_slot_ns = ns(next);
    r.due_mono_ns = ns(now_m) + (ns(next) - ns(now_w));
    push(i);
  }
  // Open the broker connection and load the commit script now, so the first due batch does not pay
  // for them.
  try {
    (void)app_.broker().queue_length(app_.config().default_queue);
    (void)store_->commit(options_.instance_id, {});
  } catch (const std::exception& e) {
    spdlog::warn("beat {}: broker not reachable yet: {}", options_.instance_id, e.what());
  }
  active_ = true;
  ++counters_.takeovers;
  spdlog::info("beat {}: active (lease {}ms, renewed every {}ms), {} entries, state from {}",
               options_.instance_id, options_.lease.count(), options_.renew_every.count(),
               entries_.size(), store_->describe());
}

void Beat::demote(const char* why) {
  active_ = false;
  interval_heap_ = Heap();
  cron_heap_ = Heap();
  spdlog::warn("beat {}: standing by ({})", options_.instance_id, why);
}

void Beat::push(std::uint32_t i) {
  if (!entries_.options(i).enabled) return;
  if (entries_.schedule(i).is_interval())
    interval_heap_.emplace(rt_[i].due_mono_ns, i);
  else
    cron_heap_.emplace(rt_[i].next_slot_ns, i);
}

void Beat::send_due(const std::vector<std::uint32_t>& due, WallPoint now_w, MonoPoint now_m) {
  BeatStore::Updates updates;
  std::vector<TaskMessage> messages;
  std::vector<std::pair<std::size_t, WallPoint>> sent;
  std::vector<Runtime> next(due.size());
  updates.reserve(due.size());
  messages.reserve(due.size());
  for (std::size_t k = 0; k < due.size(); ++k) {
    std::uint32_t i = due[k];
    const Schedule& schedule = entries_.schedule(i);
    const TaskCall& call = entries_.call(i);
    const PeriodicOptions& opts = entries_.options(i);
    std::string name(entries_.name(i));
    Runtime r = rt_[i];
    // The slot sent is the latest one due; earlier missed ones collapse into it (Celery's one
    // catch-up).
    WallPoint slot;
    nanoseconds late;
    if (schedule.is_interval()) {
      std::int64_t p = duration_cast<nanoseconds>(schedule.period()).count();
      std::int64_t missed = (ns(now_m) - r.due_mono_ns) / p;
      r.next_slot_ns += missed * p;
      r.due_mono_ns += missed * p;
      slot = wall_at(r.next_slot_ns);
      late = nanoseconds(ns(now_m) - r.due_mono_ns);
      r.next_slot_ns += p;
      r.due_mono_ns += p;
    } else {
      slot = std::max(wall_at(r.next_slot_ns), schedule.last_at_or_before(now_w, now_w));
      late = now_w - slot;
      r.next_slot_ns = ns(schedule.next_after(std::max(slot, now_w)));
    }
    bool stale = options_.starting_deadline && late > *options_.starting_deadline;
    r.last_run_ns = ns(slot);
    if (stale) {
      ++counters_.skipped_stale;
      spdlog::info("beat: '{}' slot {} skipped: {}ms late, past the starting deadline", name,
                   format_iso8601(slot), duration_cast<milliseconds>(late).count());
    } else {
      ++r.total;
      CallOptions o = call.options;
      if (!opts.queue.empty()) o.queue = opts.queue;
      if (opts.priority) o.priority = opts.priority;
      if (opts.expires) o.expires_in = opts.expires;
      o.headers["celeriac_beat_entry"] = name;
      o.headers["celeriac_beat_slot"] = format_iso8601(slot);
      messages.push_back(app_.build_message(call.task, call.args, call.kwargs, o));
      sent.emplace_back(i, slot);
    }
    updates.emplace_back(std::move(name), EntryState{slot, r.total});
    next[k] = r;
  }
  // Record before sending: a crash in between loses the slot rather than sending it twice.
  bool committed = false;
  try {
    committed = store_->commit(options_.instance_id, updates);
  } catch (const std::exception& e) {
    spdlog::error("beat {}: cannot store state, sending nothing: {}", options_.instance_id,
                  e.what());
  }
  if (!committed) {
    demote(
        "the lease was lost before the due tasks were recorded; they are left to the active "
        "instance");
    last_renew_.reset();
    return;
  }
  for (std::size_t k = 0; k < due.size(); ++k) {
    rt_[due[k]] = next[k];
    push(due[k]);
  }
  if (messages.empty()) return;
  try {
    app_.publish_many(messages);
    counters_.sent += messages.size();
    for (const auto& m : messages) spdlog::debug("beat: sent {} [{}]", m.task, m.id);
    spdlog::info("beat: sent {} periodic task(s)", messages.size());
    if (on_sent) on_sent(sent);
  } catch (const std::exception& e) {
    spdlog::error("beat {}: publishing {} periodic task(s) failed, their slots are lost: {}",
                  options_.instance_id, messages.size(), e.what());
  }
}

std::vector<BeatEntryStatus> Beat::status() {
  {
    std::lock_guard lock(mu_);
    if (active_) {
      std::vector<BeatEntryStatus> out;
      out.reserve(entries_.size());
      for (std::size_t i = 0; i < entries_.size(); ++i) {
        bool enabled = entries_.options(i).enabled;
        BeatEntryStatus s{std::string(entries_.name(i)),
                          entries_.call(i).task,
                          entries_.schedule(i).describe(),
                          enabled,
                          std::nullopt,
                          std::nullopt,
                          rt_[i].total};
        if (rt_[i].last_run_ns) s.last_run = wall_at(rt_[i].last_run_ns);
        if (enabled) s.next_run = wall_at(rt_[i].next_slot_ns);
        out.push_back(std::move(s));
      }
      return out;
    }
  }
  return stored_status(entries_.to_vector(), *store_, clock_.wall());
}

std::vector<BeatEntryStatus> stored_status(const std::vector<PeriodicEntry>& entries,
                                           BeatStore& store, WallPoint now) {
  auto states = store.load();
  std::vector<BeatEntryStatus> out;
  out.reserve(entries.size());
  for (const auto& e : entries) {
    BeatEntryStatus s{
        e.name, e.call.task, e.schedule.describe(), e.options.enabled, std::nullopt, std::nullopt,
        0};
    if (auto it = states.find(e.name); it != states.end()) {
      s.last_run = it->second.last_run;
      s.total_runs = it->second.total_runs;
    }
    if (e.options.enabled)
      s.next_run = e.schedule.next_after(s.last_run.value_or(now), e.options.relative);
    out.push_back(std::move(s));
  }
  return out;
}

void Beat::start() {
  std::lock_guard lock(run_mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Beat::run() {
  for (;;) {
    milliseconds wait;
    try {
      wait = tick();
    } catch (const std::exception& e) {
      spdlog::error("beat {}: {}", options_.instance_id, e.what());
      wait = options_.renew_every;
    }
    std::unique_lock lock(run_mu_);
    if (run_cv_.wait_for(lock, std::max(wait, milliseconds(1)), [&] { return stopping_; })) return;
  }
}

void Beat::stop() {
  {
    std::lock_guard lock(run_mu_);
    stopping_ = true;
  }
  run_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  if (active_) {
    try {
      store_->release(options_.instance_id);
    } catch (const std::exception& e) {
      spdlog::warn("beat {}: cannot release the lease: {}", options_.instance_id, e.what());
    }
    active_ = false;
    spdlog::info("beat {}: stopped, lease released", options_.instance_id);
  }
}

}  // namespace celeriac::tq
