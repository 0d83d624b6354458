// Lua scripts run with EVALSHA (SCRIPT LOAD on first use and after NOSCRIPT).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "celeriac/redis/connection.hpp"

namespace celeriac::redis {

/// One Lua script; its SHA1 is learned from SCRIPT LOAD and cached.
class Script {
 public:
  explicit Script(const char* text) : text_(text) {}
  /// Runs the script; error replies throw ReplyError.
  Reply run(Connection& c, const std::vector<std::string>& keys,
            const std::vector<std::string>& args);
  /// Appends an EVALSHA to a pipeline (call ensure_loaded() on the same
  /// connection first); the reply is NOSCRIPT only if the server lost it.
  void add_to(Pipeline& p, const std::vector<std::string>& keys,
              const std::vector<std::string>& args);
  /// SCRIPT LOAD unless this script's SHA is known.
  void ensure_loaded(Connection& c);
  /// Forgets the SHA (after NOSCRIPT) and loads again.
  void reload(Connection& c);

 private:
  std::vector<std::string> argv(const std::string& sha, const std::vector<std::string>& keys,
                                const std::vector<std::string>& args);
  const char* text_;
  std::mutex mu_;
  std::string sha_;
};

/// True for a NOSCRIPT error reply.
bool is_noscript(const Reply& r);

}  // namespace celeriac::redis
