// Which workers a remote-control request addresses, as kombu's pidbox decides
// (kombu/pidbox.py handle_message, kombu/matcher.py).
#pragma once

#include <string>

#include "celeriac/tq/json.hpp"

namespace celeriac::tq::detail {

/// True when the request `req` (a pidbox message body) is for `hostname`:
/// a non-empty `destination` list must name it; otherwise, when both
/// `pattern` and `matcher` are set, the pattern must match: "glob" with
/// fnmatch, "pcre" as Python's re.match (a regular expression anchored at
/// the start only; ECMAScript syntax, close to Python's). A pattern that does
/// not compile selects nobody. Anything else selects every worker.
bool node_selected(const Json& req, const std::string& hostname);

}  // namespace celeriac::tq::detail
