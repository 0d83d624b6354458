// JSON as Python's json module writes and reads it: the task queue's wire
// format. nlohmann::json is the value type for task arguments and results.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace celeriac::tq {

/// The dynamic value type of task arguments and results.
using Json = nlohmann::json;
/// A JSON object that keeps insertion order (envelopes, metas).
using OrderedJson = nlohmann::ordered_json;

/// Parses JSON text like Python's json.loads: also accepts the bare tokens
/// NaN, Infinity and -Infinity that json.dumps emits for non-finite floats.
/// Throws MessageError (saying where) on invalid JSON.
Json loads(std::string_view text);
/// As loads(), keeping object key order.
OrderedJson loads_ordered(std::string_view text);

/// Serializes like Python's json.dumps defaults: ", " and ": " separators,
/// non-ASCII escaped as \uXXXX (surrogate pairs above U+FFFF), NaN/Infinity
/// for non-finite floats. Invalid UTF-8 is written as U+FFFD.
std::string dumps(const Json& value);
std::string dumps(const OrderedJson& value);
/// Appends the dumps() text of `value` to `out`.
void dumps_to(std::string& out, const Json& value);
void dumps_to(std::string& out, const OrderedJson& value);
/// Appends `s` as a quoted JSON string, escaped as dumps() does.
void dump_string(std::string& out, std::string_view s);

/// Standard base64 with '=' padding (RFC 4648), as kombu encodes bodies.
std::string base64_encode(std::string_view bytes);
/// Decodes standard base64 (padding optional, whitespace ignored); throws
/// MessageError on any other character.
std::string base64_decode(std::string_view text);

}  // namespace celeriac::tq
