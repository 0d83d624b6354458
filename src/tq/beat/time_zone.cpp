// TimeZone through the C library: TZ is process-global, so every conversion
// sets it under one lock and puts the previous value back.
#include "celeriac/tq/time_zone.hpp"

#include <time.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {
namespace {

std::mutex& tz_mutex() {
  static std::mutex mu;
  return mu;
}

std::filesystem::path zoneinfo_dir() {
  const char* dir = std::getenv("TZDIR");
  return dir && *dir ? std::filesystem::path(dir) : std::filesystem::path("/usr/share/zoneinfo");
}

// Sets TZ to `zone` for the lifetime of the object (caller holds tz_mutex()).
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

std::tm to_tm(std::chrono::local_seconds l) {
  using namespace std::chrono;
  auto day = floor<days>(l);
  year_month_day ymd{day};
  hh_mm_ss hms{l - day};
  std::tm tm{};
  tm.tm_year = static_cast<int>(ymd.year()) - 1900;
  tm.tm_mon = static_cast<int>(static_cast<unsigned>(ymd.month())) - 1;
  tm.tm_mday = static_cast<int>(static_cast<unsigned>(ymd.day()));
  tm.tm_hour = static_cast<int>(hms.hours().count());
  tm.tm_min = static_cast<int>(hms.minutes().count());
  tm.tm_sec = static_cast<int>(hms.seconds().count());
  return tm;
}

std::chrono::local_seconds from_tm(const std::tm& tm) {
  using namespace std::chrono;
  year_month_day ymd{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                     day{static_cast<unsigned>(tm.tm_mday)}};
  return local_days{ymd} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
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
  tz.name_ = name;
  tz.utc_ = false;
  return tz;
}

std::chrono::local_seconds TimeZone::to_local(std::chrono::sys_seconds t) const {
  if (utc_) return std::chrono::local_seconds{t.time_since_epoch()};
  return std::chrono::local_seconds{t.time_since_epoch()} + offset(t);
}

std::chrono::seconds TimeZone::offset(std::chrono::sys_seconds t) const {
  if (utc_) return std::chrono::seconds{0};
  std::lock_guard lock(tz_mutex());
  ScopedTz scoped(name_);
  std::time_t tt = static_cast<std::time_t>(t.time_since_epoch().count());
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  return std::chrono::seconds{tm.tm_gmtoff};
}

std::vector<std::chrono::sys_seconds> TimeZone::to_sys(std::chrono::local_seconds l) const {
  using namespace std::chrono;
  if (utc_) return {sys_seconds{l.time_since_epoch()}};
  std::vector<sys_seconds> out;
  std::lock_guard lock(tz_mutex());
  ScopedTz scoped(name_);
  // Try both DST flags; keep the instants whose local time really is `l`.
  for (int isdst : {1, 0}) {
    std::tm tm = to_tm(l);
    tm.tm_isdst = isdst;
    std::time_t tt = ::mktime(&tm);
    if (tt == static_cast<std::time_t>(-1)) continue;
    std::tm back{};
    ::localtime_r(&tt, &back);
    if (from_tm(back) != l) continue;
    sys_seconds s{seconds{tt}};
    if (out.empty() || out.front() != s) out.push_back(s);
  }
  if (out.size() == 2 && out[1] < out[0]) std::swap(out[0], out[1]);
  return out;
}

}  // namespace celeriac::tq
