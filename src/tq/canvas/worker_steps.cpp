#include "worker_steps.hpp"

#include <spdlog/spdlog.h>

#include "apply.hpp"
#include "celeriac/tq/signature.hpp"

namespace celeriac::tq::detail::canvas {

namespace {

std::string where_of(const TaskMessage& m) {
  return "task " + m.task + "[" + m.id + "]";
}

std::string check_list(const Json& v, const std::string& where, const char* key) {
  if (v.is_null()) return {};
  if (!v.is_array())
    return where + ": embed." + key + " must be null or an array of signatures, got " +
           json_type_name(v);
  try {
    for (std::size_t i = 0; i < v.size(); ++i)
      validate(v[i], where + " embed." + key + "[" + std::to_string(i) + "]");
  } catch (const SignatureError& e) {
    return e.what();
  }
  return {};
}

Json child(const std::string& id) {
  return Json::array({Json::array({id, nullptr}), nullptr});
}

std::optional<std::string> task_id_of(const Json& sig) {
  if (!sig.is_object()) return std::nullopt;
  const std::string kind = kind_of(sig);
  const Json kwargs = sig.value("kwargs", Json());
  if (kind == "chord" && kwargs.is_object()) return task_id_of(kwargs.value("body", Json()));
  if (kind == "chain" && kwargs.is_object() && kwargs.value("tasks", Json()).is_array() &&
      !kwargs["tasks"].empty())
    return task_id_of(kwargs["tasks"].back());
  auto it = sig.find("options");
  if (it == sig.end() || !it->is_object()) return std::nullopt;
  auto id = it->find("task_id");
  if (id == it->end() || !id->is_string()) return std::nullopt;
  return id->get<std::string>();
}

ResultMeta failure_for(const std::string& id, const ResultMeta& like) {
  ResultMeta meta = like;
  meta.task_id = id;
  meta.children = Json::array();
  meta.group_id.reset();
  meta.parent_id.reset();
  return meta;
}

// Celery's chord_error_from_stack: the body's errbacks get (body_id,), the
// body (and any chain waiting on it) FAILURE with ChordError.
void fail_body(App& app, const Json& body, const TaskMessage& last_part, const std::string& why) {
  auto id = task_id_of(body);
  if (!id) {
    spdlog::error("chord body without a task id cannot be failed: {}", why);
    return;
  }
  TaskError err("ChordError", "celery.exceptions", why);
  ResultMeta meta;
  meta.task_id = *id;
  meta.status = State::Failure;
  meta.result = Json(err.to_json());
  meta.traceback = "celery.exceptions.ChordError: " + why + "\n";
  meta.date_done = format_iso8601(Clock::now(), false);
  std::vector<ResultMeta> metas{meta};
  const Json& opts = body.contains("options") ? body["options"] : Json();
  if (opts.is_object() && opts.contains("chain") && opts["chain"].is_array())
    for (const auto& step : opts["chain"])
      if (auto sid = task_id_of(step)) metas.push_back(failure_for(*sid, meta));
  app.backend().store_many(metas);
  spdlog::error("chord body {} failed: {}", *id, why);
  if (opts.is_object() && opts.contains("link_error")) {
    TaskMessage fake = last_part;
    fake.id = *id;
    fake.errbacks =
        opts["link_error"].is_array() ? opts["link_error"] : Json::array({opts["link_error"]});
    fake.chain = nullptr;
    fake.chord = nullptr;
    on_failure(app, fake, meta, true);
  }
}

void complete_chord(App& app, const TaskMessage& m, const Json& parts) {
  Json values = Json::array();
  for (const auto& p : parts) {
    const std::string state = p.at(2).get<std::string>();
    if (state == "FAILURE" || state == "REVOKED") {
      fail_body(app, m.chord, m,
                "Dependency " + p.at(1).get<std::string>() + " raised " + repr_exception(p.at(3)));
      return;
    }
    values.push_back(p.at(3));
  }
  Apply how;
  how.partial_args = Json::array({std::move(values)});
  how.parent_id = m.id;
  how.root_id = m.root_id;
  apply(app, m.chord, how);
}

}  // namespace

std::string check_embed(const TaskMessage& m) {
  const std::string where = where_of(m);
  for (auto [v, key] : {std::pair{&m.callbacks, "callbacks"}, std::pair{&m.errbacks, "errbacks"},
                        std::pair{&m.chain, "chain"}}) {
    std::string why = check_list(*v, where, key);
    if (!why.empty()) return why;
  }
  if (!m.chord.is_null()) {
    try {
      validate(m.chord, where + " embed.chord");
    } catch (const SignatureError& e) {
      return e.what();
    }
    if (!m.group) return where + ": embed.chord is set but headers.group is missing";
  }
  return {};
}

Json on_success(App& app, const TaskMessage& m, const Json& result) {
  std::vector<TaskMessage> out;
  Json children = Json::array();
  if (m.callbacks.is_array() && !m.callbacks.empty()) {
    Apply how;
    how.partial_args = Json::array({result});
    how.parent_id = m.id;
    how.root_id = m.root_id;
    // Several callbacks are sent together as a group (Celery).
    if (m.callbacks.size() > 1) how.extra_options["group_id"] = make_uuid();
    for (const auto& cb : m.callbacks) children.push_back(child(build(app, cb, how, out)));
  }
  if (m.chain.is_array() && !m.chain.empty()) {
    Apply how;
    how.partial_args = Json::array({result});
    how.parent_id = m.id;
    how.root_id = m.root_id;
    how.chain = m.chain;
    how.chain.erase(how.chain.size() - 1);
    children.push_back(child(build(app, m.chain.back(), how, out)));
  }
  if (out.size() == 1)
    app.publish(out.front());
  else if (!out.empty())
    app.publish_many(out);
  return children;
}

void on_ready(App& app, const TaskMessage& m, State state, const Json& result) {
  if (!m.chord.is_object() || !m.group) return;
  try {
    ChordPart part{*m.group, m.group_index, m.id, state, result};
    if (auto parts = app.backend().add_chord_part(part)) complete_chord(app, m, *parts);
  } catch (const std::exception& e) {
    // Celery: chord_error_from_stack — the body fails instead of hanging.
    try {
      fail_body(app, m.chord, m, std::string("chord could not complete: ") + e.what());
    } catch (const std::exception& e2) {
      spdlog::error("chord of group {}: {} (and failing its body: {})", *m.group, e.what(),
                    e2.what());
    }
  }
}

void on_failure(App& app, const TaskMessage& m, const ResultMeta& failure, bool call_errbacks) {
  try {
    if (m.chain.is_array() && !m.chain.empty()) {
      std::vector<ResultMeta> metas;
      for (const auto& step : m.chain)
        if (auto id = task_id_of(step)) metas.push_back(failure_for(*id, failure));
      app.backend().store_many(metas);
      for (const auto& step : m.chain) {
        const Json& o = step.contains("options") ? step["options"] : Json();
        if (!o.is_object() || !o.contains("chord") || !o.contains("group_id")) continue;
        TaskMessage part;
        part.id = task_id_of(step).value_or("");
        part.group = o["group_id"].get<std::string>();
        if (o.contains("group_index") && o["group_index"].is_number_integer())
          part.group_index = o["group_index"].get<long long>();
        part.chord = o["chord"];
        part.root_id = m.root_id;
        on_ready(app, part, failure.status, failure.result);
      }
    }
    if (call_errbacks && m.errbacks.is_array() && !m.errbacks.empty()) {
      Apply how;
      how.partial_args = Json::array({m.id});
      how.parent_id = m.id;
      how.root_id = m.root_id;
      how.extra_options["group_id"] = make_uuid();  // errbacks are sent as a group
      std::vector<TaskMessage> out;
      for (const auto& eb : m.errbacks) build(app, eb, how, out);
      app.publish_many(out);
    }
  } catch (const std::exception& e) {
    spdlog::error("{}: failure could not be passed on to its workflow: {}", where_of(m), e.what());
  }
}

void on_rejected(App& app, const TaskMessage& m, const ResultMeta& failure) {
  try {
    if (m.chord.is_object() && m.group) on_ready(app, m, State::Failure, failure.result);
    // The chord's body is what its client waits on: fail it even when the
    // count cannot complete (no size recorded, or this part is unreadable).
    if (auto body_id = task_id_of(m.chord)) app.backend().store(failure_for(*body_id, failure));
  } catch (const std::exception& e) {
    spdlog::error("{}: chord part could not be failed: {}", where_of(m), e.what());
  }
  on_failure(app, m, failure, false);
}

ResultMeta with_children(ResultMeta meta, const Json& result, const Json& children) {
  meta.result = result;
  if (children.is_array()) meta.children = children;
  return meta;
}

}  // namespace celeriac::tq::detail::canvas
