#include "celeriac/tq/amqp/detail/codec.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq::amqp::detail {

namespace {

std::string str(amqp_bytes_t b) {
  return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string();
}

OrderedJson field_to_json(const amqp_field_value_t& v);

OrderedJson array_to_json(const amqp_array_t& a) {
  OrderedJson out = OrderedJson::array();
  for (int i = 0; i < a.num_entries; ++i) out.push_back(field_to_json(a.entries[i]));
  return out;
}

OrderedJson field_to_json(const amqp_field_value_t& v) {
  switch (v.kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
      return OrderedJson(v.value.boolean != 0);
    case AMQP_FIELD_KIND_I8:
      return OrderedJson(v.value.i8);
    case AMQP_FIELD_KIND_U8:
      return OrderedJson(v.value.u8);
    case AMQP_FIELD_KIND_I16:
      return OrderedJson(v.value.i16);
    case AMQP_FIELD_KIND_U16:
      return OrderedJson(v.value.u16);
    case AMQP_FIELD_KIND_I32:
      return OrderedJson(v.value.i32);
    case AMQP_FIELD_KIND_U32:
      return OrderedJson(v.value.u32);
    case AMQP_FIELD_KIND_I64:
      return OrderedJson(v.value.i64);
    case AMQP_FIELD_KIND_U64:
      return OrderedJson(v.value.u64);
    case AMQP_FIELD_KIND_TIMESTAMP:
      return OrderedJson(v.value.u64);
    case AMQP_FIELD_KIND_F32:
      return OrderedJson(static_cast<double>(v.value.f32));
    case AMQP_FIELD_KIND_F64:
      return OrderedJson(v.value.f64);
    case AMQP_FIELD_KIND_DECIMAL: {
      double d = v.value.decimal.value;
      for (int i = 0; i < v.value.decimal.decimals; ++i) d /= 10;
      return OrderedJson(d);
    }
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      return OrderedJson(str(v.value.bytes));
    case AMQP_FIELD_KIND_ARRAY:
      return array_to_json(v.value.array);
    case AMQP_FIELD_KIND_TABLE:
      return table_to_json(v.value.table);
    case AMQP_FIELD_KIND_VOID:
    default:
      return OrderedJson();
  }
}

const OrderedJson* find(const OrderedJson& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string string_or_empty(const OrderedJson* v) {
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

}  // namespace

amqp_bytes_t TableBuilder::bytes(std::string_view s) {
  strings_.emplace_back(s);
  return amqp_bytes_t{strings_.back().size(), strings_.back().data()};
}

amqp_field_value_t TableBuilder::value(const OrderedJson& v) {
  amqp_field_value_t f{};
  if (v.is_string()) {
    f.kind = AMQP_FIELD_KIND_UTF8;
    f.value.bytes = bytes(v.get_ref<const std::string&>());
  } else if (v.is_boolean()) {
    f.kind = AMQP_FIELD_KIND_BOOLEAN;
    f.value.boolean = v.get<bool>();
  } else if (v.is_number_unsigned() &&
             v.get<std::uint64_t>() >
                 static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    f.kind = AMQP_FIELD_KIND_U64;
    f.value.u64 = v.get<std::uint64_t>();
  } else if (v.is_number_integer()) {
    f.kind = AMQP_FIELD_KIND_I64;
    f.value.i64 = v.get<std::int64_t>();
  } else if (v.is_number_float()) {
    f.kind = AMQP_FIELD_KIND_F64;
    f.value.f64 = v.get<double>();
  } else if (v.is_array()) {
    auto& items = arrays_.emplace_back();
    items.reserve(v.size());
    for (auto& e : v) items.push_back(value(e));
    f.kind = AMQP_FIELD_KIND_ARRAY;
    f.value.array.num_entries = static_cast<int>(items.size());
    f.value.array.entries = items.data();
  } else if (v.is_object()) {
    f.kind = AMQP_FIELD_KIND_TABLE;
    f.value.table = table(v);
  } else {
    f.kind = AMQP_FIELD_KIND_VOID;
  }
  return f;
}

amqp_table_t TableBuilder::table(const OrderedJson& object) {
  auto& entries = entries_.emplace_back();
  if (!object.is_object()) return amqp_table_t{0, nullptr};
  entries.reserve(object.size());
  for (auto it = object.begin(); it != object.end(); ++it) {
    amqp_table_entry_t e{};
    e.key = bytes(it.key());
    e.value = value(it.value());
    entries.push_back(e);
  }
  return amqp_table_t{static_cast<int>(entries.size()), entries.data()};
}

OrderedJson table_to_json(const amqp_table_t& table) {
  OrderedJson out = OrderedJson::object();
  for (int i = 0; i < table.num_entries; ++i)
    out[str(table.entries[i].key)] = field_to_json(table.entries[i].value);
  return out;
}

int to_amqp_priority(int redis_priority) noexcept {
  return 9 - std::clamp(redis_priority, 0, 9);
}

int from_amqp_priority(int amqp_priority) noexcept {
  return 9 - std::clamp(amqp_priority, 0, 9);
}

Message envelope_to_message(std::string_view envelope, int amqp_priority) {
  OrderedJson env = loads_ordered(envelope);
  if (!env.is_object()) throw MessageError("envelope is not a JSON object");
  Message m;
  const OrderedJson empty = OrderedJson::object();
  const OrderedJson* props = find(env, "properties");
  if (!props || !props->is_object()) props = &empty;
  const OrderedJson* body = find(env, "body");
  if (!body || !body->is_string()) throw MessageError("envelope has no string 'body'");
  m.body = string_or_empty(find(*props, "body_encoding")) == "base64"
               ? base64_decode(body->get<std::string>())
               : body->get<std::string>();
  m.content_type = string_or_empty(find(env, "content-type"));
  m.content_encoding = string_or_empty(find(env, "content-encoding"));
  if (auto* h = find(env, "headers"); h && h->is_object()) m.headers = *h;
  m.correlation_id = string_or_empty(find(*props, "correlation_id"));
  m.reply_to = string_or_empty(find(*props, "reply_to"));
  m.expiration = string_or_empty(find(*props, "expiration"));
  // As Celery on AMQP: a per-message TTL in milliseconds until
  // headers.expires (0 when already past: dropped unless a consumer takes it
  // at once). Derived from the header, which every client sets the same way.
  if (auto* ex = find(m.headers, "expires"); ex && ex->is_string()) {
    try {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          parse_iso8601(ex->get<std::string>()) - Clock::now());
      m.expiration = std::to_string(std::max<long long>(0, left.count()));
    } catch (const MessageError&) {
      // an unreadable expires is the worker's to report
    }
  }
  if (auto* dm = find(*props, "delivery_mode"); dm && dm->is_number_integer())
    m.delivery_mode = dm->get<int>();
  m.priority = amqp_priority;
  return m;
}

std::string message_to_envelope(const Received& r, std::string_view delivery_tag) {
  const Message& m = r.message;
  OrderedJson env = OrderedJson::object();
  env["body"] = base64_encode(m.body);
  if (!m.content_encoding.empty()) env["content-encoding"] = m.content_encoding;
  if (!m.content_type.empty()) env["content-type"] = m.content_type;
  OrderedJson headers = m.headers;
  // RabbitMQ's dead-lettering bookkeeping (the ETA delay queues) is not part
  // of the task's headers.
  for (const char* k :
       {"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
        "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"})
    headers.erase(k);
  env["headers"] = std::move(headers);
  OrderedJson p = OrderedJson::object();
  if (!m.correlation_id.empty()) p["correlation_id"] = m.correlation_id;
  p["reply_to"] = m.reply_to;
  p["delivery_mode"] = m.delivery_mode;
  OrderedJson di = OrderedJson::object();
  di["exchange"] = r.exchange;
  di["routing_key"] = r.routing_key;
  if (r.redelivered) di["redelivered"] = true;
  p["delivery_info"] = std::move(di);
  p["priority"] = from_amqp_priority(m.priority.value_or(0));
  if (!m.expiration.empty()) p["expiration"] = m.expiration;
  p["body_encoding"] = "base64";
  p["delivery_tag"] = std::string(delivery_tag);
  env["properties"] = std::move(p);
  return dumps(env);
}

}  // namespace celeriac::tq::amqp::detail
