// Signature: one task call described as data (Celery's `add.s(2, 2)`), the
// unit of canvas workflows. It serializes to Celery's signature dict
// {task, args, kwargs, options, subtask_type, immutable}, so workflows built
// in C++ run on Python workers and the other way round. See docs/tq-canvas.md.
#pragma once

#include <string>
#include <vector>

#include "celeriac/tq/async_result.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/group_result.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/task.hpp"

namespace celeriac::tq {

class App;

/// A malformed signature dict or canvas (names the field that is wrong).
class SignatureError : public Error {
 public:
  using Error::Error;
};

/// A task call as data; also the base of chains, groups and chords, which
/// are signatures of the built-in tasks celery.chain/group/chord.
class Signature {
 public:
  /// An empty signature (no task).
  Signature() = default;
  /// Task `task` with positional `args` (array) and `kwargs` (object).
  explicit Signature(std::string task, Json args = Json::array(), Json kwargs = Json::object());
  /// Parses and validates Celery's signature dict; throws SignatureError.
  static Signature from_json(const Json& dict);

  /// Celery's signature dict.
  const Json& to_json() const noexcept { return dict_; }
  /// The task name ("celery.chain", "celery.group", "celery.chord" for those).
  std::string task() const;
  /// Positional arguments.
  const Json& args() const { return dict_.at("args"); }
  /// Keyword arguments.
  const Json& kwargs() const { return dict_.at("kwargs"); }
  /// Options (task_id, queue, priority, countdown, link, link_error, ...).
  const Json& options() const { return dict_.at("options"); }
  /// "" for a task, else "chain", "group" or "chord".
  std::string subtask_type() const;
  /// Whether the parent's result is not prepended to the args.
  bool immutable() const { return dict_.value("immutable", false); }
  /// The frozen task id (options.task_id), or "".
  std::string id() const;

  /// Sets call options (queue, priority, countdown, eta, expires, task_id, ...).
  Signature& set(const CallOptions& options);
  /// Sets one raw option (Celery's sig.set(key=value)).
  Signature& set_option(const std::string& key, Json value);
  /// Makes the signature immutable (`si`) or not.
  Signature& set_immutable(bool immutable = true);
  /// A copy (Celery's clone()); the copy keeps the app binding.
  Signature clone() const { return *this; }
  /// Adds a callback run with this task's result (options.link).
  Signature& link(const Signature& callback);
  /// Adds an errback run with the failed task's id (options.link_error).
  Signature& link_error(const Signature& errback);
  /// Gives every task an id (Celery's freeze()); returns the id to wait on.
  std::string freeze();

  /// Binds the app that delay()/apply_async() publish with.
  Signature& bind(App& app) {
    app_ = &app;
    return *this;
  }
  /// The bound app, or nullptr.
  App* app() const noexcept { return app_; }
  /// Sends it (a chain: its first step; a chord: its header); returns the
  /// result to wait on (a chain's last task, a chord's body, a group's
  /// last member). Throws SignatureError without a bound app.
  AsyncResult<Json> apply_async(Json partial_args = Json::array(),
                                const CallOptions& options = {}) const;
  /// apply_async() with no extra arguments.
  AsyncResult<Json> delay() const { return apply_async(); }

 private:
  Json dict_;
  App* app_ = nullptr;
};

/// A chain of `steps` (Celery's chain(...)): each result is the first
/// argument of the next step. A group followed by a step becomes a chord.
Signature chain(std::vector<Signature> steps);
/// `a | b`: a chain (flattened when either side is one); `group | b` is a chord.
Signature operator|(const Signature& a, const Signature& b);
/// A group signature; apply_async() gives its GroupResult.
class Group : public Signature {
 public:
  /// Wraps a group signature (throws SignatureError for anything else).
  explicit Group(Signature sig);
  /// Sends every member; their results.
  GroupResult apply_async(Json partial_args = Json::array(), const CallOptions& options = {}) const;
  /// apply_async() with no extra arguments.
  GroupResult delay() const { return apply_async(); }
};

/// Celery's group(...): the members run in parallel.
Group group(std::vector<Signature> members);
/// Celery's xmap: one task (celery.map) calling `task` on each element of
/// `items` in the worker, returning the list of results.
Signature map(const Signature& task, Json items);
/// Celery's xstarmap: like map(), each element being a list of arguments.
Signature starmap(const Signature& task, Json items);
/// Celery's chunks: `items` (lists of arguments) split into parts of `n`,
/// each part one celery.starmap task, all in one group.
Group chunks(const Signature& task, Json items, std::size_t n);

/// Celery's chord(header, body): body runs with the list of header results.
Signature chord(const Signature& header, const Signature& body);
/// Celery's chord(header, body) with the header as a list of members.
Signature chord(std::vector<Signature> header, const Signature& body);

}  // namespace celeriac::tq
