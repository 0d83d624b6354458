#include "apply.hpp"

#include "celeriac/tq/signature.hpp"

namespace celeriac::tq::detail::canvas {

namespace {

const Json kNull;

const Json& field(const Json& sig, const char* key) {
  auto it = sig.find(key);
  return it == sig.end() ? kNull : *it;
}

std::string opt_string(const Json& opts, const char* key) {
  const Json& v = field(opts, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

// A chord's header as a list of members (Celery sends a list or a group dict).
const Json& header_members(const Json& sig) {
  const Json& h = field(sig.at("kwargs"), "header");
  return h.is_object() ? h.at("kwargs").at("tasks") : h;
}

Json header_group_id(const Json& sig) {
  const Json& h = field(sig.at("kwargs"), "header");
  return h.is_object() ? field(field(h, "options"), "task_id") : kNull;
}

// How many parts a chord header member reports (Celery's _chord._descend).
std::size_t descend(const Json& member) {
  std::string k = kind_of(member);
  if (k == "group") {
    std::size_t n = 0;
    for (const auto& m : member.at("kwargs").at("tasks")) n += descend(m);
    return n;
  }
  return 1;  // a task, a chain (its last step), a chord (its body)
}

Json with_args(const Json& sig, const Json& partial) {
  if (sig.value("immutable", false) || partial.empty()) return field(sig, "args");
  Json args = partial;
  for (const auto& a : field(sig, "args")) args.push_back(a);
  return args;
}

Json merged_options(const Json& sig, const Json& extra) {
  Json o = field(sig, "options").is_object() ? sig.at("options") : Json::object();
  for (auto it = extra.begin(); it != extra.end(); ++it) o[it.key()] = it.value();
  return o;
}

Json as_list(const Json& v) {
  if (v.is_null()) return kNull;
  return v.is_array() ? v : Json::array({v});
}

std::optional<TimePoint> time_option(const Json& v, const std::string& what) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return parse_iso8601(v.get<std::string>());
  throw SignatureError("option '" + what + "' must be an ISO-8601 string, got " + dumps(v));
}

CallOptions call_options(const Json& o, const Apply& how) {
  CallOptions c;
  c.task_id = opt_string(o, "task_id");
  c.queue = opt_string(o, "queue");
  if (field(o, "priority").is_number_integer()) c.priority = o.at("priority").get<int>();
  if (field(o, "countdown").is_number()) c.countdown = o.at("countdown").get<double>();
  c.eta = time_option(field(o, "eta"), "eta");
  const Json& ex = field(o, "expires");
  if (ex.is_number())
    c.expires_in = ex.get<double>();
  else
    c.expires = time_option(ex, "expires");
  if (field(o, "time_limit").is_number()) c.time_limit = o.at("time_limit").get<double>();
  if (field(o, "soft_time_limit").is_number())
    c.soft_time_limit = o.at("soft_time_limit").get<double>();
  if (field(o, "ignore_result").is_boolean()) c.ignore_result = o.at("ignore_result").get<bool>();
  if (field(o, "shadow").is_string()) c.shadow = o.at("shadow").get<std::string>();
  if (field(o, "headers").is_object()) c.headers = OrderedJson(o.at("headers"));
  c.parent_id = how.parent_id;
  if (!c.parent_id && field(o, "parent_id").is_string()) c.parent_id = opt_string(o, "parent_id");
  c.root_id = how.root_id;
  if (!c.root_id && field(o, "root_id").is_string()) c.root_id = opt_string(o, "root_id");
  return c;
}

std::string build_task(App& app, const Json& sig, const Apply& how, std::vector<TaskMessage>& out) {
  Json o = merged_options(sig, how.extra_options);
  TaskMessage m = app.build_message(
      sig.at("task").get<std::string>(), with_args(sig, how.partial_args),
      field(sig, "kwargs").is_object() ? sig.at("kwargs") : Json::object(), call_options(o, how));
  if (field(o, "group_id").is_string()) m.group = o.at("group_id").get<std::string>();
  if (field(o, "group_index").is_number_integer())
    m.group_index = o.at("group_index").get<long long>();
  if (field(o, "chord").is_object()) m.chord = o.at("chord");
  m.callbacks = as_list(field(o, "link"));
  m.errbacks = as_list(field(o, "link_error"));
  m.chain = !how.chain.is_null() ? how.chain : field(o, "chain");
  if (field(o, "reply_to").is_string()) m.reply_to = o.at("reply_to").get<std::string>();
  out.push_back(std::move(m));
  return out.back().id;
}

// Celery's chain.prepare_steps: nested chains flattened, `group | step`
// upgraded to a chord, every step frozen.
Json prepare_steps(const Json& tasks) {
  Json flat = Json::array();
  for (const auto& t : tasks) {
    if (kind_of(t) == "chain") {
      for (const auto& s : prepare_steps(t.at("kwargs").at("tasks"))) flat.push_back(s);
    } else {
      flat.push_back(t);
    }
  }
  Json steps = Json::array();
  for (std::size_t i = 0; i < flat.size(); ++i) {
    if (kind_of(flat[i]) == "group" && i + 1 < flat.size()) {
      steps.push_back(
          chord(Signature::from_json(flat[i]), Signature::from_json(flat[i + 1])).to_json());
      ++i;
    } else {
      steps.push_back(flat[i]);
    }
  }
  for (auto& s : steps) freeze(s);
  return steps;
}

std::string build_chain(App& app, const Json& sig, const Apply& how,
                        std::vector<TaskMessage>& out) {
  Json steps = prepare_steps(sig.at("kwargs").at("tasks"));
  if (steps.empty()) throw SignatureError("chain has no tasks");
  const Json& o = field(sig, "options");
  // A chain inside a group or chord: only its last step reports to it.
  Json& last = steps.back();
  for (const char* key : {"group_id", "group_index", "chord"})
    if (o.is_object() && o.contains(key)) last["options"][key] = o.at(key);
  for (auto it = how.extra_options.begin(); it != how.extra_options.end(); ++it)
    last["options"][it.key()] = it.value();
  if (o.is_object()) {
    if (o.contains("link")) last["options"]["link"] = as_list(o.at("link"));
    if (o.contains("link_error"))
      for (auto& s : steps) s["options"]["link_error"] = as_list(o.at("link_error"));
  }
  std::string last_id = freeze(last);
  // Steps waiting after this chain (a chord body that is a chain) run last.
  Json rest = field(o, "chain").is_array() ? o.at("chain") : Json::array();
  if (!how.chain.is_null())
    for (const auto& s : how.chain) rest.push_back(s);
  for (std::size_t i = steps.size(); i-- > 1;) rest.push_back(steps[i]);
  Apply first;
  first.partial_args = how.partial_args;
  for (const auto& a : field(sig, "args")) first.partial_args.push_back(a);
  first.parent_id = how.parent_id;
  first.root_id = how.root_id;
  first.chain = std::move(rest);
  build(app, steps[0], first, out);
  return last_id;
}

std::string build_group(App& app, const Json& sig, const Apply& how,
                        std::vector<TaskMessage>& out) {
  std::string gid = opt_string(field(sig, "options"), "task_id");
  if (gid.empty()) gid = make_uuid();
  for (const auto& member : sig.at("kwargs").at("tasks")) {
    Apply each = how;
    each.extra_options["group_id"] = gid;
    build(app, member, each, out);
  }
  return gid;
}

std::string build_chord(App& app, const Json& sig, const Apply& how,
                        std::vector<TaskMessage>& out) {
  Json body = sig.at("kwargs").at("body");
  const std::string body_id = freeze(body);
  for (auto it = how.extra_options.begin(); it != how.extra_options.end(); ++it)
    body["options"][it.key()] = it.value();
  if (!how.chain.is_null() && !how.chain.empty()) body["options"]["chain"] = how.chain;
  const Json& members = header_members(sig);
  if (members.empty()) {  // Celery: body.delay([])
    Apply b;
    b.partial_args = Json::array({Json::array()});
    b.parent_id = how.parent_id;
    b.root_id = how.root_id;
    return build(app, body, b, out);
  }
  Json gid_json = header_group_id(sig);
  std::string gid = gid_json.is_string() ? gid_json.get<std::string>() : make_uuid();
  std::size_t size = 0;
  for (const auto& m : members) size += descend(m);
  app.backend().set_chord_size(gid, size);
  long long index = 0;
  for (const auto& m : members) {
    Apply each;
    each.partial_args = how.partial_args;
    each.parent_id = how.parent_id;
    each.root_id = how.root_id;
    each.extra_options = Json{{"group_id", gid}, {"chord", body}};
    if (kind_of(m) == "group") {  // a nested group reports each member to this chord
      for (const auto& inner : m.at("kwargs").at("tasks")) {
        each.extra_options["group_index"] = index++;
        build(app, inner, each, out);
      }
      continue;
    }
    each.extra_options["group_index"] = index++;
    build(app, m, each, out);
  }
  return body_id;
}

void check_type(const Json& v, bool ok, const std::string& where, const char* key,
                const char* want) {
  if (!ok)
    throw SignatureError(where + ": '" + key + "' must be " + want + ", got " + json_type_name(v) +
                         " " + dumps(v).substr(0, 200));
}

}  // namespace

std::string kind_of(const Json& sig) {
  const Json& st = field(sig, "subtask_type");
  if (st.is_string()) return st.get<std::string>();
  std::string task = opt_string(sig, "task");
  if (task == "celery.chain") return "chain";
  if (task == "celery.group") return "group";
  if (task == "celery.chord") return "chord";
  return "task";
}

void validate(const Json& sig, const std::string& where) {
  if (!sig.is_object())
    throw SignatureError(where + ": a signature must be an object, got " + json_type_name(sig) +
                         " " + dumps(sig).substr(0, 200));
  const Json& task = field(sig, "task");
  check_type(task, task.is_string() && !task.get_ref<const std::string&>().empty(), where, "task",
             "a non-empty string");
  const Json& args = field(sig, "args");
  check_type(args, args.is_null() || args.is_array(), where, "args", "an array");
  const Json& kwargs = field(sig, "kwargs");
  check_type(kwargs, kwargs.is_null() || kwargs.is_object(), where, "kwargs", "an object");
  const Json& options = field(sig, "options");
  check_type(options, options.is_null() || options.is_object(), where, "options", "an object");
  const Json& imm = field(sig, "immutable");
  check_type(imm, imm.is_null() || imm.is_boolean(), where, "immutable", "a boolean");
  const Json& st = field(sig, "subtask_type");
  check_type(st, st.is_null() || st.is_string(), where, "subtask_type", "null or a string");
  std::string k = kind_of(sig);
  const std::string name = task.get<std::string>();
  if (k == "chain" || k == "group") {
    const Json& tasks = kwargs.is_object() ? field(kwargs, "tasks") : kNull;
    check_type(tasks, tasks.is_array(), where + " (" + k + ")", "kwargs.tasks", "an array");
    for (std::size_t i = 0; i < tasks.size(); ++i)
      validate(tasks[i], where + " " + k + " member " + std::to_string(i));
  } else if (k == "chord") {
    const Json& body = kwargs.is_object() ? field(kwargs, "body") : kNull;
    check_type(body, body.is_object(), where + " (chord)", "kwargs.body", "a signature object");
    validate(body, where + " chord body");
    const Json& header = field(kwargs, "header");
    check_type(header, header.is_array() || header.is_object(), where + " (chord)", "kwargs.header",
               "an array or a group");
    if (header.is_object()) validate(header, where + " chord header");
    const Json& members = header_members(sig);
    for (std::size_t i = 0; i < members.size(); ++i)
      validate(members[i], where + " chord header member " + std::to_string(i));
  } else if (k != "task") {
    throw SignatureError(where + ": unknown subtask_type '" + k + "' (task '" + name +
                         "'); expected null, 'chain', 'group' or 'chord'");
  }
  if (options.is_object()) {
    for (const char* key : {"link", "link_error"}) {
      const Json& l = field(options, key);
      if (l.is_null()) continue;
      Json list = as_list(l);
      for (std::size_t i = 0; i < list.size(); ++i)
        validate(list[i], where + " options." + key + "[" + std::to_string(i) + "]");
    }
    const Json& tid = field(options, "task_id");
    check_type(tid, tid.is_null() || tid.is_string(), where, "options.task_id", "a string");
    const Json& chord_opt = field(options, "chord");
    if (!chord_opt.is_null()) validate(chord_opt, where + " options.chord");
  }
}

std::string freeze(Json& sig) {
  if (!sig.contains("options") || !sig["options"].is_object()) sig["options"] = Json::object();
  std::string k = kind_of(sig);
  if (k == "chain") {
    std::string last;
    for (auto& s : sig["kwargs"]["tasks"]) last = freeze(s);
    return last;
  }
  if (k == "chord") return freeze(sig["kwargs"]["body"]);
  if (k == "group") {
    for (auto& s : sig["kwargs"]["tasks"]) freeze(s);
  }
  Json& id = sig["options"]["task_id"];
  if (!id.is_string()) id = make_uuid();
  return id.get<std::string>();
}

std::string build(App& app, const Json& sig, const Apply& how, std::vector<TaskMessage>& out) {
  std::string k = kind_of(sig);
  if (k == "chain") return build_chain(app, sig, how, out);
  if (k == "group") return build_group(app, sig, how, out);
  if (k == "chord") return build_chord(app, sig, how, out);
  return build_task(app, sig, how, out);
}

std::string apply(App& app, const Json& sig, const Apply& how) {
  std::vector<TaskMessage> out;
  std::string id = build(app, sig, how, out);
  if (out.size() == 1)
    app.publish(out.front());
  else if (!out.empty())
    app.publish_many(out);
  return id;
}

std::string repr_exception(const Json& exc) {
  if (!exc.is_object()) return dumps(exc);
  std::string out = exc.value("exc_type", std::string("Exception")) + "(";
  const Json& args = field(exc, "exc_message");
  Json list = args.is_array() ? args : Json::array({args});
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i) out += ", ";
    if (list[i].is_string()) {
      const std::string& s = list[i].get_ref<const std::string&>();
      char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
      out += q;
      out += s;
      out += q;
    } else {
      out += dumps(list[i]);
    }
  }
  return out + ")";
}

}  // namespace celeriac::tq::detail::canvas
