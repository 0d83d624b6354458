// The task message: Celery protocol version 2, JSON serializer, in kombu's
// envelope (../shared/CELERY-PROTOCOL.md §2-3). Every broker (memory, SQLite,
// Redis) carries exactly these bytes, so Python and C++ peers interoperate.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"

namespace celeriac::tq {

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

/// The default queue name (Celery's task_default_queue).
inline constexpr std::string_view kDefaultQueue = "celery";
/// Largest envelope a worker accepts by default (bytes); bigger ones are
/// dead-lettered ("oversized message").
inline constexpr std::size_t kDefaultMaxMessageSize = 16 * 1024 * 1024;

/// A fresh random UUID4 string ("0f8c...-4...-...").
std::string make_uuid();
/// ISO-8601 UTC with microseconds: "2026-11-25T04:43:30.026214+00:00", or the
/// naive form without offset (`with_offset` false) Celery uses for date_done.
std::string format_iso8601(TimePoint t, bool with_offset = true);
/// Parses ISO-8601 date-times as Python's datetime.fromisoformat does for
/// Celery's eta/expires: optional fraction, "Z" or ±HH:MM offset; naive = UTC.
/// Throws MessageError quoting the text.
TimePoint parse_iso8601(std::string_view text);
/// Seconds since the UNIX epoch of `t` (Python's datetime.timestamp()).
double unix_time(TimePoint t) noexcept;
/// unix_time(Clock::now()): Python's time.time(). The task queue's one wall
/// clock reading for scores, timestamps and expiry.
double unix_now() noexcept;

/// One protocol-2 task message, decoded. Field names follow the wire.
struct TaskMessage {
  // ---- headers (§3.1) ----
  std::string id;                        ///< headers.id (task id); also correlation_id
  std::string task;                      ///< headers.task (registered name)
  std::string lang = "py";               ///< headers.lang (Celery itself sends "py"; informational)
  std::optional<std::string> shadow;     ///< headers.shadow
  std::optional<TimePoint> eta;          ///< headers.eta: do not run before
  std::optional<TimePoint> expires;      ///< headers.expires: REVOKED ("expired") after
  std::optional<std::string> group;      ///< headers.group
  std::optional<long long> group_index;  ///< headers.group_index
  int retries = 0;                       ///< headers.retries
  std::optional<double> time_limit;      ///< headers.timelimit[0] (hard, seconds)
  std::optional<double> soft_time_limit;  ///< headers.timelimit[1] (soft, seconds)
  std::string root_id;                    ///< headers.root_id ("" = same as id when encoding)
  std::optional<std::string> parent_id;   ///< headers.parent_id
  std::string argsrepr;                   ///< headers.argsrepr ("" = computed when encoding)
  std::string kwargsrepr;                 ///< headers.kwargsrepr ("" = computed when encoding)
  std::string origin;                     ///< headers.origin ("" = gen<pid>@<host> when encoding)
  bool ignore_result = false;             ///< headers.ignore_result
  bool redelivered = false;               ///< headers.redelivered (restored message)
  OrderedJson extra_headers = OrderedJson::object();  ///< unknown headers, kept in order

  // ---- body [args, kwargs, embed] (§3.2) ----
  Json args = Json::array();     ///< positional arguments (array)
  Json kwargs = Json::object();  ///< keyword arguments (object)
  Json callbacks;                ///< embed.callbacks (null = none)
  Json errbacks;                 ///< embed.errbacks
  Json chain;                    ///< embed.chain
  Json chord;                    ///< embed.chord

  // ---- properties (§2) ----
  std::string queue{kDefaultQueue};       ///< delivery_info.routing_key (= queue name)
  std::string exchange;                   ///< delivery_info.exchange ("" for tasks)
  int priority = 0;                       ///< properties.priority, 0 (highest) .. 9
  std::string delivery_tag;               ///< fresh UUID4 per publish ("" = made when encoding)
  std::string reply_to;                   ///< properties.reply_to
  int delivery_mode = 2;                  ///< properties.delivery_mode
  std::optional<std::string> expiration;  ///< properties.expiration (AMQP TTL string)
  bool base64_body = true;                ///< properties.body_encoding == "base64"
  OrderedJson extra_properties = OrderedJson::object();  ///< unknown properties, kept

  /// Whether embed carries any canvas work (callbacks, errbacks, a non-empty
  /// chain, a chord) — not supported by this worker yet.
  bool has_canvas() const;
  /// The serialized body `[args, kwargs, embed]` (Python json.dumps style).
  std::string body_json() const;
};

/// Encodes `m` to the exact envelope JSON Celery produces (key order and
/// separators as in celery-samples/task_*.json). Fills defaults on the fly
/// (root_id, argsrepr, kwargsrepr, origin, delivery_tag) without changing m.
std::string encode(const TaskMessage& m);

/// Default DecodeOptions::max_depth: nesting of arrays/objects.
inline constexpr std::size_t kDefaultMaxDepth = 256;
/// Default DecodeOptions::max_args: positional arguments of one task.
inline constexpr std::size_t kDefaultMaxArgs = std::size_t{1} << 20;

/// Limits and switches for decode(). Every limit is checked by a linear scan
/// of the text before anything is built for it, and a message over a limit
/// is rejected with a MessageError naming the limit (the worker
/// dead-letters it).
struct DecodeOptions {
  std::size_t max_size = kDefaultMaxMessageSize;  ///< envelope bytes
  std::size_t max_depth = kDefaultMaxDepth;       ///< nesting depth of the envelope and of the body
  std::size_t max_args = kDefaultMaxArgs;         ///< elements of the body's args array
  /// Longest string in the body (args, kwargs, embed), in bytes as written in
  /// the JSON text (escapes included).
  std::size_t max_string_length = kDefaultMaxMessageSize;
};

/// Decodes and validates an envelope. Throws MessageError with a precise
/// reason (e.g. "body is a 2-element array; protocol 2 needs [args, kwargs,
/// embed]"), carrying the task id/name when they were readable. Unknown
/// headers/properties are kept, not rejected (forward compatibility).
TaskMessage decode(std::string_view envelope, const DecodeOptions& options = {});

/// Reads just headers.id and headers.task from an envelope, best effort
/// (never throws); for logging and dead-lettering undecodable messages.
std::pair<std::optional<std::string>, std::optional<std::string>> peek_id_and_name(
    std::string_view envelope) noexcept;

/// The envelope with headers.redelivered and delivery_info.redelivered set
/// to true (what kombu does when restoring an unacked message). Returns the
/// input unchanged if it is not a JSON object.
std::string mark_redelivered(std::string_view envelope);

}  // namespace celeriac::tq
