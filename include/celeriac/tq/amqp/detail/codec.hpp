// Conversions between kombu's JSON envelope (what the tq core encodes and
// decodes, see message.hpp) and an AMQP message (raw JSON body, basic
// properties, protocol-2 headers as a field table), and between JSON and
// AMQP field tables.
#pragma once

#include <amqp.h>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/json.hpp"

namespace celeriac::tq::amqp::detail {

/// Builds amqp_table_t values from JSON; owns their storage, so the tables
/// stay valid while the builder lives.
class TableBuilder {
 public:
  /// The field table of a JSON object (strings -> longstr, integers -> 'l',
  /// floats -> 'd', bools -> 't', null -> 'V', arrays -> 'A', objects -> 'F').
  amqp_table_t table(const OrderedJson& object);

 private:
  amqp_field_value_t value(const OrderedJson& v);
  amqp_bytes_t bytes(std::string_view s);
  std::deque<std::string> strings_;
  std::deque<std::vector<amqp_table_entry_t>> entries_;
  std::deque<std::vector<amqp_field_value_t>> arrays_;
};

/// A field table as JSON (timestamps -> integer seconds, byte arrays and
/// decimals -> strings/numbers).
OrderedJson table_to_json(const amqp_table_t& table);

/// The AMQP message for an envelope: body base64-decoded when the envelope
/// says so, content type/encoding, headers, correlation_id, reply_to,
/// delivery_mode; priority `amqp_priority`. Throws MessageError when the
/// envelope is not a kombu envelope.
Message envelope_to_message(std::string_view envelope, int amqp_priority);

/// The kombu envelope for a received message, as the tq core decodes it:
/// {"body" (base64), "content-encoding", "content-type", "headers",
/// "properties": {..., "delivery_info": {"exchange", "routing_key"},
/// "priority" (Redis meaning), "body_encoding": "base64", "delivery_tag"}}.
/// Missing AMQP properties stay missing, so decode() names them.
std::string message_to_envelope(const Received& r, std::string_view delivery_tag);

/// RabbitMQ priority (higher = more urgent, 0..9) for a Redis-meaning one
/// (0 = most urgent): 9 - p, clamped.
int to_amqp_priority(int redis_priority) noexcept;
/// The inverse: Redis meaning of an AMQP priority (absent = 0 -> 9).
int from_amqp_priority(int amqp_priority) noexcept;

}  // namespace celeriac::tq::amqp::detail
