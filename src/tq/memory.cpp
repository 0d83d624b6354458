// memory:// broker and result backend: in-process, shared by every instance
// made from the same URL in this process.
#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <unordered_map>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::detail {

std::chrono::seconds expires_param(const Url& url);

namespace {

int step_index(int priority) {
  return priority_step(priority) / 3;
}

struct Item {
  std::string envelope;
  bool redelivered = false;
};

struct Reserved {
  Item item;
  std::string queue;
  int step;
  std::uint64_t owner;
  std::chrono::steady_clock::time_point at;
};

struct QueueStore {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::array<std::deque<Item>, 4>, std::less<>> queues;
  std::unordered_map<std::uint64_t, Reserved> reserved;
  std::deque<DeadLetter> dead;
  std::uint64_t next_tag = 1;
  std::uint64_t next_owner = 1;
  std::size_t rr = 0;
};

template <class T>
std::shared_ptr<T> shared_for(const std::string& key) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<T>> map;
  std::lock_guard lock(mu);
  auto& w = map[key];
  auto s = w.lock();
  if (!s) {
    s = std::make_shared<T>();
    w = s;
  }
  return s;
}

std::string store_key(const Url& url) {
  return url.host + "/" + url.path;
}

class MemoryBroker final : public Broker {
 public:
  explicit MemoryBroker(const Url& url)
      : url_(url.redacted()), s_(shared_for<QueueStore>(store_key(url))) {
    std::lock_guard lock(s_->mu);
    owner_ = s_->next_owner++;
  }
  ~MemoryBroker() override { close(); }

  std::string url() const override { return url_; }

  void publish(std::string_view queue, int priority, std::string_view envelope) override {
    check();
    {
      std::lock_guard lock(s_->mu);
      auto it = s_->queues.find(queue);
      if (it == s_->queues.end())
        it = s_->queues.emplace(std::string(queue), std::array<std::deque<Item>, 4>{}).first;
      it->second[step_index(priority)].push_back(Item{std::string(envelope), false});
    }
    s_->cv.notify_all();
  }

  void publish_many(std::span<const Outgoing> messages) override {
    check();
    {
      std::lock_guard lock(s_->mu);
      for (const auto& m : messages) {
        auto it = s_->queues.find(m.queue);
        if (it == s_->queues.end())
          it = s_->queues.emplace(m.queue, std::array<std::deque<Item>, 4>{}).first;
        it->second[step_index(m.priority)].push_back(Item{m.envelope, false});
      }
    }
    s_->cv.notify_all();
  }

  std::vector<Delivery> reserve(std::span<const std::string> queues, std::size_t max,
                                std::chrono::milliseconds timeout) override {
    check();
    std::vector<Delivery> out;
    if (queues.empty() || max == 0) return out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock lock(s_->mu);
    for (;;) {
      while (out.size() < max && take_one(queues, out)) {
      }
      if (!out.empty() || closed_) return out;
      if (s_->cv.wait_until(lock, deadline) == std::cv_status::timeout) {
        while (out.size() < max && take_one(queues, out)) {
        }
        return out;
      }
    }
  }

  void ack(const Delivery& d) override {
    std::lock_guard lock(s_->mu);
    s_->reserved.erase(tag_of(d));
  }

  void ack_many(std::span<const Delivery> ds) override {
    std::lock_guard lock(s_->mu);
    for (const auto& d : ds) s_->reserved.erase(tag_of(d));
  }

  void requeue(const Delivery& d) override {
    {
      std::lock_guard lock(s_->mu);
      auto it = s_->reserved.find(tag_of(d));
      if (it == s_->reserved.end()) return;
      put_back(it->second);
      s_->reserved.erase(it);
    }
    s_->cv.notify_all();
  }

  void dead_letter(const Delivery& d, std::string_view reason) override {
    std::lock_guard lock(s_->mu);
    s_->reserved.erase(tag_of(d));
    s_->dead.push_back(DeadLetter{d.envelope, d.queue, std::string(reason), unix_now()});
    while (s_->dead.size() > 10000) s_->dead.pop_front();
  }

  std::vector<DeadLetter> dead_letters(std::size_t limit) override {
    std::lock_guard lock(s_->mu);
    std::size_t n = std::min(limit, s_->dead.size());
    return {s_->dead.end() - static_cast<std::ptrdiff_t>(n), s_->dead.end()};
  }

