// MonitorState: the folding of events (see monitor_state.hpp).
#include "monitor_state.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::detail {

namespace {

constexpr std::array<double, 14> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                             0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
enum Kind { kReceived = 0, kSucceeded = 1, kFailed = 2, kRetried = 3 };

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool is_ready(const std::string& s) {
  return s == "SUCCESS" || s == "FAILURE" || s == "REVOKED" || s == "REJECTED";
}

const char* state_of(const std::string& type) {
  if (type == "task-sent") return "PENDING";
  if (type == "task-received") return "RECEIVED";
  if (type == "task-started") return "STARTED";
  if (type == "task-succeeded") return "SUCCESS";
  if (type == "task-failed") return "FAILURE";
  if (type == "task-retried") return "RETRY";
  if (type == "task-revoked") return "REVOKED";
  if (type == "task-rejected") return "REJECTED";
  return nullptr;
}

std::string str(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double num(const Json& j, const char* key, double fallback = 0) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

// Prometheus label value escaping (backslash, quote, newline).
std::string esc(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

bool contains_text(const Json& t, const std::string& needle) {
  for (const char* k : {"args", "kwargs", "result", "exception"}) {
    auto it = t.find(k);
    if (it == t.end() || it->is_null()) continue;
    std::string s = it->is_string() ? it->get<std::string>() : it->dump();
    if (s.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string format_event_time(double unix_seconds) {
  auto secs = static_cast<std::time_t>(unix_seconds);
  int ms = static_cast<int>((unix_seconds - static_cast<double>(secs)) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                std::clamp(ms, 0, 999));
  return buf;
}

MonitorState::MonitorState(StateLimits limits) : limits_(limits) {}

std::optional<std::string> MonitorState::apply(const Json& e) {
  std::lock_guard lk(mu_);
  if (!e.is_object() || !e.contains("type") || !e["type"].is_string()) {
    ++malformed_;
    return std::nullopt;
  }
  ++seen_;
  std::string type = e["type"].get<std::string>();
  if (type.rfind("worker-", 0) == 0) {
    apply_worker(type, e);
    return std::nullopt;
  }
  try {
    if (type.rfind("task-", 0) == 0) return apply_task(type, e);
  } catch (const std::exception&) {
    ++malformed_;  // a field of the wrong type: the event is skipped, the state stays usable
  }
  return std::nullopt;
}

void MonitorState::apply_worker(const std::string& type, const Json& e) {
  std::string host = str(e, "hostname");
  if (host.empty()) {
    ++malformed_;
    return;
  }
  events_total_[{host, type, ""}]++;
  Worker& w = workers_[host];
  for (const char* k : {"hostname", "pid", "freq", "active", "processed", "loadavg", "sw_ident",
                        "sw_ver", "sw_sys", "clock", "timestamp", "utcoffset"})
    if (auto it = e.find(k); it != e.end()) w.info[k] = *it;
  w.last_heartbeat = now_s();
  w.offline = type == "worker-offline";
}

std::optional<std::string> MonitorState::apply_task(const std::string& type, const Json& e) {
  std::string id = str(e, "uuid");
  const char* state = state_of(type);
  if (id.empty() || !state) {
    ++malformed_;
    return std::nullopt;
  }
  auto [it, inserted] = tasks_.try_emplace(id, Json::object());
  Json& t = it->second;
  if (inserted) {
    order_.push_back(id);
    t["uuid"] = id;
    t["state"] = state;
  }
  for (auto& [k, v] : e.items())
    if (k != "type" && k != "clock" && k != "pid" && k != "utcoffset" && k != "hostname" &&
        k != "local_received" && k != "state")
      t[k] = v;
  double ts = num(e, "timestamp", now_s());
  std::string host = str(e, "hostname");
  if (type != "task-sent" && !host.empty()) t["worker"] = host;
  std::string field = type.substr(5);  // received, started, ...
  if (field == "sent" || field == "received" || field == "started" || field == "succeeded" ||
      field == "failed" || field == "retried" || field == "revoked" || field == "rejected")
    t[field] = ts;
  std::string current = str(t, "state");
  if (!is_ready(current) || is_ready(state) || inserted) t["state"] = state;
  std::string name = str(t, "name");
  events_total_[{host, type, name}]++;
  auto key = std::make_pair(host, name);
  if (type == "task-received") {
    prefetched_[key]++;
    count_second(ts, kReceived);
  } else if (type == "task-started") {
    if (prefetched_[key] > 0) prefetched_[key]--;
    if (t.contains("received") && t["received"].is_number())
      prefetch_time_[key] = std::max(0.0, ts - t["received"].get<double>());
  } else if (type == "task-succeeded" || type == "task-failed") {
    count_second(ts, type == "task-succeeded" ? kSucceeded : kFailed);
    double rt = num(e, "runtime", -1);
    if (rt < 0 && t.contains("started") && t["started"].is_number())
      rt = ts - t["started"].get<double>();
    if (rt >= 0) {
      auto& h = runtime_[key];
      for (std::size_t i = 0; i < kBuckets.size(); ++i)
        if (rt <= kBuckets[i]) h.buckets[i]++;
      h.buckets[kBuckets.size()]++;
      h.sum += rt;
      h.count++;
      t["runtime"] = rt;
      recent_runtimes_.push_back(rt);
      if (recent_runtimes_.size() > 1000) recent_runtimes_.pop_front();
    }
  } else if (type == "task-retried") {
    count_second(ts, kRetried);
  }
  evict();
  return id;
}

void MonitorState::restore_task(const Json& task) {
  std::lock_guard lk(mu_);
  std::string id = str(task, "uuid");
  if (id.empty()) return;
  if (tasks_.emplace(id, task).second) order_.push_back(id);
  evict();
}

void MonitorState::count_second(double ts, int kind) {
  // The timestamp comes from another process: anything but plausible Unix
  // seconds (NaN, negative, 1e74) is not counted, rather than converted
  // (undefined) or used as a negative index.
  if (!(ts >= 0 && ts < 1e11)) return;
  auto t = static_cast<std::int64_t>(ts);
  auto& s = seconds_[static_cast<std::size_t>(t % static_cast<std::int64_t>(seconds_.size()))];
  if (s.t != t) s = Second{t, {}};
  s.n[static_cast<std::size_t>(kind)]++;
}

void MonitorState::evict() {
  while (order_.size() > limits_.max_tasks) {
    tasks_.erase(order_.front());
    order_.pop_front();
  }
}

Json MonitorState::workers() const {
  std::lock_guard lk(mu_);
  Json out = Json::object();
  double now = now_s();
  for (auto& [host, w] : workers_) {
    Json j = w.info;
    double freq = num(w.info, "freq", 2.0);
    j["status"] = !w.offline && now - w.last_heartbeat < std::max(freq, 1.0) * 2.0 + 1.0;
    std::string ident = str(w.info, "sw_ident");
    j["language"] = ident == "celeriac" ? "C++" : (ident.empty() ? "?" : "Python");
    j["heartbeat"] = w.last_heartbeat;
    out[host] = std::move(j);
  }
  return out;
}

namespace {

using Params = std::multimap<std::string, std::string>;

std::string text_param(const Params& params, const char* key) {
  auto it = params.find(key);
  return it == params.end() ? std::string() : it->second;
}

double double_param(const Params& params, const char* key) {
  auto it = params.find(key);
  if (it == params.end()) return 0;
  try {
    std::size_t used = 0;
    double v = std::stod(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError(std::string("parameter '") + key + "' is not a number");
}

}  // namespace

std::size_t size_param(const Params& params, const char* key, std::size_t fallback) {
  auto it = params.find(key);
  if (it == params.end()) return fallback;
  long long v = 0;
  std::size_t used = 0;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != it->second.size())
    throw ConfigError(std::string("parameter '") + key + "' is not a number");
  if (v < 0) throw ConfigError(std::string("parameter '") + key + "' is negative");
  return static_cast<std::size_t>(v);
}

TaskQuery task_query_from(const Params& params) {
  TaskQuery q;
  q.name = text_param(params, "taskname");
  q.state = text_param(params, "state");
  q.worker = text_param(params, "workername");
  q.id = text_param(params, "id");
  q.search = text_param(params, "search");
  q.received_from = double_param(params, "received_start");
  q.received_to = double_param(params, "received_end");
  q.limit = size_param(params, "limit", 100);
  q.offset = size_param(params, "offset", 0);
  return q;
}

Json MonitorState::tasks(const TaskQuery& q) const {
  std::lock_guard lk(mu_);
  Json out = Json::array();
  std::size_t skipped = 0, taken = 0;
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    auto f = tasks_.find(*it);
    if (f == tasks_.end()) continue;
    const Json& t = f->second;
    if (!q.name.empty() && str(t, "name") != q.name) continue;
    if (!q.state.empty() && str(t, "state") != q.state) continue;
    if (!q.worker.empty() && str(t, "worker") != q.worker) continue;
    if (!q.id.empty() && it->rfind(q.id, 0) != 0) continue;
    double rec = num(t, "received", num(t, "sent", 0));
    if (q.received_from > 0 && rec < q.received_from) continue;
    if (q.received_to > 0 && rec > q.received_to) continue;
    if (!q.search.empty() && !contains_text(t, q.search)) continue;
    if (skipped++ < q.offset) continue;
    out.push_back(t);
    if (q.limit && ++taken >= q.limit) break;
  }
  return out;
}

std::optional<Json> MonitorState::record(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::nullopt;
  return it->second;
}

std::optional<Json> MonitorState::task(const std::string& id) const {
  std::lock_guard lk(mu_);
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return std::nullopt;
  Json t = it->second;
  Json children = Json::array();
  for (auto& [cid, c] : tasks_)
    if (str(c, "parent_id") == id) children.push_back(cid);
  t["children"] = children;
  return t;
}

Json MonitorState::series() const {
  std::lock_guard lk(mu_);
  auto now = static_cast<std::int64_t>(now_s());
  Json t = Json::array(), r = Json::array(), s = Json::array(), f = Json::array(),
       y = Json::array();
  for (std::int64_t sec = now - static_cast<std::int64_t>(seconds_.size()) + 1; sec <= now; ++sec) {
    auto& b = seconds_[static_cast<std::size_t>(sec % static_cast<std::int64_t>(seconds_.size()))];
    bool hit = b.t == sec;
    t.push_back(sec);
    r.push_back(hit ? b.n[kReceived] : 0);
    s.push_back(hit ? b.n[kSucceeded] : 0);
    f.push_back(hit ? b.n[kFailed] : 0);
    y.push_back(hit ? b.n[kRetried] : 0);
  }
  return {{"t", t}, {"received", r}, {"succeeded", s}, {"failed", f}, {"retried", y}};
}

Json MonitorState::runtime_percentiles() const {
  std::vector<double> v;
  {
    std::lock_guard lk(mu_);
    v.assign(recent_runtimes_.begin(), recent_runtimes_.end());
  }
  if (v.empty()) return Json::object();
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
  };
  return {{"p50", pct(0.5)},
          {"p90", pct(0.9)},
          {"p99", pct(0.99)},
          {"max", v.back()},
          {"count", v.size()}};
}

std::string MonitorState::metrics() const {
  Json ws = workers();
  std::lock_guard lk(mu_);
  std::ostringstream o;
  o << "# HELP flower_events_total Number of events\n# TYPE flower_events_total counter\n";
  for (auto& [l, n] : events_total_)
    o << "flower_events_total{worker=\"" << esc(std::get<0>(l)) << "\",type=\""
      << esc(std::get<1>(l)) << "\",task=\"" << esc(std::get<2>(l)) << "\"} " << n << "\n";
  o << "# HELP flower_task_runtime_seconds Task runtime\n"
       "# TYPE flower_task_runtime_seconds histogram\n";
  for (auto& [k, h] : runtime_) {
    std::string lbl = "worker=\"" + esc(k.first) + "\",task=\"" + esc(k.second) + "\"";
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      o << "flower_task_runtime_seconds_bucket{" << lbl << ",le=\"" << fmt(kBuckets[i]) << "\"} "
        << h.buckets[i] << "\n";
    o << "flower_task_runtime_seconds_bucket{" << lbl << ",le=\"+Inf\"} "
      << h.buckets[kBuckets.size()] << "\n";
    o << "flower_task_runtime_seconds_sum{" << lbl << "} " << fmt(h.sum) << "\n";
    o << "flower_task_runtime_seconds_count{" << lbl << "} " << h.count << "\n";
  }
  o << "# HELP flower_task_prefetch_time_seconds The time the task spent waiting at the worker "
       "to be executed\n# TYPE flower_task_prefetch_time_seconds gauge\n";
  for (auto& [k, v] : prefetch_time_)
    o << "flower_task_prefetch_time_seconds{worker=\"" << esc(k.first) << "\",task=\""
      << esc(k.second) << "\"} " << fmt(v) << "\n";
  o << "# HELP flower_worker_prefetched_tasks Number of tasks of given type prefetched at a "
       "worker\n# TYPE flower_worker_prefetched_tasks gauge\n";
  for (auto& [k, v] : prefetched_)
    o << "flower_worker_prefetched_tasks{worker=\"" << esc(k.first) << "\",task=\"" << esc(k.second)
      << "\"} " << v << "\n";
  o << "# HELP flower_worker_online Worker online status\n# TYPE flower_worker_online gauge\n";
  for (auto& [host, w] : ws.items())
    o << "flower_worker_online{worker=\"" << esc(host) << "\"} "
      << (w.value("status", false) ? 1 : 0) << "\n";
  o << "# HELP flower_worker_number_of_currently_executing_tasks Number of tasks currently "
       "executing at a worker\n# TYPE flower_worker_number_of_currently_executing_tasks gauge\n";
  for (auto& [host, w] : ws.items())
    o << "flower_worker_number_of_currently_executing_tasks{worker=\"" << esc(host) << "\"} "
      << (w.contains("active") && w["active"].is_number() ? w["active"].get<double>() : 0) << "\n";
  return o.str();
}

std::uint64_t MonitorState::events_seen() const {
  std::lock_guard lk(mu_);
  return seen_;
}

std::uint64_t MonitorState::malformed() const {
  std::lock_guard lk(mu_);
  return malformed_;
}

void MonitorState::count_malformed(std::uint64_t n) {
  std::lock_guard lk(mu_);
  malformed_ += n;
}

std::string MonitorState::terminal_view(const std::string& broker_url) const {
  (void)broker_url;
  Json ws = workers();
  TaskQuery q;
  q.limit = 20;
  Json ts = tasks(q);
  Json s = series();
  auto last = [&](const char* k) {
    std::uint64_t n = 0;
    auto& a = s[k];
    for (std::size_t i = a.size() >= 60 ? a.size() - 60 : 0; i < a.size(); ++i)
      n += a[i].get<std::uint64_t>();
    return n;
  };
  std::ostringstream o;
  o << "celeriac events: " << events_seen() << " events, " << malformed() << " malformed\n";
  o << "last minute: received " << last("received") << "  succeeded " << last("succeeded")
    << "  failed " << last("failed") << "  retried " << last("retried") << "\n\n";
  o << "WORKERS\n";
  for (auto& [host, w] : ws.items()) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-32s %-7s %-7s active=%-4lld processed=%lld\n",
                  host.c_str(), w.value("status", false) ? "online" : "OFFLINE",
                  w.value("language", "?").c_str(), w.value("active", 0LL),
                  w.value("processed", 0LL));
    o << line;
  }
  o << "\nTASKS (newest first)\n";
  for (auto& t : ts) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-36s %-9s %-28s %s\n", t.value("uuid", "?").c_str(),
                  t.value("state", "?").c_str(), t.value("name", "?").c_str(),
                  t.value("worker", "").c_str());
    o << line;
  }
  return o.str();
}

}  // namespace celeriac::tq::detail
