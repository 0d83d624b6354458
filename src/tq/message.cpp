#include "celeriac/tq/message.hpp"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>

namespace celeriac::tq {
namespace {

thread_local std::mt19937_64 tl_rng{[] {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd()};
  return std::mt19937_64(seq);
}()};

const std::string& default_origin() {
  static const std::string origin = [] {
    std::array<char, 256> host{};
    if (gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "localhost");
    return "gen" + std::to_string(getpid()) + "@" + host.data();
  }();
  return origin;
}

// Python-repr-like text for argsrepr/kwargsrepr (informational only).
void pyrepr(std::string& out, const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      out += "None";
      break;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "True" : "False";
      break;
    case Json::value_t::string: {
      out.push_back('\'');
      for (char c : v.get_ref<const std::string&>()) {
        if (c == '\'' || c == '\\') out.push_back('\\');
        if (c == '\n') {
          out += "\\n";
          continue;
        }
        out.push_back(c);
      }
      out.push_back('\'');
      break;
    }
    case Json::value_t::array: {
      out.push_back('[');
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        pyrepr(out, v[i]);
      }
      out.push_back(']');
      break;
    }
    case Json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        pyrepr(out, Json(it.key()));
        out += ": ";
        pyrepr(out, it.value());
      }
      out.push_back('}');
      break;
    }
    default:
      out += dumps(v);
  }
}

std::string args_repr(const Json& args) {
  std::string out = "(";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i) out += ", ";
    pyrepr(out, args[i]);
  }
  if (args.size() == 1) out.push_back(',');
  out.push_back(')');
  return out;
}

void put_key(std::string& out, std::string_view key) {
  dump_string(out, key);
  out += ": ";
}

void put_opt_string(std::string& out, const std::optional<std::string>& s) {
  if (s) {
    dump_string(out, *s);
  } else {
    out += "null";
  }
}

void put_opt_time(std::string& out, const std::optional<TimePoint>& t) {
  if (t) {
    dump_string(out, format_iso8601(*t, true));
  } else {
    out += "null";
  }
}

void put_opt_double(std::string& out, const std::optional<double>& d) {
  if (d) {
    dumps_to(out, Json(*d));
  } else {
    out += "null";
  }
}

// Extra keys of an ordered object, each preceded by ", ".
void put_extras(std::string& out, const OrderedJson& extras) {
  if (!extras.is_object()) return;
  for (auto it = extras.begin(); it != extras.end(); ++it) {
    out += ", ";
    put_key(out, it.key());
    dumps_to(out, it.value());
  }
}

int parse_int(std::string_view s, std::size_t pos, std::size_t len, std::string_view whole) {
  int v = 0;
  if (pos + len > s.size())
    throw MessageError("invalid ISO-8601 date-time '" + std::string(whole) + "'");
  for (std::size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9')
      throw MessageError("invalid ISO-8601 date-time '" + std::string(whole) + "'");
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::string make_uuid() {
  std::uint64_t a = tl_rng();
  std::uint64_t b = tl_rng();
  a = (a & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
  b = (b & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xFFFF), static_cast<unsigned>(a & 0xFFFF),
                static_cast<unsigned>(b >> 48),
                static_cast<unsigned long long>(b & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string format_iso8601(TimePoint t, bool with_offset) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::int64_t secs = us / 1000000;
  std::int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs -= 1;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld%s", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac), with_offset ? "+00:00" : "");
  return buf;
}

TimePoint parse_iso8601(std::string_view text) {
  std::string_view s = text;
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') ||
      s[13] != ':' || s[16] != ':')
    throw MessageError("invalid ISO-8601 date-time '" + std::string(text) +
                       "' (expected YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM])");
  std::tm tm{};
  tm.tm_year = parse_int(s, 0, 4, text) - 1900;
  tm.tm_mon = parse_int(s, 5, 2, text) - 1;
  tm.tm_mday = parse_int(s, 8, 2, text);
  tm.tm_hour = parse_int(s, 11, 2, text);
  tm.tm_min = parse_int(s, 14, 2, text);
  tm.tm_sec = parse_int(s, 17, 2, text);
  // timegm() would silently normalize "2026-13-45T25:61:61"; Python rejects it.
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    throw MessageError("invalid ISO-8601 date-time '" + std::string(text) +
                       "' (a field is out of range)");
  // TimePoint counts nanoseconds in 64 bits (years 1678..2261); a date past
  // that (Python accepts up to 9999) saturates instead of overflowing: an
  // expires in 4052 means "never" here too.
  if (tm.tm_year + 1900 > 2261) return TimePoint::max();
  if (tm.tm_year + 1900 < 1678) return TimePoint::min();
  std::size_t pos = 19;
  std::int64_t micros = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 6) {
        micros = micros * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) throw MessageError("invalid ISO-8601 date-time '" + std::string(text) + "'");
    while (digits++ < 6) micros *= 10;
  }
  int offset_min = 0;
  if (pos < s.size()) {
    if (s[pos] == 'Z' && pos + 1 == s.size()) {
      pos++;
    } else if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':') {
      int sign = s[pos] == '+' ? 1 : -1;
      if (parse_int(s, pos + 1, 2, text) > 23 || parse_int(s, pos + 4, 2, text) > 59)
        throw MessageError("invalid ISO-8601 date-time '" + std::string(text) + "' (bad offset)");
      offset_min = sign * (parse_int(s, pos + 1, 2, text) * 60 + parse_int(s, pos + 4, 2, text));
      pos += 6;
    } else {
      throw MessageError("invalid ISO-8601 date-time '" + std::string(text) + "' (bad offset)");
    }
  }
  std::time_t secs = timegm(&tm);
  return TimePoint(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(secs) -
                                                               std::chrono::minutes(offset_min) +
                                                               std::chrono::microseconds(micros)));
}

