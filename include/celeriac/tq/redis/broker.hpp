// The Redis broker with kombu's exact key layout (CELERY-PROTOCOL.md §1, §4,
// §5), so Python Celery and celeriac workers and clients share queues.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/redis/client.hpp"

namespace celeriac::tq::redis {

namespace detail {
class Publisher;
}  // namespace detail

/// Key of the sorted set where the broker parks messages whose ETA is still
/// far away (score = ETA as UNIX time, member = JSON [list_key, envelope]).
/// Python workers never read it; a due message is RPUSHed back to its list.
inline constexpr std::string_view kEtaKey = "celeriac.eta";
/// Key of the dead-letter list (LPUSH of JSON {"envelope", "queue",
/// "reason", "time"}; newest first; trimmed to kDeadLetterCap entries).
inline constexpr std::string_view kDeadLetterKey = "celeriac.dead";
/// Largest number of dead letters kept.
inline constexpr long kDeadLetterCap = 10000;

/// Options of a RedisBroker (also read from the URL's query: e.g.
/// `redis://h:p/0?visibility_timeout=3600&eta_parking=0`).
struct BrokerOptions {
  /// kombu's visibility_timeout: reservations older than this may be
  /// restored by any worker's restore_stale().
  std::chrono::seconds visibility_timeout{3600};
  /// Park messages whose ETA is more than eta_park_threshold away in
  /// `celeriac.eta` instead of handing them to the worker (which would hold
  /// them in memory and, past the visibility timeout, see them redelivered).
  bool eta_parking = true;
  /// Only ETAs further away than this are parked.
  std::chrono::milliseconds eta_park_threshold{1000};
  /// How often the held (reserved, unacknowledged) messages' unacked_index
  /// scores are refreshed so a live worker's long tasks are never taken for
  /// a crashed worker's (0 = visibility_timeout / 4, at least 1 s).
  std::chrono::milliseconds refresh_interval{0};
  /// Acks are pipelined across messages: ack() removes the message from
  /// this instance's held set at once, and Redis learns it (ZREM/HDEL) in
  /// the same round trip as the next reserve(), or after at most ack_delay,
  /// or at flush_acks()/restore_unacked()/close(). A crash inside that
  /// window redelivers the message after the visibility timeout
  /// (at-least-once, as with kombu). 0 = one round trip per ack.
  std::chrono::microseconds ack_delay{2000};
  /// Single publishes are pipelined: publish() writes the message and
  /// returns without waiting for Redis's reply, keeping at most
  /// publish_window unconfirmed (their replies are read by later publishes
  /// or flush()). A refused one (OOM, READONLY) is reported by the next
  /// publish() or flush() as BrokerError naming its task id; after a lost
  /// connection the unconfirmed ones are written again (at least once).
  /// 0 = wait for each reply (one round trip per publish). URL: publish_window.
  std::size_t publish_window = 256;
  /// Connection timeouts.
  ConnectOptions connect;
  /// Give up reconnecting (and throw BrokerError) after this long.
  std::chrono::milliseconds reconnect_timeout{10000};
};

/// kombu-compatible Redis broker. Thread-safe (a small connection pool).
class RedisBroker final : public tq::Broker {
 public:
  /// Connects lazily; `url` is a parsed tq URL with scheme "redis".
  /// A broker for a redis:// or rediss:// URL, options from its query.
  explicit RedisBroker(const tq::Url& url);
  /// Same, starting from `options` (the URL's query overrides them).
  RedisBroker(const tq::Url& url, BrokerOptions options);
  ~RedisBroker() override;

