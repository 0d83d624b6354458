// Task routes (Celery's task_routes): which queue a call goes to when the
// caller names none. Patterns (an exact task name or a glob such as
// "tasks.io.*") and router functions are checked in the order they were
// added; the first that answers wins.
#pragma once

#include <functional>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "celeriac/tq/json.hpp"

namespace celeriac::tq {

/// A router function: the queue for a call of task `name` with these
/// arguments, or nullopt to let the next route decide. An exception it
/// throws fails the call (nothing is sent).
using RouterFn = std::function<std::optional<std::string>(const std::string& name, const Json& args,
                                                          const Json& kwargs)>;

/// The ordered list of routes of an App. Thread-safe.
class Router {
 public:
  /// Routes tasks matching `pattern` (exact name or glob: `*`, `?`, `[...]`)
  /// to `queue`. Throws ConfigError for an empty pattern or queue.
  void add(std::string pattern, std::string queue);
  /// Adds a router function after the routes added so far. Throws
  /// ConfigError for an empty function.
  void add(RouterFn fn);
  /// The queue for a call, or nullopt when no route answers. Rethrows what
  /// a router function throws; throws ConfigError when one returns "".
  std::optional<std::string> route(const std::string& name, const Json& args,
                                   const Json& kwargs) const;
  /// Whether any route was added.
  bool empty() const;
  /// Glob patterns that match none of `task_names` (the worker warns about them).
  std::vector<std::string> unmatched_globs(const std::vector<std::string>& task_names) const;

 private:
  struct Entry {
    std::string pattern;  // empty for a router function
    bool glob = false;
    std::string queue;
    RouterFn fn;
  };
  mutable std::shared_mutex mu_;
  std::vector<Entry> entries_;
};

/// Whether `name` matches glob `pattern` (`*` any run, `?` one character,
/// `[...]` a set; dots are ordinary characters, as in Celery's glob routes).
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace celeriac::tq