bool TaskMessage::has_canvas() const {
  auto non_empty = [](const Json& j) { return !j.is_null() && !(j.is_array() && j.empty()); };
  return non_empty(callbacks) || non_empty(errbacks) || non_empty(chain) || non_empty(chord);
}

std::string TaskMessage::body_json() const {
  std::string out = "[";
  dumps_to(out, args);
  out += ", ";
  dumps_to(out, kwargs);
  out += ", {\"callbacks\": ";
  dumps_to(out, callbacks);
  out += ", \"errbacks\": ";
  dumps_to(out, errbacks);
  out += ", \"chain\": ";
  dumps_to(out, chain);
  out += ", \"chord\": ";
  dumps_to(out, chord);
  out += "}]";
  return out;
}

std::string encode(const TaskMessage& m) {
  std::string out;
  std::string body = m.body_json();
  out.reserve(body.size() * 4 / 3 + 900);
  out += "{\"body\": ";
  if (m.base64_body) {
    out.push_back('"');
    out += base64_encode(body);
    out.push_back('"');
  } else {
    dump_string(out, body);
  }
  out +=
      ", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", \"headers\": "
      "{\"lang\": ";
  dump_string(out, m.lang);
  out += ", \"task\": ";
  dump_string(out, m.task);
  out += ", \"id\": ";
  dump_string(out, m.id);
  out += ", \"shadow\": ";
  put_opt_string(out, m.shadow);
  out += ", \"eta\": ";
  put_opt_time(out, m.eta);
  out += ", \"expires\": ";
  put_opt_time(out, m.expires);
  out += ", \"group\": ";
  put_opt_string(out, m.group);
  out += ", \"group_index\": ";
  out += m.group_index ? std::to_string(*m.group_index) : "null";
  out += ", \"retries\": ";
  out += std::to_string(m.retries);
  out += ", \"timelimit\": [";
  put_opt_double(out, m.time_limit);
  out += ", ";
  put_opt_double(out, m.soft_time_limit);
  out += "], \"root_id\": ";
  dump_string(out, m.root_id.empty() ? m.id : m.root_id);
  out += ", \"parent_id\": ";
  put_opt_string(out, m.parent_id);
  out += ", \"argsrepr\": ";
  dump_string(out, m.argsrepr.empty() ? args_repr(m.args) : m.argsrepr);
  out += ", \"kwargsrepr\": ";
  if (m.kwargsrepr.empty()) {
    std::string r;
    pyrepr(r, m.kwargs);
    dump_string(out, r);
  } else {
    dump_string(out, m.kwargsrepr);
  }
  out += ", \"origin\": ";
  dump_string(out, m.origin.empty() ? default_origin() : m.origin);
  out += ", \"ignore_result\": ";
  out += m.ignore_result ? "true" : "false";
  if (m.redelivered) out += ", \"redelivered\": true";
  put_extras(out, m.extra_headers);
  out += "}, \"properties\": {\"correlation_id\": ";
  dump_string(out, m.id);
  out += ", \"reply_to\": ";
  dump_string(out, m.reply_to);
  put_extras(out, m.extra_properties);
  out += ", \"delivery_mode\": ";
  out += std::to_string(m.delivery_mode);
  if (m.expiration) {
    out += ", \"expiration\": ";
    dump_string(out, *m.expiration);
  }
  out += ", \"delivery_info\": {\"exchange\": ";
  dump_string(out, m.exchange);
  out += ", \"routing_key\": ";
  dump_string(out, m.queue);
  if (m.redelivered) out += ", \"redelivered\": true";
  out += "}, \"priority\": ";
  out += std::to_string(m.priority);
  if (m.base64_body) out += ", \"body_encoding\": \"base64\"";
  out += ", \"delivery_tag\": ";
  dump_string(out, m.delivery_tag.empty() ? make_uuid() : m.delivery_tag);
  out += "}}";
  return out;
}

