// Receiving Celery events (what `celery events` and Flower consume): task-*
// and worker-* events from C++ and Python workers, on any broker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "celeriac/tq/json.hpp"

namespace celeriac::tq {

/// Largest event message accepted; bigger ones are counted as malformed.
inline constexpr std::size_t kMaxEventBytes = 1 << 20;

/// Reads events from a broker's event channel (Redis `celeryev` fanout, AMQP
/// `celeryev` topic exchange, the SQLite events table, the memory bus).
/// Only events sent after construction are seen. Not thread-safe: one
/// thread polls.
class EventReceiver {
 public:
  virtual ~EventReceiver() = default;
  /// Events that arrived, waiting up to `timeout` for the first: JSON
  /// objects with at least "type" (task.multi lists are flattened).
  /// Malformed messages are counted and skipped, never thrown.
  virtual std::vector<Json> poll(std::chrono::milliseconds timeout) = 0;
  /// Messages skipped so far because they were not events.
  std::uint64_t malformed() const noexcept { return malformed_; }

 protected:
  /// Decodes one carried body (an event or a list of events) into `out`;
  /// counts it as malformed when it is neither.
  void accept(std::string_view body, std::vector<Json>& out);
  /// Same for a body already parsed.
  void accept_json(Json body, std::vector<Json>& out);

 private:
  std::atomic<std::uint64_t> malformed_{0};
};

/// An event receiver for `broker_url` (redis://, amqp://, sqlite://,
/// memory://). Throws ConfigError for a scheme without events.
std::unique_ptr<EventReceiver> make_event_receiver(std::string_view broker_url);

/// Parses a body as events: an object with a string "type", or a list of
/// them. Throws MessageError naming what is wrong.
std::vector<Json> decode_events(std::string_view body);
/// Same for a parsed body.
std::vector<Json> decode_events_json(Json body);

}  // namespace celeriac::tq