  std::size_t restore_unacked() override {
    std::size_t n = 0;
    {
      std::lock_guard lock(s_->mu);
      for (auto it = s_->reserved.begin(); it != s_->reserved.end();) {
        if (it->second.owner == owner_) {
          put_back(it->second);
          it = s_->reserved.erase(it);
          ++n;
        } else {
          ++it;
        }
      }
    }
    s_->cv.notify_all();
    return n;
  }

  std::size_t renew_reservations() override {
    std::size_t n = 0;
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(s_->mu);
    for (auto& [tag, r] : s_->reserved)
      if (r.owner == owner_) {
        r.at = now;
        ++n;
      }
    return n;
  }

  std::size_t restore_stale(std::chrono::seconds visibility_timeout) override {
    std::size_t n = 0;
    auto limit = std::chrono::steady_clock::now() - visibility_timeout;
    {
      std::lock_guard lock(s_->mu);
      for (auto it = s_->reserved.begin(); it != s_->reserved.end();) {
        if (it->second.at <= limit) {
          put_back(it->second);
          it = s_->reserved.erase(it);
          ++n;
        } else {
          ++it;
        }
      }
    }
    s_->cv.notify_all();
    return n;
  }

  std::size_t purge(std::string_view queue) override {
    std::lock_guard lock(s_->mu);
    auto it = s_->queues.find(queue);
    if (it == s_->queues.end()) return 0;
    std::size_t n = 0;
    for (auto& q : it->second) {
      n += q.size();
      q.clear();
    }
    return n;
  }

  std::size_t queue_length(std::string_view queue) override {
    std::lock_guard lock(s_->mu);
    auto it = s_->queues.find(queue);
    if (it == s_->queues.end()) return 0;
    std::size_t n = 0;
    for (auto& q : it->second) n += q.size();
    return n;
  }

  void close() override {
    {
      std::lock_guard lock(s_->mu);
      if (closed_) return;
      closed_ = true;
    }
    restore_unacked();
    s_->cv.notify_all();
  }

 private:
  void check() const {
    if (closed_) throw BrokerError("broker '" + url_ + "' is closed");
  }

  static std::uint64_t tag_of(const Delivery& d) {
    try {
      return std::stoull(d.tag);
    } catch (...) {
      return 0;
    }
  }

  // Caller holds the lock.
  void put_back(Reserved& r) {
    r.item.redelivered = true;
    r.item.envelope = mark_redelivered_fast(r.item.envelope);
    s_->queues[r.queue][static_cast<std::size_t>(r.step)].push_front(std::move(r.item));
  }

  static std::string mark_redelivered_fast(const std::string& env);

  // Caller holds the lock. Takes the next message by priority step, then
  // round-robin over queues.
  bool take_one(std::span<const std::string> queues, std::vector<Delivery>& out) {
    for (int step = 0; step < 4; ++step) {
      for (std::size_t k = 0; k < queues.size(); ++k) {
        const std::string& qn = queues[(s_->rr + k) % queues.size()];
        auto it = s_->queues.find(qn);
        if (it == s_->queues.end()) continue;
        auto& dq = it->second[static_cast<std::size_t>(step)];
        if (dq.empty()) continue;
        Item item = std::move(dq.front());
        dq.pop_front();
        ++s_->rr;
        std::uint64_t tag = s_->next_tag++;
        out.push_back(Delivery{item.envelope, qn, step * 3, std::to_string(tag), item.redelivered});
        s_->reserved.emplace(
            tag, Reserved{std::move(item), qn, step, owner_, std::chrono::steady_clock::now()});
        return true;
      }
    }
    return false;
  }

  std::string url_;
  std::shared_ptr<QueueStore> s_;
  std::uint64_t owner_ = 0;
  std::atomic<bool> closed_{false};
};

}  // namespace
}  // namespace celeriac::tq::detail

#include "celeriac/tq/message.hpp"

namespace celeriac::tq::detail {
namespace {

std::string MemoryBroker::mark_redelivered_fast(const std::string& env) {
  return mark_redelivered(env);
}

struct ResultStore {
  std::mutex mu;
  std::condition_variable cv;
  struct Entry {
    ResultMeta meta;
    std::chrono::steady_clock::time_point expires_at;
    bool expires = false;
  };
  std::unordered_map<std::string, Entry> metas;
  std::uint64_t version = 0;
  // Chords (Celery's .s size and .j parts) and saved groups, under mu.
  struct Chord {
    std::optional<std::size_t> size;
    std::map<std::pair<double, std::string>, Json> parts;  // (group_index, member text) -> part
  };
  std::unordered_map<std::string, Chord> chords;
  std::unordered_map<std::string, std::vector<std::string>> groups;
};

class MemoryBackend final : public ResultBackend {
 public:
  MemoryBackend(const Url& url, std::chrono::seconds expires)
      : url_(url.redacted()), expires_(expires), s_(shared_for<ResultStore>(store_key(url))) {}