namespace {

struct Ctx {
  std::optional<std::string> id;
  std::optional<std::string> name;
  [[noreturn]] void fail(const std::string& what) const {
    std::string where;
    if (name || id) where = " (task " + name.value_or("?") + " id " + id.value_or("?") + ")";
    throw MessageError(what + where, id, name);
  }
};

std::string type_name(const OrderedJson& j) {
  return j.type_name();
}

std::optional<std::string> opt_string(const OrderedJson& h, const char* key, const Ctx& ctx) {
  auto it = h.find(key);
  if (it == h.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    ctx.fail(std::string("header '") + key + "' must be a string or null, got " + type_name(*it));
  return it->get<std::string>();
}

std::optional<TimePoint> opt_time(const OrderedJson& h, const char* key, const Ctx& ctx) {
  auto s = opt_string(h, key, ctx);
  if (!s) return std::nullopt;
  try {
    return parse_iso8601(*s);
  } catch (const MessageError& e) {
    ctx.fail(std::string("header '") + key + "': " + e.what());
  }
}

std::optional<double> opt_number(const OrderedJson& j, const std::string& what, const Ctx& ctx) {
  if (j.is_null()) return std::nullopt;
  if (!j.is_number()) ctx.fail(what + " must be a number or null, got " + type_name(j));
  return j.get<double>();
}

Json to_plain(const OrderedJson& j) {
  // Round-trip through the SAX-free path keeps NaN as NaN (floats copy).
  switch (j.type()) {
    case OrderedJson::value_t::object: {
      Json o = Json::object();
      for (auto it = j.begin(); it != j.end(); ++it) o[it.key()] = to_plain(it.value());
      return o;
    }
    case OrderedJson::value_t::array: {
      Json a = Json::array();
      for (const auto& e : j) a.push_back(to_plain(e));
      return a;
    }
    case OrderedJson::value_t::string:
      return j.get<std::string>();
    case OrderedJson::value_t::boolean:
      return j.get<bool>();
    case OrderedJson::value_t::number_integer:
      return j.get<std::int64_t>();
    case OrderedJson::value_t::number_unsigned:
      return j.get<std::uint64_t>();
    case OrderedJson::value_t::number_float:
      return j.get<double>();
    default:
      return nullptr;
  }
}

const std::string kKnownHeaders[] = {
    "lang",     "task",        "id",      "shadow",        "eta",        "expires",
    "group",    "group_index", "retries", "timelimit",     "root_id",    "parent_id",
    "argsrepr", "kwargsrepr",  "origin",  "ignore_result", "redelivered"};
const std::string kKnownProperties[] = {"correlation_id", "reply_to",      "delivery_mode",
                                        "expiration",     "delivery_info", "priority",
                                        "body_encoding",  "delivery_tag"};

template <std::size_t N>
bool known(const std::string& k, const std::string (&list)[N]) {
  for (const auto& s : list)
    if (s == k) return true;
  return false;
}

}  // namespace

namespace {

// Finds headers.id and headers.task of an envelope without building the
// document (for oversized messages, which are never decoded); stops as soon
// as both are seen.
class HeaderPeek {
 public:
  std::optional<std::string> id, task;

