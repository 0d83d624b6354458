// TimeZone: the zone's UTC-offset transitions (1970-2100) are read once per
// zone from the C library (TZ + localtime_r, under a lock, restoring TZ) and
// cached; every conversion after that is a lookup in that table, with no
// process-global state touched.
#include "celeriac/tq/time_zone.hpp"

#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {

struct TimeZone::Table {
  std::int64_t initial_offset = 0;  // before the first transition
  std::vector<std::pair<std::int64_t, std::int64_t>>
      transitions;  // (UTC second, offset from then on)
  std::int64_t offset_at(std::int64_t t) const {
    auto it =
        std::upper_bound(transitions.begin(), transitions.end(), std::make_pair(t, INT64_MAX));
    return it == transitions.begin() ? initial_offset : std::prev(it)->second;
  }
};

namespace {

std::filesystem::path zoneinfo_dir() {
  const char* dir = std::getenv("TZDIR");
  return dir && *dir ? std::filesystem::path(dir) : std::filesystem::path("/usr/share/zoneinfo");
}

// Sets TZ to `zone` for the lifetime of the object (caller holds the lock).
class ScopedTz {
 public:
  explicit ScopedTz(const std::string& zone) {
    if (const char* old = std::getenv("TZ")) old_ = old;
    ::setenv("TZ", (":" + zone).c_str(), 1);
    ::tzset();
  }
  ~ScopedTz() {
    if (old_)
      ::setenv("TZ", old_->c_str(), 1);
    else
      ::unsetenv("TZ");
    ::tzset();
  }
  ScopedTz(const ScopedTz&) = delete;
  ScopedTz& operator=(const ScopedTz&) = delete;

 private:
  std::optional<std::string> old_;
};

std::int64_t gmtoff(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  return tm.tm_gmtoff;
}

// Samples the offset daily from 1970 to 2100 and bisects each change to the second.
std::shared_ptr<const TimeZone::Table> build_table(const std::string& zone) {
  auto table = std::make_shared<TimeZone::Table>();
  ScopedTz scoped(zone);
  constexpr std::int64_t kDay = 86400, kEnd = 4102444800;  // 2100-01-01
  std::int64_t prev_t = 0, prev_off = gmtoff(0);
  table->initial_offset = prev_off;
  for (std::int64_t t = kDay; t <= kEnd; t += kDay) {
    std::int64_t off = gmtoff(t);
    if (off == prev_off) {
      prev_t = t;
      continue;
    }
    std::int64_t lo = prev_t, hi = t;  // offset(lo) = prev_off, offset(hi) = off
    while (hi - lo > 1) {
      std::int64_t mid = lo + (hi - lo) / 2;
      (gmtoff(mid) == prev_off ? lo : hi) = mid;
    }
    table->transitions.emplace_back(hi, off);
    prev_t = t;
    prev_off = off;
  }
  return table;
}

}  // namespace

TimeZone TimeZone::locate(const std::string& name) {
  TimeZone tz;
  if (name.empty() || name == "UTC" || name == "Etc/UTC" || name == "utc") return tz;
  if (name.find("..") != std::string::npos || name.front() == '/')
    throw ConfigError("unknown time zone '" + name +
                      "' (expected a tz database name such as Europe/Paris)");
  auto file = zoneinfo_dir() / name;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw ConfigError("unknown time zone '" + name + "': no " + file.string() +
                      " (install tzdata; expected a name such as Europe/Paris)");
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Table>> cache;
  std::lock_guard lock(mu);
  auto& table = cache[name];
  if (!table) table = build_table(name);
  tz.name_ = name;
  tz.table_ = table;
  return tz;
}

std::chrono::seconds TimeZone::offset(std::chrono::sys_seconds t) const {
  if (!table_) return std::chrono::seconds{0};
  return std::chrono::seconds{table_->offset_at(t.time_since_epoch().count())};
}

std::chrono::local_seconds TimeZone::to_local(std::chrono::sys_seconds t) const {
  return std::chrono::local_seconds{t.time_since_epoch()} + offset(t);
}

std::vector<std::chrono::sys_seconds> TimeZone::to_sys(std::chrono::local_seconds l) const {
  using namespace std::chrono;
  if (!table_) return {sys_seconds{l.time_since_epoch()}};
  // The offsets in force a day either side bound the candidates (transitions are months apart).
  std::int64_t local = l.time_since_epoch().count();
  std::vector<sys_seconds> out;
  for (std::int64_t off : {table_->offset_at(local - 86400), table_->offset_at(local + 86400)}) {
    std::int64_t s = local - off;
    if (table_->offset_at(s) == off && (out.empty() || out.front().time_since_epoch().count() != s))
      out.push_back(sys_seconds{seconds{s}});
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace celeriac::tq
