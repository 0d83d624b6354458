// The Redis result backend with Celery's keys (CELERY-PROTOCOL.md §6).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "celeriac/tq/redis/client.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::redis {

/// "celery-task-meta-" + id: the key (and pub/sub channel) of a task's meta.
std::string meta_key(std::string_view task_id);

/// Celery-compatible Redis result backend: store = GET (never overwrite a
/// SUCCESS) + SETEX `expires` + PUBLISH of the identical JSON, atomically in
/// one Lua script; get = GET; forget = DEL. Waiting uses one shared
/// subscriber connection (PSUBSCRIBE celery-task-meta-*) started on first
/// use, plus a GET to catch results stored before the subscription.
/// Thread-safe. URL query: `expires=<seconds>` (0 = never; default 86400).
class RedisResultBackend final : public tq::ResultBackend {
 public:
  /// A backend for a redis:// or rediss:// URL (`expires` from its query).
  explicit RedisResultBackend(const tq::Url& url);
  ~RedisResultBackend() override;

  std::string url() const override;
  bool store(const ResultMeta& meta) override;
  std::vector<bool> store_many(std::span<const ResultMeta> metas) override;
  std::optional<ResultMeta> get(std::string_view task_id) override;
  std::vector<std::optional<ResultMeta>> get_many(std::span<const std::string> task_ids) override;
  std::optional<ResultMeta> wait(std::string_view task_id,
                                 std::chrono::milliseconds timeout) override;
  bool wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) override;
  void forget(std::string_view task_id) override;
  std::size_t cleanup() override;
  std::chrono::seconds expires() const override { return expires_; }
  void close() override;
  // chords with Celery's keys (result_backend_chord.cpp)
  void set_chord_size(std::string_view group_id, std::size_t size) override;
  std::optional<Json> add_chord_part(const ChordPart& part) override;
  void save_group(std::string_view group_id, const std::vector<std::string>& task_ids) override;
  std::optional<std::vector<std::string>> restore_group(std::string_view group_id) override;
  void forget_group(std::string_view group_id) override;

 private:
  void check_open() const;
  void ensure_listener();
  void listen();
  void remember_published(const std::string& id, const std::string& data);
  std::optional<std::string> published(std::string_view id);
  tq::Url url_;
  std::chrono::seconds expires_{86400};
  ConnectionPool pool_;
  std::atomic<bool> closed_{false};
  // listener state
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t events_ = 0;                      // messages seen + reconnects
  std::uint64_t reconnects_ = 0;                  // subscriber reconnections
  std::map<std::string, int> waiting_;            // task id -> number of waiters
  std::map<std::string, std::string> delivered_;  // task id -> latest published meta
  // Ready metas seen on the subscription (the exact stored text), so get()
  // and get_many() of a just-finished task need no round trip. Bounded;
  // cleared when the subscriber reconnects (messages may have been missed).
  std::unordered_map<std::string, std::string> published_;
  std::deque<std::string> published_order_;
  std::optional<Subscriber> sub_;
  std::thread listener_;
  bool stop_ = false;
  std::string listener_error_;
};

}  // namespace celeriac::tq::redis