  bool null() { return value(); }
  bool boolean(bool) { return value(); }
  bool number_integer(Json::number_integer_t) { return value(); }
  bool number_unsigned(Json::number_unsigned_t) { return value(); }
  bool number_float(Json::number_float_t, const std::string&) { return value(); }
  bool binary(Json::binary_t&) { return value(); }
  bool string(std::string& v) {
    if (depth_ == 2 && in_headers_) {
      if (key_ == "id") id = v;
      if (key_ == "task") task = v;
    }
    value();
    return !(id && task);
  }
  bool start_object(std::size_t) {
    in_headers_ = depth_ == 1 && key_ == "headers";
    ++depth_;
    key_.clear();
    return true;
  }
  bool end_object() {
    if (--depth_ == 1) in_headers_ = false;
    return true;
  }
  bool start_array(std::size_t) {
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool key(std::string& k) {
    key_ = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  bool value() {
    key_.clear();
    return true;
  }
  int depth_ = 0;
  bool in_headers_ = false;
  std::string key_;
};

// Checks DecodeOptions' limits on JSON text in one pass, before it is
// parsed: nesting depth, string length (when `strings`) and the element
// count of the first element of the top-level array (`args`, when asked).
// Strings are skipped by their quotes, so brackets inside them do not count.
// Returns why the text is over a limit, or "".
std::string check_limits(std::string_view text, const DecodeOptions& o, const char* what,
                         bool strings, bool count_args) {
  std::size_t depth = 0, top_index = 0, args = 0;
  bool in_args = false, expect_arg = false;
  auto arg_value = [&] {
    if (depth == 2 && in_args && expect_arg) {
      expect_arg = false;
      ++args;
    }
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    switch (c) {
      case '"': {
        arg_value();
        std::size_t start = ++i;
        while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
        std::size_t len = std::min(i, text.size()) - start;
        if (strings && len > o.max_string_length)
          return std::string(what) + " has a string of " + std::to_string(len) + " bytes > limit " +
                 std::to_string(o.max_string_length) + " (DecodeOptions::max_string_length)";
        break;
      }
      case '[':
      case '{':
        arg_value();
        if (++depth > o.max_depth)
          return std::string(what) + " nests deeper than " + std::to_string(o.max_depth) +
                 " levels (DecodeOptions::max_depth)";
        if (depth == 2 && top_index == 0 && count_args) {
          in_args = c == '[';
          expect_arg = in_args;
        }
        break;
      case ']':
      case '}':
        if (depth == 2) in_args = false;
        if (depth > 0) --depth;
        break;
      case ',':
        if (depth == 1) ++top_index;
        if (depth == 2 && in_args) expect_arg = true;
        break;
      case ' ':
      case '\t':
      case '\n':
      case '\r':
        break;
      default:
        arg_value();
    }
    if (args > o.max_args)
      return std::string(what) + " has more than " + std::to_string(o.max_args) +
             " positional arguments (DecodeOptions::max_args)";
  }
  return {};
}

// Rejects an envelope that is not decoded at all (over a limit), naming the
// task when its headers.id / headers.task can be found without building it.
[[noreturn]] void reject_unread(std::string_view envelope, const std::string& why) {
  HeaderPeek peek;
  try {
    Json::sax_parse(envelope.begin(), envelope.end(), &peek);
  } catch (const std::exception&) {
    // Whatever was found before the problem is still reported.
  }
  Ctx ctx{peek.id, peek.task};
  ctx.fail(why);
}

}  // namespace

TaskMessage decode(std::string_view envelope, const DecodeOptions& options) {
  Ctx ctx;
  if (envelope.size() > options.max_size)
    reject_unread(envelope, "oversized message: " + std::to_string(envelope.size()) +
                                " bytes > limit " + std::to_string(options.max_size));
  if (auto why = check_limits(envelope, options, "envelope", false, false); !why.empty())
    reject_unread(envelope, why);
  OrderedJson env;
  try {
    env = loads_ordered(envelope);
  } catch (const MessageError& e) {
    throw MessageError(std::string("envelope is not JSON: ") + e.what());
  }
  if (!env.is_object()) ctx.fail("envelope must be a JSON object, got " + type_name(env));

  TaskMessage m;
  // Headers first, so later errors carry the id and name.
  auto hit = env.find("headers");
  if (hit == env.end() || hit->is_null())
    ctx.fail("envelope has no 'headers' (protocol 2 needs headers with 'task' and 'id')");
  if (!hit->is_object()) ctx.fail("'headers' must be an object, got " + type_name(*hit));
  const OrderedJson& h = *hit;
  if (auto it = h.find("id"); it != h.end() && it->is_string()) ctx.id = it->get<std::string>();
  if (auto it = h.find("task"); it != h.end() && it->is_string()) ctx.name = it->get<std::string>();
  if (!h.contains("task"))
    ctx.fail(
        "headers have no 'task' (protocol 1 messages are not supported; protocol 2 needs "
        "headers.task)");
  if (!h["task"].is_string())
    ctx.fail("header 'task' must be a string, got " + type_name(h["task"]));
  if (!h.contains("id")) ctx.fail("headers have no 'id'");
  if (!h["id"].is_string()) ctx.fail("header 'id' must be a string, got " + type_name(h["id"]));
  m.id = *ctx.id;
  m.task = *ctx.name;
  if (m.id.empty()) ctx.fail("header 'id' is empty");
  if (m.task.empty()) ctx.fail("header 'task' is empty");

  auto ct = env.find("content-type");
  if (ct == env.end()) ctx.fail("envelope has no 'content-type' (expected \"application/json\")");
  if (!ct->is_string() || ct->get<std::string>() != "application/json")
    ctx.fail("unsupported content-type " + dumps(*ct) + " (only \"application/json\" is accepted)");

  m.lang = opt_string(h, "lang", ctx).value_or("py");
  m.shadow = opt_string(h, "shadow", ctx);
  m.eta = opt_time(h, "eta", ctx);
  m.expires = opt_time(h, "expires", ctx);
  m.group = opt_string(h, "group", ctx);
  if (auto it = h.find("group_index"); it != h.end() && !it->is_null()) {
    if (!it->is_number_integer())
      ctx.fail("header 'group_index' must be an integer or null, got " + type_name(*it));
    m.group_index = it->get<long long>();
  }
  if (auto it = h.find("retries"); it != h.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<long long>() < 0)
      ctx.fail("header 'retries' must be a non-negative integer, got " + dumps(*it));
    m.retries = it->get<int>();
  }
  if (auto it = h.find("timelimit"); it != h.end() && !it->is_null()) {
    if (!it->is_array() || it->size() != 2)
      ctx.fail("header 'timelimit' must be [hard, soft], got " + dumps(*it));
    m.time_limit = opt_number((*it)[0], "timelimit[0]", ctx);
    m.soft_time_limit = opt_number((*it)[1], "timelimit[1]", ctx);
  }
  m.root_id = opt_string(h, "root_id", ctx).value_or(m.id);
  m.parent_id = opt_string(h, "parent_id", ctx);
  m.argsrepr = opt_string(h, "argsrepr", ctx).value_or("");
  m.kwargsrepr = opt_string(h, "kwargsrepr", ctx).value_or("");
  m.origin = opt_string(h, "origin", ctx).value_or("");
  if (auto it = h.find("ignore_result"); it != h.end() && !it->is_null()) {
    if (!it->is_boolean())
      ctx.fail("header 'ignore_result' must be a boolean, got " + type_name(*it));
    m.ignore_result = it->get<bool>();
  }
  if (auto it = h.find("redelivered"); it != h.end() && it->is_boolean())
    m.redelivered = it->get<bool>();
  for (auto it = h.begin(); it != h.end(); ++it)
    if (!known(it.key(), kKnownHeaders)) m.extra_headers[it.key()] = it.value();

