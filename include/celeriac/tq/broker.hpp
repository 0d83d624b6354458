// The broker interface: queues of task envelopes with reserve/ack semantics
// (kombu's virtual transport model), plus the registry that maps URL schemes
// to implementations. memory:// and sqlite:// are built in; redis:// is
// registered by the Redis transport (src/tq/redis) when it is compiled in.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/url.hpp"

namespace celeriac::tq {

/// kombu's priority steps on Redis: priorities 0-2 -> 0, 3-5 -> 3, 6-8 -> 6,
/// 9 -> 9. Lower is consumed first (0 = highest). Out-of-range values clamp.
int priority_step(int priority) noexcept;
/// The Redis list name of `queue` at `priority`: "q", "q\x06\x163", "q\x06\x166", "q\x06\x169".
std::string priority_queue_key(std::string_view queue, int priority);

/// A message taken from a queue and not yet acknowledged.
struct Delivery {
  std::string envelope;      ///< the envelope JSON text as published
  std::string queue;         ///< the (base) queue it came from
  int priority = 0;          ///< its priority step (0, 3, 6, 9)
  std::string tag;           ///< broker receipt for ack/requeue (Redis: the delivery_tag)
  bool redelivered = false;  ///< it was restored after an earlier reservation
};

/// A message to publish.
struct Outgoing {
  std::string queue;     ///< target queue
  int priority = 0;      ///< 0-9, Redis meaning
  std::string envelope;  ///< the envelope JSON text
};

/// A dead-lettered message (see Broker::dead_letter).
struct DeadLetter {
  std::string envelope;  ///< raw text, possibly not even JSON
  std::string queue;     ///< where it was consumed from
  std::string reason;    ///< why it was rejected
  double time = 0;       ///< UNIX time it was dead-lettered
};

/// A queue broker. Implementations are thread-safe: one instance may be used
/// by the producer and all worker threads at once. Every call may throw
/// BrokerError; none blocks longer than its timeout argument (plus I/O).
class Broker {
 public:
  virtual ~Broker() = default;

  /// The URL this broker was made from (password redacted).
  virtual std::string url() const = 0;

  /// Appends `envelope` to `queue` at `priority` (0-9, Redis meaning). Durable
  /// brokers have stored it when this returns.
  virtual void publish(std::string_view queue, int priority, std::string_view envelope) = 0;
  /// Publishes several messages at once (one transaction / pipeline where the
  /// broker can); same meaning as calling publish() for each, in order.
  virtual void publish_many(std::span<const Outgoing> messages);

  /// Takes up to `max` messages, waiting up to `timeout` for the first one.
  /// Honors priority across `queues`: all queues' step-0 messages first, then
  /// step 3, ... (Redis BRPOP order); FIFO within a queue and step; queues of
  /// the same step are served round-robin. Taken messages stay reserved
  /// (Redis: in `unacked`) until ack, requeue or dead_letter. Returns an empty
  /// vector on timeout.
  virtual std::vector<Delivery> reserve(std::span<const std::string> queues, std::size_t max,
                                        std::chrono::milliseconds timeout) = 0;
  /// reserve() of one message.
  std::optional<Delivery> get(std::span<const std::string> queues,
                              std::chrono::milliseconds timeout);

  /// Acknowledges (deletes) a reserved message. Unknown tags are ignored.
  /// Brokers batch acknowledgements (Redis: with the next reserve round trip
  /// or within 2 ms; SQLite: in the next reserve transaction or flush()): the
  /// worker calls ack() per message and never batches itself.
  virtual void ack(const Delivery& d) = 0;
  /// Acknowledges several (one transaction / pipeline where possible).
  virtual void ack_many(std::span<const Delivery> ds);
  /// Puts a reserved message back at the front of its queue (consumed next),
  /// marked redelivered, as kombu's restore does.
  virtual void requeue(const Delivery& d) = 0;
  /// Removes a reserved message from its queue and keeps it, with `reason`, in
  /// the broker's dead-letter store for inspection (never redelivered).
  virtual void dead_letter(const Delivery& d, std::string_view reason) = 0;
  /// The most recent dead letters (oldest first), at most `limit`.
  virtual std::vector<DeadLetter> dead_letters(std::size_t limit = 100) = 0;

  /// Sends batched acknowledgements now. Called by the worker before it
  /// waits without reserving, and at shutdown. Default: nothing is batched.
  virtual void flush() {}
  /// Marks every message reserved through this instance and not yet
  /// acknowledged as reserved now, so that other workers' restore_stale()
  /// leaves it alone while this one lives. Returns how many. Brokers that
  /// renew by themselves (Redis) return 0.
  virtual std::size_t renew_reservations() { return 0; }

  /// Requeues every message reserved through THIS broker instance and not
  /// yet acknowledged (warm shutdown). Returns how many.
  virtual std::size_t restore_unacked() = 0;
  /// Requeues messages reserved by anyone (e.g. a crashed process) longer ago
  /// than `visibility_timeout` (Celery: 1 h). Returns how many.
  virtual std::size_t restore_stale(std::chrono::seconds visibility_timeout) = 0;

  /// Deletes every ready message of `queue` (all priorities); returns how many.
  virtual std::size_t purge(std::string_view queue) = 0;
  /// Ready (not reserved) messages in `queue`, all priorities.
  virtual std::size_t queue_length(std::string_view queue) = 0;

  /// Releases connections; later calls throw BrokerError. Idempotent.
  virtual void close() = 0;

  /// Fleet-wide rate limits: reserves the next start slot of bucket `key`
  /// (one start per `interval`, a token bucket of capacity one shared by all
  /// workers on this broker) and returns how long from now until it (zero:
  /// start now). Atomic per call; Redis runs one script, SQLite one
  /// transaction; this default keeps the bucket in the process (memory://).
  virtual std::chrono::microseconds take_rate_slot(std::string_view key,
                                                   std::chrono::microseconds interval);
  /// Unique tasks: makes `id` the holder of `key` for `ttl` unless another
  /// id holds it; returns that other id, or nullopt when `id` holds it now.
  /// Atomic (Redis: one script; SQLite: a transaction; default: in process).
  virtual std::optional<std::string> claim_unique(std::string_view key, std::string_view id,
                                                  std::chrono::milliseconds ttl);
  /// Ends `id`'s hold of `key` (nothing when another id holds it).
  virtual void release_unique(std::string_view key, std::string_view id);
};

/// Makes a broker for a parsed URL.
using BrokerFactory = std::function<std::unique_ptr<Broker>(const Url&)>;

/// Registers (or replaces) the factory for `scheme` ("redis", "rediss", ...).
void register_broker_scheme(std::string scheme, BrokerFactory factory);
/// Creates a broker from `url`. "" means the embedded default
/// "sqlite:///celeriac.db". Throws ConfigError quoting the URL for a bad URL
/// or an unknown scheme (listing the registered ones).
std::unique_ptr<Broker> make_broker(std::string_view url);
/// Registered broker schemes, sorted.
std::vector<std::string> broker_schemes();

/// kombu's visibility timeout for `url`: its `?visibility_timeout=S` query
/// parameter, else one hour. Throws ConfigError for a value that is not a
/// positive number of seconds.
std::chrono::seconds visibility_timeout_of(const Url& url);

/// The default broker/backend URL when none is named.
inline constexpr std::string_view kDefaultUrl = "sqlite:///celeriac.db";

}  // namespace celeriac::tq
