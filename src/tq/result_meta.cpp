#include <algorithm>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq {

std::string_view to_string(State s) noexcept {
  switch (s) {
    case State::Pending:
      return "PENDING";
    case State::Received:
      return "RECEIVED";
    case State::Started:
      return "STARTED";
    case State::Success:
      return "SUCCESS";
    case State::Failure:
      return "FAILURE";
    case State::Retry:
      return "RETRY";
    case State::Revoked:
      return "REVOKED";
  }
  return "PENDING";
}

State state_from_string(std::string_view name) {
  for (State s : {State::Pending, State::Received, State::Started, State::Success, State::Failure,
                  State::Retry, State::Revoked})
    if (to_string(s) == name) return s;
  throw ConfigError("unknown task state '" + std::string(name) +
                    "' (expected PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, RETRY or REVOKED)");
}

bool is_ready(State s) noexcept {
  return s == State::Success || s == State::Failure || s == State::Revoked;
}

namespace {

// Celery serializes an exception as a Python dict built in the order
// exc_type, exc_message, exc_module; Json keeps keys sorted, so those three
// are written first, in Celery's order, and any others after them.
void dump_result(std::string& out, const Json& result) {
  static constexpr const char* kExcKeys[] = {"exc_type", "exc_message", "exc_module"};
  if (!result.is_object() || !result.contains("exc_type")) {
    dumps_to(out, result);
    return;
  }
  out.push_back('{');
  bool first = true;
  auto put = [&](const std::string& key, const Json& value) {
    if (!first) out += ", ";
    first = false;
    dump_string(out, key);
    out += ": ";
    dumps_to(out, value);
  };
  for (const char* key : kExcKeys)
    if (auto it = result.find(key); it != result.end()) put(key, *it);
  for (auto it = result.begin(); it != result.end(); ++it)
    if (std::find(std::begin(kExcKeys), std::end(kExcKeys), it.key()) == std::end(kExcKeys))
      put(it.key(), *it);
  out.push_back('}');
}

}  // namespace

std::string ResultMeta::to_json() const {
  std::string out = "{\"status\": ";
  dump_string(out, to_string(status));
  out += ", \"result\": ";
  dump_result(out, result);
  out += ", \"traceback\": ";
  if (traceback) {
    dump_string(out, *traceback);
  } else {
    out += "null";
  }
  out += ", \"children\": ";
  dumps_to(out, children);
  out += ", \"date_done\": ";
  if (date_done) {
    dump_string(out, *date_done);
  } else {
    out += "null";
  }
  if (group_id) {
    out += ", \"group_id\": ";
    dump_string(out, *group_id);
  }
  if (parent_id) {
    out += ", \"parent_id\": ";
    dump_string(out, *parent_id);
  }
  if (extended.is_object()) {
    for (auto it = extended.begin(); it != extended.end(); ++it) {
      out += ", ";
      dump_string(out, it.key());
      out += ": ";
      dumps_to(out, it.value());
    }
  }
  out += ", \"task_id\": ";
  dump_string(out, task_id);
  out += "}";
  return out;
}

ResultMeta ResultMeta::from_json(std::string_view text) {
  OrderedJson j = loads_ordered(text);
  if (!j.is_object())
    throw MessageError("result meta must be a JSON object, got " + std::string(j.type_name()));
  ResultMeta m;
  auto str = [&](const char* key, bool required) -> std::optional<std::string> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) throw MessageError(std::string("result meta has no '") + key + "'");
      return std::nullopt;
    }
    if (!it->is_string())
      throw MessageError(std::string("result meta '") + key + "' must be a string");
    return it->get<std::string>();
  };
  m.task_id = str("task_id", true).value();
  try {
    m.status = state_from_string(str("status", true).value());
  } catch (const ConfigError& e) {
    throw MessageError(std::string("result meta: ") + e.what());
  }
  if (auto it = j.find("result"); it != j.end()) m.result = loads(dumps(*it));
  m.traceback = str("traceback", false);
  if (auto it = j.find("children"); it != j.end() && it->is_array()) m.children = loads(dumps(*it));
  m.date_done = str("date_done", false);
  m.group_id = str("group_id", false);
  m.parent_id = str("parent_id", false);
  for (const char* k : {"name", "args", "kwargs", "worker", "retries", "queue"}) {
    if (auto it = j.find(k); it != j.end()) {
      if (!m.extended.is_object()) m.extended = OrderedJson::object();
      m.extended[k] = *it;
    }
  }
  return m;
}

}  // namespace celeriac::tq
