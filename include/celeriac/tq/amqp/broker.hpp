// The RabbitMQ broker (amqp://, pyamqp://): kombu's AMQP layout through
// rabbitmq-c, with real broker acknowledgements and publisher confirms.
// See docs/tq-amqp.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::amqp {

/// Transport options, from the URL's query parameters.
struct BrokerOptions {
  /// `max_priority=N`: task queues are declared with x-max-priority N (as
  /// Celery's task_queue_max_priority); absent = no priority queues.
  std::optional<int> max_priority;
  /// `prefetch_count=N`: basic.qos; 0 (default) = the largest reserve() max
  /// asked for (the worker asks concurrency x prefetch multiplier).
  std::uint16_t prefetch_count = 0;
  /// `eta_hold_limit=S` (seconds, default 900): a message whose ETA is further
  /// away is parked in the delay queues instead of being held unacknowledged
  /// (RabbitMQ's consumer_timeout, 30 min by default, would kill the channel).
  std::chrono::seconds eta_hold_limit{900};
  /// `confirm_timeout=S` (seconds, default 30): how long a publish waits for
  /// the broker's confirm before it is reported as unconfirmed.
  std::chrono::seconds confirm_timeout{30};
  /// `publish_window=N` (default 256): publish() writes the message and
  /// returns without waiting for its publisher confirm, keeping at most N
  /// unconfirmed (confirmed by later publishes, flush(), or a thread after
  /// ~2 ms idle). A refusal (basic.nack, basic.return) is reported by the
  /// next publish() or flush() as BrokerError naming the task id; after a
  /// lost connection the unconfirmed ones are published again (at least
  /// once). 0 = every publish waits for its own confirm.
  std::size_t publish_window = 256;
  /// `connect_timeout=S` (seconds, default 4).
  std::chrono::seconds connect_timeout{4};

  /// Reads the options; throws ConfigError naming a bad value.
  static BrokerOptions from_url(const Url& url);
};

/// The dead-letter queue of this transport.
inline constexpr const char* kDeadLetterQueue = "celeriac.dead_letter";

/// Broker on RabbitMQ. Two connections, opened on first use: one publishes
/// (confirm mode, see BrokerOptions::publish_window), one consumes. Thread-safe.
class AmqpBroker final : public Broker {
 public:
  /// A broker for an amqp:// or pyamqp:// URL (options from its query).
  explicit AmqpBroker(const Url& url);
  ~AmqpBroker() override;

  std::string url() const override;
  /// Returns once the message is written; its confirm is collected later
  /// (BrokerOptions::publish_window; 0: returns after the confirm).
  void publish(std::string_view queue, int priority, std::string_view envelope) override;
  /// All messages are published, then their confirms awaited together
  /// (earlier publish() calls' too); returns when all are confirmed.
  void publish_many(std::span<const Outgoing> messages) override;
  /// Waits until the broker confirmed every publish so far; BrokerError
  /// names any task it refused.
  void flush() override;
  /// Priority is RabbitMQ's within a queue (needs max_priority); across
  /// queues, deliveries come in the broker's order.
  std::vector<Delivery> reserve(std::span<const std::string> queues, std::size_t max,
                                std::chrono::milliseconds timeout) override;
  void ack(const Delivery& d) override;
  void ack_many(std::span<const Delivery> ds) override;
  /// basic.reject(requeue=true).
  void requeue(const Delivery& d) override;
  /// Publishes the message to celeriac.dead_letter with headers
  /// x-celeriac-reason/-queue/-time (confirmed), then acks it.
  void dead_letter(const Delivery& d, std::string_view reason) override;
  std::vector<DeadLetter> dead_letters(std::size_t limit = 100) override;
  /// Closes the consuming connection: RabbitMQ requeues all its unacked
  /// deliveries at once. Returns how many had been handed out.
  std::size_t restore_unacked() override;
  /// Always 0: RabbitMQ requeues a dead consumer's deliveries itself.
  std::size_t restore_stale(std::chrono::seconds visibility_timeout) override;
  std::size_t purge(std::string_view queue) override;
  std::size_t queue_length(std::string_view queue) override;
  void close() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace celeriac::tq::amqp
