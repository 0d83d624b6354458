// Applying a Celery signature dict (task, chain, group, chord) the way
// celery/canvas.py does: the messages it publishes, with ids frozen up
// front, chain steps embedded reversed, group members tagged, chord sizes
// recorded. Shared by the C++ client API (Signature::apply_async) and the
// worker (callbacks, next chain step, chord body).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "celeriac/tq/app.hpp"

namespace celeriac::tq::detail::canvas {

/// How a signature is applied.
struct Apply {
  Json partial_args = Json::array();     ///< prepended to args unless immutable
  std::optional<std::string> parent_id;  ///< headers.parent_id of what is sent
  std::optional<std::string> root_id;    ///< headers.root_id (none = own id)
  Json chain;                            ///< remaining chain steps (reversed) to embed, or null
  Json extra_options = Json::object();   ///< merged over the signature's options
};

/// The kind of a signature dict: "task", "chain", "group" or "chord".
std::string kind_of(const Json& sig);

/// Checks that `sig` is a well-formed signature dict (recursively); throws
/// SignatureError naming `where` and the field that is wrong.
void validate(const Json& sig, const std::string& where);

/// Gives every task of `sig` an options.task_id (Celery's freeze); returns
/// the id to wait on (a chain's last, a chord's body, a group's group id).
std::string freeze(Json& sig);

/// Appends the messages that applying `sig` publishes to `out` (a chord
/// also records its size in the app's backend). Returns the id to wait on.
std::string build(App& app, const Json& sig, const Apply& how, std::vector<TaskMessage>& out);

/// build() then one publish_many(). Returns the id to wait on.
std::string apply(App& app, const Json& sig, const Apply& how);

/// Python's repr of a stored exception {exc_type, exc_message}: "ValueError('x')".
std::string repr_exception(const Json& exc);

}  // namespace celeriac::tq::detail::canvas
