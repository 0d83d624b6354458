#include "celeriac/tq/redis/result_backend.hpp"

#include <charconv>

#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/script.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/redis/broker.hpp"

namespace celeriac::tq::redis {

using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kPrefix = "celery-task-meta-";
// Ready metas remembered from the subscription (see published_).
constexpr std::size_t kPublishedCap = 20000;

// Celery's store: GET, keep a stored SUCCESS, else SETEX (or SET) and PUBLISH
// the identical JSON on the channel named like the key. KEYS[1] = key;
// ARGV = json, expires seconds (0 = never).
Script store_script(R"lua(
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, o = pcall(cjson.decode, cur)
  if ok and type(o) == 'table' and o.status == 'SUCCESS' then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
)lua");

[[noreturn]] void rethrow_backend(const tq::Url& url, const char* op) {
  try {
    throw;
  } catch (const BackendError&) {
    throw;
  } catch (const std::exception& e) {
    throw BackendError("Redis result backend " + url.redacted() + ": " + op + ": " + e.what());
  }
}

std::optional<ResultMeta> parse_meta(const Reply& r) {
  if (r.is_nil()) return std::nullopt;
  return ResultMeta::from_json(r.str());
}

}  // namespace

std::string meta_key(std::string_view task_id) {
  return std::string(kPrefix) + std::string(task_id);
}

RedisResultBackend::RedisResultBackend(const tq::Url& url)
    : url_(url), pool_(to_redis_url(url), ConnectOptions{}, std::chrono::seconds(10)) {
  std::string e = url.param("expires");
  if (!e.empty()) {
    long long v = -1;
    auto r = std::from_chars(e.data(), e.data() + e.size(), v);
    if (r.ec != std::errc() || r.ptr != e.data() + e.size() || v < 0)
      throw ConfigError("bad result backend URL '" + url.redacted() + "': expires='" + e +
                        "' is not a non-negative number of seconds");
    expires_ = std::chrono::seconds(v);
  }
}

RedisResultBackend::~RedisResultBackend() {
  close();
}

std::string RedisResultBackend::url() const {
  return url_.redacted();
}

void RedisResultBackend::check_open() const {
  if (closed_) throw BackendError("Redis result backend " + url_.redacted() + " is closed");
}

bool RedisResultBackend::store(const ResultMeta& meta) {
  check_open();
  try {
    std::string json = meta.to_json();
    std::string key = meta_key(meta.task_id);
    return pool_.run([&](Connection& c) {
      return store_script.run(c, {key}, {json, std::to_string(expires_.count())}).integer() == 1;
    });
  } catch (...) {
    rethrow_backend(url_, "store");
  }
}

// One pipeline of store scripts: the results of tasks finishing together
// cost one round trip.
std::vector<bool> RedisResultBackend::store_many(std::span<const ResultMeta> metas) {
  check_open();
  if (metas.empty()) return {};
  try {
    const std::string ex = std::to_string(expires_.count());
    std::vector<std::pair<std::string, std::string>> items;  // key, json
    items.reserve(metas.size());
    for (const auto& m : metas) items.emplace_back(meta_key(m.task_id), m.to_json());
    return pool_.run([&](Connection& c) {
      store_script.ensure_loaded(c);
      Pipeline p;
      for (const auto& [key, json] : items) store_script.add_to(p, {key}, {json, ex});
      std::vector<Reply> replies = c.execute(p);
      std::vector<bool> out;
      out.reserve(items.size());
      for (std::size_t i = 0; i < items.size(); ++i) {
        Reply r = std::move(replies.at(i));
        if (is_noscript(r)) r = store_script.run(c, {items[i].first}, {items[i].second, ex});
        if (r.is_error()) throw ReplyError("Redis " + c.describe() + ": store script: " + r.str());
        out.push_back(r.integer() == 1);
      }
      return out;
    });
  } catch (...) {
    rethrow_backend(url_, "store");
  }
}

std::optional<ResultMeta> RedisResultBackend::get(std::string_view task_id) {
  check_open();
  if (auto text = published(task_id)) return ResultMeta::from_json(*text);
  try {
    Reply r = pool_.run([&](Connection& c) { return c.command({"GET", meta_key(task_id)}); });
    return parse_meta(r);
  } catch (...) {
    rethrow_backend(url_, "get");
  }
}

std::vector<std::optional<ResultMeta>> RedisResultBackend::get_many(
    std::span<const std::string> task_ids) {
  check_open();
  std::vector<std::optional<ResultMeta>> out;
  if (task_ids.empty()) return out;
  try {
    out.resize(task_ids.size());
    std::vector<std::string> argv{"MGET"};
    std::vector<std::size_t> asked;  // positions not answered by the subscription
    for (std::size_t i = 0; i < task_ids.size(); ++i) {
      if (auto text = published(task_ids[i])) {
        out[i] = ResultMeta::from_json(*text);
      } else {
        argv.push_back(meta_key(task_ids[i]));
        asked.push_back(i);
      }
    }
    if (asked.empty()) return out;
    Reply r = pool_.run([&](Connection& c) { return c.command(argv); });
    const auto& e = r.elements();
    for (std::size_t j = 0; j < asked.size() && j < e.size(); ++j) out[asked[j]] = parse_meta(e[j]);
  } catch (...) {
    rethrow_backend(url_, "get_many");
  }
  return out;
}

