#include "celeriac/tq/signature.hpp"

#include <algorithm>

#include "apply.hpp"
#include "celeriac/tq/app.hpp"

namespace celeriac::tq {

namespace dc = detail::canvas;

namespace {

Json dict_of(std::string task, Json args, Json kwargs, const char* subtask_type) {
  return Json{{"task", std::move(task)},
              {"args", std::move(args)},
              {"kwargs", std::move(kwargs)},
              {"options", Json::object()},
              {"subtask_type", subtask_type ? Json(subtask_type) : Json()},
              {"immutable", false}};
}

Json dicts(const std::vector<Signature>& sigs) {
  Json out = Json::array();
  for (const auto& s : sigs) out.push_back(s.to_json());
  return out;
}

App* first_app(const std::vector<Signature>& sigs) {
  for (const auto& s : sigs)
    if (s.app()) return s.app();
  return nullptr;
}

}  // namespace

Signature::Signature(std::string task, Json args, Json kwargs) {
  if (task.empty()) throw SignatureError("signature: task name must not be empty");
  if (!args.is_array())
    throw SignatureError("signature of '" + task + "': args must be an array, got " + dumps(args));
  if (!kwargs.is_object())
    throw SignatureError("signature of '" + task + "': kwargs must be an object, got " +
                         dumps(kwargs));
  dict_ = dict_of(std::move(task), std::move(args), std::move(kwargs), nullptr);
}

Signature Signature::from_json(const Json& dict) {
  dc::validate(dict, "signature");
  Signature s;
  s.dict_ = dict;
  if (!s.dict_.contains("args") || s.dict_["args"].is_null()) s.dict_["args"] = Json::array();
  if (!s.dict_.contains("kwargs") || s.dict_["kwargs"].is_null())
    s.dict_["kwargs"] = Json::object();
  if (!s.dict_.contains("options") || s.dict_["options"].is_null())
    s.dict_["options"] = Json::object();
  if (!s.dict_.contains("subtask_type")) s.dict_["subtask_type"] = nullptr;
  if (!s.dict_.contains("immutable")) s.dict_["immutable"] = false;
  return s;
}

std::string Signature::task() const {
  return dict_.is_object() ? dict_.value("task", std::string()) : std::string();
}

std::string Signature::subtask_type() const {
  std::string k = dict_.is_object() ? dc::kind_of(dict_) : "task";
  return k == "task" ? std::string() : k;
}

std::string Signature::id() const {
  if (!dict_.is_object()) return {};
  const Json& o = options();
  return o.contains("task_id") && o["task_id"].is_string() ? o["task_id"].get<std::string>()
                                                           : std::string();
}

Signature& Signature::set_option(const std::string& key, Json value) {
  if (!dict_.is_object()) throw SignatureError("set_option on an empty signature");
  dict_["options"][key] = std::move(value);
  return *this;
}

Signature& Signature::set(const CallOptions& o) {
  if (!o.queue.empty()) set_option("queue", o.queue);
  if (o.priority) set_option("priority", *o.priority);
  if (o.countdown) set_option("countdown", *o.countdown);
  if (o.eta) set_option("eta", format_iso8601(*o.eta));
  if (o.expires) set_option("expires", format_iso8601(*o.expires));
  if (o.expires_in) set_option("expires", *o.expires_in);
  if (!o.task_id.empty()) set_option("task_id", o.task_id);
  if (o.ignore_result) set_option("ignore_result", *o.ignore_result);
  if (o.time_limit) set_option("time_limit", *o.time_limit);
  if (o.soft_time_limit) set_option("soft_time_limit", *o.soft_time_limit);
  if (o.shadow) set_option("shadow", *o.shadow);
  if (o.headers.is_object() && !o.headers.empty()) set_option("headers", Json(o.headers));
  return *this;
}

Signature& Signature::set_immutable(bool immutable) {
  if (!dict_.is_object()) throw SignatureError("set_immutable on an empty signature");
  dict_["immutable"] = immutable;
  return *this;
}

Signature& Signature::link(const Signature& callback) {
  Json& l = dict_["options"]["link"];
  if (!l.is_array()) l = Json::array();
  l.push_back(callback.to_json());
  if (!app_) app_ = callback.app_;
  return *this;
}

Signature& Signature::link_error(const Signature& errback) {
  Json& l = dict_["options"]["link_error"];
  if (!l.is_array()) l = Json::array();
  l.push_back(errback.to_json());
  if (!app_) app_ = errback.app_;
  return *this;
}

std::string Signature::freeze() {
  if (!dict_.is_object()) throw SignatureError("freeze of an empty signature");
  return dc::freeze(dict_);
}

AsyncResult<Json> Signature::apply_async(Json partial_args, const CallOptions& options) const {
  if (!app_)
    throw SignatureError("signature of '" + task() +
                         "' is not bound to an app (use app.signature(...) or sig.bind(app))");
  if (!partial_args.is_array())
    throw SignatureError("apply_async of '" + task() + "': args must be an array, got " +
                         dumps(partial_args));
  Signature s = *this;
  s.set(options);
  std::string id = s.freeze();
  dc::Apply how;
  how.partial_args = std::move(partial_args);
  if (s.subtask_type() == "group") {  // wait on the last member
    const Json& tasks = s.kwargs().at("tasks");
    if (!tasks.empty()) {
      Json last = tasks.back();
      id = dc::freeze(last);
    }
  }
  AsyncResult<Json> r(*app_, id);
  dc::apply(*app_, s.to_json(), how);
  return r;
}

Signature chain(std::vector<Signature> steps) {
  Signature s = Signature::from_json(
      dict_of("celery.chain", Json::array(), Json{{"tasks", dicts(steps)}}, "chain"));
  if (App* a = first_app(steps)) s.bind(*a);
  return s;
}

Signature operator|(const Signature& a, const Signature& b) {
  if (a.subtask_type() == "group") return chord(a, b);
  std::vector<Signature> steps;
  for (const Signature* side : {&a, &b}) {
    if (side->subtask_type() == "chain" && side->options().empty()) {
      for (const auto& t : side->kwargs().at("tasks")) steps.push_back(Signature::from_json(t));
    } else {
      steps.push_back(*side);
    }
  }
  Signature c = chain(std::move(steps));
  if (App* app = a.app() ? a.app() : b.app()) c.bind(*app);
  return c;
}

Group group(std::vector<Signature> members) {
  Signature s = Signature::from_json(
      dict_of("celery.group", Json::array(), Json{{"tasks", dicts(members)}}, "group"));
  if (App* a = first_app(members)) s.bind(*a);
  return Group(std::move(s));
}

Group::Group(Signature sig) : Signature(std::move(sig)) {
  if (subtask_type() != "group")
    throw SignatureError("Group: '" + task() + "' is not a group signature");
}

GroupResult Group::apply_async(Json partial_args, const CallOptions& options) const {
  if (!app())
    throw SignatureError("group is not bound to an app (use app.signature(...) or sig.bind(app))");
  Signature s = *this;
  s.set(options);
  std::string gid = s.freeze();
  std::vector<std::string> ids;
  for (const auto& m : s.kwargs().at("tasks")) {
    Json member = m;
    ids.push_back(dc::freeze(member));
  }
  dc::Apply how;
  how.partial_args = std::move(partial_args);
  dc::apply(*app(), s.to_json(), how);
  return GroupResult(*app(), gid, std::move(ids));
}

namespace {
Signature builtin_call(const char* name, const Signature& task, Json items) {
  if (!items.is_array())
    throw SignatureError(std::string(name) + ": items must be an array, got " + dumps(items));
  Signature s(name, Json::array(), Json{{"task", task.to_json()}, {"it", std::move(items)}});
  s.set_immutable();
  if (task.app()) s.bind(*task.app());
  return s;
}
}  // namespace

Signature map(const Signature& task, Json items) {
  return builtin_call("celery.map", task, std::move(items));
}

Signature starmap(const Signature& task, Json items) {
  return builtin_call("celery.starmap", task, std::move(items));
}

Group chunks(const Signature& task, Json items, std::size_t n) {
  if (n == 0) throw SignatureError("chunks: the chunk size must be at least 1");
  if (!items.is_array())
    throw SignatureError("chunks: items must be an array, got " + dumps(items));
  std::vector<Signature> parts;
  for (std::size_t i = 0; i < items.size(); i += n) {
    Json part = Json::array();
    for (std::size_t j = i; j < std::min(items.size(), i + n); ++j) part.push_back(items[j]);
    parts.push_back(starmap(task, std::move(part)));
  }
  return group(std::move(parts));
}

Signature App::signature(std::string name, Json args, Json kwargs) {
  Signature s(std::move(name), std::move(args), std::move(kwargs));
  s.bind(*this);
  return s;
}

Signature chord(const Signature& header, const Signature& body) {
  Json h = header.subtask_type() == "group" ? header.to_json() : group({header}).to_json();
  Signature s = Signature::from_json(
      dict_of("celery.chord", Json::array(),
              Json{{"header", std::move(h)}, {"body", body.to_json()}, {"kwargs", Json::object()}},
              "chord"));
  if (App* a = header.app() ? header.app() : body.app()) s.bind(*a);
  return s;
}

Signature chord(std::vector<Signature> header, const Signature& body) {
  return chord(group(std::move(header)), body);
}

}  // namespace celeriac::tq
