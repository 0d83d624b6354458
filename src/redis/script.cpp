#include "celeriac/redis/script.hpp"

#include "celeriac/redis/errors.hpp"

namespace celeriac::redis {

bool is_noscript(const Reply& r) {
  return r.is_error() && r.str().rfind("NOSCRIPT", 0) == 0;
}

std::vector<std::string> Script::argv(const std::string& sha, const std::vector<std::string>& keys,
                                      const std::vector<std::string>& args) {
  std::vector<std::string> a;
  a.reserve(3 + keys.size() + args.size());
  a.push_back("EVALSHA");
  a.push_back(sha);
  a.push_back(std::to_string(keys.size()));
  a.insert(a.end(), keys.begin(), keys.end());
  a.insert(a.end(), args.begin(), args.end());
  return a;
}

void Script::ensure_loaded(Connection& c) {
  {
    std::lock_guard lk(mu_);
    if (!sha_.empty()) return;
  }
  reload(c);
}

void Script::reload(Connection& c) {
  std::string sha = c.command({"SCRIPT", "LOAD", text_}).str();
  std::lock_guard lk(mu_);
  sha_ = sha;
}

void Script::add_to(Pipeline& p, const std::vector<std::string>& keys,
                    const std::vector<std::string>& args) {
  std::string sha;
  {
    std::lock_guard lk(mu_);
    sha = sha_;
  }
  p.add(argv(sha, keys, args));
}

Reply Script::run(Connection& c, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args) {
  ensure_loaded(c);
  for (int attempt = 0;; ++attempt) {
    Pipeline p;
    add_to(p, keys, args);
    Reply r = std::move(c.execute(p)[0]);
    if (is_noscript(r) && attempt == 0) {
      reload(c);  // the server restarted or SCRIPT FLUSHed
      continue;
    }
    if (r.is_error()) throw ReplyError("Redis " + c.describe() + ": Lua script: " + r.str());
    return r;
  }
}

}  // namespace celeriac::redis
