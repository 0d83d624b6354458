#include "celeriac/tq/detail/node_match.hpp"

#include <fnmatch.h>

#include <regex>

namespace celeriac::tq::detail {

namespace {

const std::string* string_field(const Json& req, const char* key) {
  auto it = req.find(key);
  return it != req.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
}

bool pattern_matches(const std::string& hostname, const std::string& pattern,
                     const std::string& matcher) {
  if (matcher == "pcre") {
    try {
      // re.match: anchored at the start, not at the end.
      return std::regex_search(hostname, std::regex(pattern),
                               std::regex_constants::match_continuous);
    } catch (const std::regex_error&) {
      return false;
    }
  }
  if (matcher == "glob") return ::fnmatch(pattern.c_str(), hostname.c_str(), 0) == 0;
  return false;  // kombu raises MatcherNotInstalled: no worker answers
}

}  // namespace

bool node_selected(const Json& req, const std::string& hostname) {
  if (auto d = req.find("destination"); d != req.end() && d->is_array() && !d->empty()) {
    for (auto& n : *d)
      if (n.is_string() && n.get<std::string>() == hostname) return true;
    return false;
  }
  const std::string* pattern = string_field(req, "pattern");
  const std::string* matcher = string_field(req, "matcher");
  if (pattern && !pattern->empty() && matcher && !matcher->empty())
    return pattern_matches(hostname, *pattern, *matcher);
  return true;
}

}  // namespace celeriac::tq::detail
