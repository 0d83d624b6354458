#include "celeriac/tq/routes.hpp"

#include <fnmatch.h>

#include <mutex>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {

namespace {
bool is_glob(const std::string& p) {
  return p.find_first_of("*?[") != std::string::npos;
}
}  // namespace

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

void Router::add(std::string pattern, std::string queue) {
  if (pattern.empty()) throw ConfigError("route: the task pattern must not be empty");
  if (queue.empty()) throw ConfigError("route '" + pattern + "': the queue must not be empty");
  Entry e;
  e.glob = is_glob(pattern);
  e.pattern = std::move(pattern);
  e.queue = std::move(queue);
  std::unique_lock lock(mu_);
  entries_.push_back(std::move(e));
}

void Router::add(RouterFn fn) {
  if (!fn) throw ConfigError("route: the router function is empty");
  Entry e;
  e.fn = std::move(fn);
  std::unique_lock lock(mu_);
  entries_.push_back(std::move(e));
}

bool Router::empty() const {
  std::shared_lock lock(mu_);
  return entries_.empty();
}

std::optional<std::string> Router::route(const std::string& name, const Json& args,
                                         const Json& kwargs) const {
  std::shared_lock lock(mu_);
  for (const Entry& e : entries_) {
    if (e.fn) {
      std::optional<std::string> q = e.fn(name, args, kwargs);
      if (!q) continue;
      if (q->empty())
        throw ConfigError("router function returned an empty queue for task '" + name + "'");
      return q;
    }
    if (e.glob ? glob_match(e.pattern, name) : e.pattern == name) return e.queue;
  }
  return std::nullopt;
}

std::vector<std::string> Router::unmatched_globs(const std::vector<std::string>& names) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (const Entry& e : entries_) {
    if (!e.glob) continue;
    bool hit = false;
    for (const auto& n : names) hit = hit || glob_match(e.pattern, n);
    if (!hit) out.push_back(e.pattern);
  }
  return out;
}

}  // namespace celeriac::tq
