// Rate limits as Celery writes them ("10/s", "100/m", "1000/h", a plain
// number = per second): TaskOptions::rate_limit (per worker) and
// TaskOptions::global_rate_limit (across every worker on the broker).
#pragma once

#include <string>
#include <string_view>

#include "celeriac/tq/control.hpp"
#include "celeriac/tq/json.hpp"

namespace celeriac::tq {

/// Tasks per second of a Celery rate string: "10/s", "100/m", "1000/h" or a
/// plain number (per second); "" and "0" mean no limit (0). Throws
/// ConfigError naming `what` and the text for anything else (a negative
/// number, an unknown unit, trailing characters).
double parse_rate(std::string_view text, std::string_view what = "rate limit");

/// Remote control's `rate_limit` command (arguments {"task_name", "rate_limit"},
/// the rate a string, a number or null as Celery's client sends it): calls
/// worker.rate_limit() and returns Celery's reply.
Json control_rate_limit(WorkerControl& worker, const Json& arguments);

}  // namespace celeriac::tq