  std::string url() const override { return url_; }

  bool store(const ResultMeta& meta) override {
    check();
    {
      std::lock_guard lock(s_->mu);
      auto it = s_->metas.find(meta.task_id);
      if (it != s_->metas.end() && !expired(it->second) && it->second.meta.status == State::Success)
        return false;
      ResultStore::Entry e{meta, std::chrono::steady_clock::now() + expires_, expires_.count() > 0};
      s_->metas.insert_or_assign(meta.task_id, std::move(e));
      ++s_->version;
    }
    s_->cv.notify_all();
    return true;
  }

  std::optional<ResultMeta> get(std::string_view task_id) override {
    check();
    std::lock_guard lock(s_->mu);
    auto it = s_->metas.find(std::string(task_id));
    if (it == s_->metas.end()) return std::nullopt;
    if (expired(it->second)) {
      s_->metas.erase(it);
      return std::nullopt;
    }
    return it->second.meta;
  }

  bool wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(s_->mu);
    bool changed =
        s_->cv.wait_for(lock, timeout, [&] { return s_->version != *cursor || closed_; });
    *cursor = s_->version;
    return changed;
  }

  void forget(std::string_view task_id) override {
    std::lock_guard lock(s_->mu);
    s_->metas.erase(std::string(task_id));
  }

  std::size_t cleanup() override {
    std::lock_guard lock(s_->mu);
    std::size_t n = 0;
    for (auto it = s_->metas.begin(); it != s_->metas.end();) {
      if (expired(it->second)) {
        it = s_->metas.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

  std::chrono::seconds expires() const override { return expires_; }

  void set_chord_size(std::string_view group_id, std::size_t size) override {
    check();
    std::lock_guard lock(s_->mu);
    s_->chords[std::string(group_id)].size = size;
  }

  // The count and the completion check happen under one lock: exactly one
  // part completes the chord.
  std::optional<Json> add_chord_part(const ChordPart& part) override {
    check();
    Json member = Json::array({1, part.task_id, std::string(to_string(part.state)), part.result});
    double score = part.group_index ? static_cast<double>(*part.group_index)
                                    : std::numeric_limits<double>::infinity();
    std::lock_guard lock(s_->mu);
    auto& chord = s_->chords[part.group_id];
    chord.parts.emplace(std::make_pair(score, dumps(member)), member);
    if (!chord.size || chord.parts.size() != *chord.size) return std::nullopt;
    Json all = Json::array();
    for (auto& [key, p] : chord.parts) all.push_back(std::move(p));
    s_->chords.erase(part.group_id);
    return all;
  }

  void save_group(std::string_view group_id, const std::vector<std::string>& task_ids) override {
    check();
    std::lock_guard lock(s_->mu);
    s_->groups[std::string(group_id)] = task_ids;
  }

  std::optional<std::vector<std::string>> restore_group(std::string_view group_id) override {
    check();
    std::lock_guard lock(s_->mu);
    auto it = s_->groups.find(std::string(group_id));
    if (it == s_->groups.end()) return std::nullopt;
    return it->second;
  }

  void forget_group(std::string_view group_id) override {
    std::lock_guard lock(s_->mu);
    s_->groups.erase(std::string(group_id));
  }

  void close() override {
    {
      std::lock_guard lock(s_->mu);
      closed_ = true;
    }
    s_->cv.notify_all();
  }

 private:
  void check() const {
    if (closed_) throw BackendError("result backend '" + url_ + "' is closed");
  }
  static bool expired(const ResultStore::Entry& e) {
    return e.expires && std::chrono::steady_clock::now() >= e.expires_at;
  }

  std::string url_;
  std::chrono::seconds expires_;
  std::shared_ptr<ResultStore> s_;
  std::atomic<bool> closed_{false};
};

}  // namespace

std::unique_ptr<Broker> make_memory_broker(const Url& url) {
  return std::make_unique<MemoryBroker>(url);
}
std::unique_ptr<ResultBackend> make_memory_backend(const Url& url) {
  return std::make_unique<MemoryBackend>(url, expires_param(url));
}

}  // namespace celeriac::tq::detail
