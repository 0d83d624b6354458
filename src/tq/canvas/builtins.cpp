// Celery's built-in canvas tasks (celery/app/builtins.py) that travel on the
// wire: celery.map, celery.starmap, celery.accumulate and
// celery.backend_cleanup, registered on first use by a worker that receives
// one, so Python clients' xmap/xstarmap/chunks run on C++ workers.
#include "builtins.hpp"

#include <mutex>

#include "apply.hpp"
#include "celeriac/tq/signature.hpp"

namespace celeriac::tq::detail::canvas {

namespace {

// Runs the task of signature `sig` here, in this process (Celery's
// `signature(task).type(*args)`), with `args` prepended to the signature's.
Json run_inline(Context& ctx, const Json& sig, const Json& args) {
  validate(sig, "celery.map task");
  const std::string name = sig.at("task").get<std::string>();
  const TaskDef* def = ctx.app().find_task(name);
  if (!def) throw not_registered(name);
  Json all = args;
  for (const auto& a : sig.value("args", Json::array())) all.push_back(a);
  TaskMessage m = ctx.message();
  m.task = name;
  m.args = all;
  m.kwargs = sig.value("kwargs", Json::object());
  Context inner(ctx.app(), *def, m, ctx.hostname());
  return def->run(inner, m.args, m.kwargs);
}

Json map_items(Context& ctx, const Json& task, const Json& it, bool star) {
  if (!it.is_array()) throw type_error("celery.map: 'it' must be a list, got " + dumps(it));
  Json out = Json::array();
  for (const auto& item : it) {
    if (star && !item.is_array())
      throw type_error("celery.starmap: every item must be a list of arguments, got " +
                       dumps(item));
    out.push_back(run_inline(ctx, task, star ? item : Json::array({item})));
  }
  return out;
}

TaskDef make(const std::string& name) {
  TaskDef def;
  def.name = name;
  if (name == "celery.map" || name == "celery.starmap") {
    const bool star = name == "celery.starmap";
    def.params = {"task", "it"};
    def.run = [star](Context& ctx, const Json& args, const Json& kwargs) {
      auto v = bind_arguments(star ? "celery.starmap" : "celery.map", {"task", "it"}, args, kwargs);
      return map_items(ctx, *v[0], *v[1], star);
    };
  } else if (name == "celery.accumulate") {
    def.run = [](Context&, const Json& args, const Json& kwargs) -> Json {
      if (kwargs.contains("index") && kwargs["index"].is_number_integer()) {
        long long i = kwargs["index"].get<long long>();
        if (i < 0 || i >= static_cast<long long>(args.size()))
          throw TaskError("IndexError", "builtins", "celery.accumulate: index out of range");
        return args[static_cast<std::size_t>(i)];
      }
      return args;
    };
  } else if (name == "celery.backend_cleanup") {
    def.run = [](Context& ctx, const Json&, const Json&) -> Json {
      ctx.app().backend().cleanup();
      return nullptr;
    };
  }
  return def;
}

}  // namespace

const TaskDef* builtin_task(App& app, std::string_view name) {
  if (name != "celery.map" && name != "celery.starmap" && name != "celery.accumulate" &&
      name != "celery.backend_cleanup")
    return nullptr;
  static std::mutex mu;  // two workers' threads may meet the first one together
  std::lock_guard lock(mu);
  if (const TaskDef* def = app.find_task(name)) return def;
  return &app.register_task(make(std::string(name)));
}

}  // namespace celeriac::tq::detail::canvas