void RedisResultBackend::ensure_listener() {
  std::lock_guard lk(mu_);
  if (listener_.joinable()) return;
  if (stop_) throw BackendError("Redis result backend " + url_.redacted() + " is closed");
  // subscribe before the first GET so no PUBLISH can slip between them
  sub_.emplace(pool_.url());
  sub_->psubscribe({std::string(kPrefix) + "*"});
  listener_ = std::thread([this] { listen(); });
}

void RedisResultBackend::listen() {
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (stop_) return;
    }
    try {
      auto m = sub_->get_message(std::chrono::milliseconds(100));
      if (!m) continue;
      std::string id = m->channel.substr(kPrefix.size());
      remember_published(id, m->data);
      std::lock_guard lk(mu_);
      ++events_;
      if (waiting_.count(id)) delivered_[id] = std::move(m->data);
      cv_.notify_all();
    } catch (const std::exception& e) {
      // the server went away: reconnect, re-subscribe, and make waiters GET again
      for (;;) {
        {
          std::lock_guard lk(mu_);
          if (stop_) return;
          listener_error_ = e.what();
        }
        try {
          sub_->reconnect(SteadyClock::now() + std::chrono::seconds(1));
          break;
        } catch (...) {
        }
      }
      std::lock_guard lk(mu_);
      published_.clear();
      published_order_.clear();
      ++events_;
      ++reconnects_;
      listener_error_.clear();
      cv_.notify_all();
    }
  }
}

std::optional<ResultMeta> RedisResultBackend::wait(std::string_view task_id,
                                                   std::chrono::milliseconds timeout) {
  check_open();
  auto deadline = SteadyClock::now() + timeout;
  std::string id(task_id);
  try {
    ensure_listener();
  } catch (...) {
    rethrow_backend(url_, "wait");
  }
  {
    std::lock_guard lk(mu_);
    ++waiting_[id];
  }
  struct Unregister {
    RedisResultBackend* self;
    std::string id;
    ~Unregister() {
      std::lock_guard lk(self->mu_);
      if (--self->waiting_[id] == 0) {
        self->waiting_.erase(id);
        self->delivered_.erase(id);
      }
    }
  } unregister{this, id};
  std::optional<ResultMeta> latest;
  std::uint64_t seen_reconnects = 0;
  bool need_get = true;
  for (;;) {
    if (need_get) {
      try {
        latest = get(id);
      } catch (const BackendError&) {
        if (SteadyClock::now() >= deadline) throw;
      }
      if (latest && is_ready(latest->status)) return latest;
      need_get = false;
    }
    std::unique_lock lk(mu_);
    seen_reconnects = reconnects_;
    bool woke = cv_.wait_until(lk, deadline, [&] {
      return delivered_.count(id) || reconnects_ != seen_reconnects || stop_;
    });
    if (stop_) throw BackendError("Redis result backend " + url_.redacted() + " was closed");
    if (!woke) return latest;
    if (auto it = delivered_.find(id); it != delivered_.end()) {
      std::string data = std::move(it->second);
      delivered_.erase(it);
      lk.unlock();
      latest = ResultMeta::from_json(data);
      if (is_ready(latest->status)) return latest;
    } else {
      need_get = true;  // reconnected: a result may have been published meanwhile
    }
  }
}

bool RedisResultBackend::wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) {
  check_open();
  try {
    ensure_listener();
  } catch (...) {
    rethrow_backend(url_, "wait_for_change");
  }
  std::unique_lock lk(mu_);
  bool changed = cv_.wait_for(lk, timeout, [&] { return events_ != *cursor || stop_; });
  *cursor = events_;
  return changed;
}

void RedisResultBackend::remember_published(const std::string& id, const std::string& data) {
  // Celery's meta JSON starts with its status; only ready states are final
  static constexpr std::string_view kReady[] = {
      R"({"status": "SUCCESS")", R"({"status": "FAILURE")", R"({"status": "REVOKED")"};
  std::lock_guard lk(mu_);
  bool ready = false;
  for (auto prefix : kReady) ready = ready || data.rfind(prefix, 0) == 0;
  if (!ready) {
    published_.erase(id);
    return;
  }
  if (published_.insert_or_assign(id, data).second) published_order_.push_back(id);
  while (published_order_.size() > kPublishedCap) {
    published_.erase(published_order_.front());
    published_order_.pop_front();
  }
}

std::optional<std::string> RedisResultBackend::published(std::string_view id) {
  std::lock_guard lk(mu_);
  auto it = published_.find(std::string(id));
  if (it == published_.end()) return std::nullopt;
  return it->second;
}

void RedisResultBackend::forget(std::string_view task_id) {
  check_open();
  {
    std::lock_guard lk(mu_);
    published_.erase(std::string(task_id));
  }
  try {
    pool_.run([&](Connection& c) { return c.command({"DEL", meta_key(task_id)}); });
  } catch (...) {
    rethrow_backend(url_, "forget");
  }
}

std::size_t RedisResultBackend::cleanup() {
  check_open();
  return 0;  // Redis expires metas by itself (SETEX)
}

void RedisResultBackend::close() {
  if (closed_.exchange(true)) return;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (listener_.joinable()) listener_.join();
  if (sub_) sub_->close();
  pool_.clear();
}

}  // namespace celeriac::tq::redis