  // Properties.
  auto pit = env.find("properties");
  if (pit == env.end() || !pit->is_object()) ctx.fail("envelope has no 'properties' object");
  const OrderedJson& p = *pit;
  auto di = p.find("delivery_info");
  if (di == p.end() || !di->is_object()) ctx.fail("properties have no 'delivery_info' object");
  auto ex = di->find("exchange");
  if (ex == di->end() || !ex->is_string())
    ctx.fail("properties.delivery_info has no string 'exchange'");
  m.exchange = ex->get<std::string>();
  auto rk = di->find("routing_key");
  if (rk == di->end() || !rk->is_string())
    ctx.fail("properties.delivery_info has no string 'routing_key'");
  m.queue = rk->get<std::string>();
  if (auto r = di->find("redelivered"); r != di->end() && r->is_boolean() && r->get<bool>())
    m.redelivered = true;
  auto tag = p.find("delivery_tag");
  if (tag == p.end() || !tag->is_string()) ctx.fail("properties have no string 'delivery_tag'");
  m.delivery_tag = tag->get<std::string>();
  if (auto it = p.find("priority"); it != p.end() && !it->is_null()) {
    if (!it->is_number_integer())
      ctx.fail("property 'priority' must be an integer, got " + type_name(*it));
    m.priority = std::clamp(it->get<int>(), 0, 9);
  }
  if (auto it = p.find("reply_to"); it != p.end() && it->is_string())
    m.reply_to = it->get<std::string>();
  if (auto it = p.find("delivery_mode"); it != p.end() && it->is_number_integer())
    m.delivery_mode = it->get<int>();
  if (auto it = p.find("expiration"); it != p.end() && it->is_string())
    m.expiration = it->get<std::string>();
  std::string body_encoding;
  if (auto it = p.find("body_encoding"); it != p.end() && !it->is_null()) {
    if (!it->is_string())
      ctx.fail("property 'body_encoding' must be a string, got " + type_name(*it));
    body_encoding = it->get<std::string>();
    if (body_encoding != "base64")
      ctx.fail("unsupported body_encoding \"" + body_encoding + "\" (expected \"base64\")");
  }
  m.base64_body = body_encoding == "base64";
  for (auto it = p.begin(); it != p.end(); ++it)
    if (!known(it.key(), kKnownProperties)) m.extra_properties[it.key()] = it.value();