  std::string url() const override;
  void publish(std::string_view queue, int priority, std::string_view envelope) override;
  void publish_many(std::span<const Outgoing> messages) override;
  std::vector<Delivery> reserve(std::span<const std::string> queues, std::size_t max,
                                std::chrono::milliseconds timeout) override;
  void ack(const Delivery& d) override;
  void ack_many(std::span<const Delivery> ds) override;
  void requeue(const Delivery& d) override;
  void dead_letter(const Delivery& d, std::string_view reason) override;
  std::vector<DeadLetter> dead_letters(std::size_t limit) override;
  std::size_t restore_unacked() override;
  std::size_t restore_stale(std::chrono::seconds visibility_timeout) override;
  std::size_t purge(std::string_view queue) override;
  std::size_t queue_length(std::string_view queue) override;
  /// Sends the batched acks and waits until every pipelined publish is
  /// confirmed (BrokerError names any Redis refused).
  void flush() override;
  void close() override;
  std::chrono::microseconds take_rate_slot(std::string_view key,
                                           std::chrono::microseconds interval) override;
  std::optional<std::string> claim_unique(std::string_view key, std::string_view id,
                                          std::chrono::milliseconds ttl) override;
  void release_unique(std::string_view key, std::string_view id) override;

  /// Moves parked ETA messages that are due back to the front of their
  /// lists; returns how many. reserve() calls it (throttled) by itself.
  std::size_t move_due_eta();
  /// Number of messages parked in `celeriac.eta`.
  std::size_t parked_count();
  /// Refreshes the unacked_index score of every message this instance holds
  /// (the background refresher calls it); returns how many were refreshed.
  std::size_t refresh_held();
  /// Messages this instance reserved and has not acked/requeued yet.
  std::size_t held_count() const;
  /// Sends the acks not yet sent (see BrokerOptions::ack_delay) and waits
  /// for Redis to confirm them; on a connection error they stay pending and
  /// BrokerError is thrown.
  void flush_acks();
  /// Acks recorded and not yet confirmed by Redis.
  std::size_t pending_ack_count() const;
  /// The options in effect.
  const BrokerOptions& options() const { return opts_; }

 private:
  struct Held {
    std::string list_key;  // where a requeue puts it back
    std::string envelope;
  };
  struct ConsumeKeys {
    std::vector<std::string> keys;   // list keys in BRPOP order
    std::vector<std::string> bases;  // base queue of each key
    std::vector<int> steps;          // priority step of each key
  };
  // A pop whose reply was lost to a connection error: it may have run (its
  // messages are then in unacked under our receipt) or not (a message BRPOP
  // already took is then only here).
  struct UnsurePop {
    std::string token;
    int pre_index = 0;
    std::string pre_env;
  };
  void declare(std::string_view queue, Pipeline& p);
  void publish_once(Pipeline p, std::size_t count);
  ConsumeKeys consume_keys(std::span<const std::string> queues);
  std::vector<Delivery> pop(Connection& c, const ConsumeKeys& k, int pre_index,
                            const std::string& pre_env, std::size_t max);
  std::vector<Delivery> recover_unsure(Connection& c, const ConsumeKeys& k, std::size_t max);
  std::vector<std::string> take_pending_acks();
  void return_pending_acks(std::vector<std::string> tags);
  static void add_ack_commands(Pipeline& p, const std::vector<std::string>& tags);
  void flush_acks_on(Connection& c);
  void start_acker();
  std::optional<std::chrono::steady_clock::time_point> maybe_move_due(Connection& c);
  std::pair<std::size_t, double> move_due_on(Connection& c);
  std::vector<Delivery> park_future(Connection& c, std::vector<Delivery> got);
  void forget_held(const std::string& tag);
  void start_refresher();
  void check_open() const;

  tq::Url url_;
  BrokerOptions opts_;
  ConnectionPool pool_;
  mutable std::mutex mu_;
  std::set<std::string> declared_;
  std::unordered_map<std::string, Held> held_;
  std::size_t rotation_ = 0;
  std::chrono::steady_clock::time_point next_eta_check_{};
  std::vector<std::string> pending_acks_;
  std::optional<UnsurePop> unsure_;
  std::string receipt_key_;  // celeriac.receipt.<uuid>: the last pop's token and tags
  std::thread acker_;
  std::condition_variable acker_cv_;
  bool acker_stop_ = false;
  std::atomic<bool> closed_{false};
  std::thread refresher_;
  std::condition_variable refresher_cv_;
  bool refresher_stop_ = false;
  std::unique_ptr<detail::Publisher> publisher_;  // null when publish_window == 0
};

/// Parses the tq URL's Redis part (host, port, db, password) for the client.
Url to_redis_url(const tq::Url& url);

}  // namespace celeriac::tq::redis
