// The schedule file (JSON) and entry validation.
#include <fstream>
#include <set>
#include <sstream>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/periodic_task.hpp"

namespace celeriac::tq {

void PeriodicEntry::validate() const {
  std::string where = "periodic task '" + name + "'";
  if (name.empty())
    throw ConfigError("periodic task: name must not be empty (task '" + call.task + "')");
  if (call.task.empty()) throw ConfigError(where + ": task must not be empty");
  if (schedule.is_interval() && schedule.period() <= std::chrono::milliseconds(0))
    throw ConfigError(where + ": schedule: interval must be positive (at least 1ms), got " +
                      std::to_string(schedule.period().count()) + "ms");
  if (!call.args.is_array())
    throw ConfigError(where + ": args must be a JSON array, got " + dumps(call.args));
  if (!call.kwargs.is_object())
    throw ConfigError(where + ": kwargs must be a JSON object, got " + dumps(call.kwargs));
  if (options.priority && (*options.priority < 0 || *options.priority > 9))
    throw ConfigError(where + ": options.priority " + std::to_string(*options.priority) +
                      " out of range 0-9");
  if (options.expires && *options.expires <= 0)
    throw ConfigError(where + ": options.expires must be positive seconds");
}

Json PeriodicEntry::to_json() const {
  Json opts = Json::object();
  if (options.relative) opts["relative"] = true;
  if (!options.queue.empty()) opts["queue"] = options.queue;
  if (options.priority) opts["priority"] = *options.priority;
  if (options.expires) opts["expires"] = *options.expires;
  if (!options.enabled) opts["enabled"] = false;
  return Json{{"name", name},
              {"task", call.task},
              {"args", call.args},
              {"kwargs", call.kwargs},
              {"schedule", schedule.to_json()},
              {"options", opts}};
}

namespace {

const Json& require(const Json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw ConfigError(where + ": missing \"" + key + "\"");
  return j[key];
}

void read_options(const Json& o, PeriodicOptions& out, const std::string& where) {
  if (!o.is_object()) throw ConfigError(where + ".options: expected an object, got " + dumps(o));
  static const std::set<std::string> known{"relative", "queue", "priority", "expires", "enabled"};
  for (auto it = o.begin(); it != o.end(); ++it) {
    const std::string& k = it.key();
    const Json& v = it.value();
    std::string field = where + ".options." + k;
    if (!known.count(k))
      throw ConfigError(field +
                        ": unknown option (expected relative, queue, priority, expires, enabled)");
    if ((k == "relative" || k == "enabled") && !v.is_boolean())
      throw ConfigError(field + ": expected true or false, got " + dumps(v));
    if (k == "queue" && !v.is_string())
      throw ConfigError(field + ": expected a string, got " + dumps(v));
    if (k == "priority" && !v.is_number_integer())
      throw ConfigError(field + ": expected an integer 0-9, got " + dumps(v));
    if (k == "expires" && !v.is_number())
      throw ConfigError(field + ": expected seconds, got " + dumps(v));
  }
  out.relative = o.value("relative", false);
  out.enabled = o.value("enabled", true);
  out.queue = o.value("queue", std::string());
  if (o.contains("priority")) out.priority = o["priority"].get<int>();
  if (o.contains("expires")) out.expires = o["expires"].get<double>();
}

}  // namespace

PeriodicEntry PeriodicEntry::from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw ConfigError(where + ": expected an object, got " + dumps(j));
  const Json& name = require(j, "name", where);
  if (!name.is_string() || name.get<std::string>().empty())
    throw ConfigError(where + ".name: expected a non-empty string, got " + dumps(name));
  std::string at = where + " '" + name.get<std::string>() + "'";
  const Json& task = require(j, "task", at);
  if (!task.is_string() || task.get<std::string>().empty())
    throw ConfigError(at + ".task: expected a task name, got " + dumps(task));
  static const std::set<std::string> known{"name", "task", "args", "kwargs", "schedule", "options"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key()))
      throw ConfigError(at + "." + it.key() +
                        ": unknown field (expected name, task, args, kwargs, schedule, options)");
  Json args = j.value("args", Json::array());
  Json kwargs = j.value("kwargs", Json::object());
  if (!args.is_array()) throw ConfigError(at + ".args: expected a JSON array, got " + dumps(args));
  if (!kwargs.is_object())
    throw ConfigError(at + ".kwargs: expected a JSON object, got " + dumps(kwargs));
  PeriodicEntry e{name.get<std::string>(),
                  Schedule::from_json(require(j, "schedule", at), at + ".schedule"),
                  tq::call(task.get<std::string>(), std::move(args), std::move(kwargs)),
                  {}};
  if (j.contains("options")) read_options(j["options"], e.options, at);
  e.validate();
  return e;
}

void validate_entries(const std::vector<PeriodicEntry>& entries) {
  std::set<std::string> seen;
  for (const auto& e : entries) {
    e.validate();
    if (!seen.insert(e.name).second)
      throw ConfigError("periodic task '" + e.name +
                        "': duplicate entry name (names must be unique)");
  }
}

std::vector<PeriodicEntry> parse_schedule(const std::string& text, const std::string& source) {
  Json doc;
  try {
    doc = loads(text);
  } catch (const std::exception& e) {
    throw ConfigError("schedule " + source + " is not valid JSON: " + e.what());
  }
  const Json* list = &doc;
  if (doc.is_object()) {
    if (!doc.contains("entries"))
      throw ConfigError("schedule " + source +
                        ": expected {\"entries\": [...]} or an array of entries");
    list = &doc["entries"];
  }
  if (!list->is_array())
    throw ConfigError("schedule " + source + ": \"entries\" must be an array, got " + dumps(*list));
  std::vector<PeriodicEntry> out;
  out.reserve(list->size());
  for (std::size_t i = 0; i < list->size(); ++i)
    out.push_back(
        PeriodicEntry::from_json((*list)[i], "schedule " + source + " entry " + std::to_string(i)));
  try {
    validate_entries(out);
  } catch (const ConfigError& e) {
    throw ConfigError("schedule " + source + ": " + e.what());
  }
  return out;
}

std::vector<PeriodicEntry> load_schedule_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in)
    throw ConfigError("schedule file " + file.string() + ": cannot be read (does it exist?)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_schedule(text.str(), file.string());
}

}  // namespace celeriac::tq