  // Body.
  auto bit = env.find("body");
  if (bit == env.end()) ctx.fail("envelope has no 'body'");
  if (!bit->is_string()) ctx.fail("'body' must be a string, got " + type_name(*bit));
  std::string body_text;
  if (m.base64_body) {
    try {
      body_text = base64_decode(bit->get_ref<const std::string&>());
    } catch (const MessageError& e) {
      ctx.fail(std::string("undecodable body: ") + e.what());
    }
  } else {
    body_text = bit->get<std::string>();
  }
  if (auto why = check_limits(body_text, options, "body", true, true); !why.empty()) ctx.fail(why);
  Json body;
  try {
    body = loads(body_text);
  } catch (const MessageError& e) {
    ctx.fail(std::string("undecodable body: ") + e.what());
  }
  if (!body.is_array())
    ctx.fail("body is " + std::string(body.type_name()) +
             "; protocol 2 needs [args, kwargs, embed]");
  if (body.size() != 3)
    ctx.fail("body is a " + std::to_string(body.size()) +
             "-element array; protocol 2 needs [args, kwargs, embed]");
  if (!body[0].is_array())
    ctx.fail("body args must be an array, got " + std::string(body[0].type_name()));
  if (!body[1].is_object())
    ctx.fail("body kwargs must be an object, got " + std::string(body[1].type_name()));
  if (!body[2].is_object() && !body[2].is_null())
    ctx.fail("body embed must be an object, got " + std::string(body[2].type_name()));
  m.args = std::move(body[0]);
  m.kwargs = std::move(body[1]);
  if (body[2].is_object()) {
    const Json& e = body[2];
    auto field = [&](const char* k) { return e.contains(k) ? e[k] : Json(); };
    m.callbacks = field("callbacks");
    m.errbacks = field("errbacks");
    m.chain = field("chain");
    m.chord = field("chord");
  }
  (void)to_plain;
  return m;
}

std::pair<std::optional<std::string>, std::optional<std::string>> peek_id_and_name(
    std::string_view envelope) noexcept {
  try {
    Json env = Json::parse(envelope.begin(), envelope.end(), nullptr, false);
    if (!env.is_object()) return {};
    auto h = env.find("headers");
    if (h == env.end() || !h->is_object()) return {};
    std::optional<std::string> id, name;
    if (auto it = h->find("id");
        it != h->end() && it->is_string() && !it->get_ref<const std::string&>().empty())
      id = it->get<std::string>();
    if (auto it = h->find("task"); it != h->end() && it->is_string()) name = it->get<std::string>();
    return {id, name};
  } catch (...) {
    return {};
  }
}

std::string mark_redelivered(std::string_view envelope) {
  OrderedJson env;
  try {
    env = loads_ordered(envelope);
  } catch (const MessageError&) {
    return std::string(envelope);
  }
  if (!env.is_object()) return std::string(envelope);
  if (auto h = env.find("headers"); h != env.end() && h->is_object()) (*h)["redelivered"] = true;
  if (auto p = env.find("properties"); p != env.end() && p->is_object()) {
    if (auto di = p->find("delivery_info"); di != p->end() && di->is_object())
      (*di)["redelivered"] = true;
  }
  return dumps(env);
}

double unix_time(TimePoint t) noexcept {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

double unix_now() noexcept {
  return unix_time(Clock::now());
}

}  // namespace celeriac::tq
