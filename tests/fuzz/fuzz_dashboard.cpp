// Fuzz target: what the dashboard reads from outside: the events it folds
// (src/tq/monitor/monitor_state.cpp, from any worker on the broker) and the
// query parameters of Flower's /api/tasks (a URL from any HTTP client). The
// input's first line is a query string, parsed as cpp-httplib parses it;
// every further line is one event (JSON). Properties: apply() never throws
// and leaves the state usable; a bad parameter is a ConfigError naming it;
// the task list honours the limit; /metrics stays valid Prometheus text
// whatever the events' names and hosts hold.
#include <httplib.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "fuzz_check.hpp"
#include "monitor_state.hpp"

using namespace celeriac::tq;
using celeriac::fuzz::check;

namespace {

bool name_char(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
         (!first && std::isdigit(static_cast<unsigned char>(c)));
}

// One sample line: name{label="value",...} number
bool valid_sample(std::string_view l) {
  std::size_t i = 0;
  if (i == l.size() || !name_char(l[i], true)) return false;
  while (i < l.size() && name_char(l[i], false)) ++i;
  if (i < l.size() && l[i] == '{') {
    ++i;
    while (i < l.size() && l[i] != '}') {
      if (!name_char(l[i], true)) return false;
      while (i < l.size() && name_char(l[i], false)) ++i;
      if (l.substr(i, 2) != "=\"") return false;
      for (i += 2; i < l.size() && l[i] != '"'; ++i)
        if (l[i] == '\\' && (++i == l.size() || (l[i] != '\\' && l[i] != '"' && l[i] != 'n')))
          return false;
      if (i++ == l.size()) return false;
      if (i < l.size() && l[i] == ',') ++i;
    }
    if (i++ == l.size()) return false;
  }
  if (i == l.size() || l[i++] != ' ') return false;
  std::string value(l.substr(i));
  if (value == "+Inf" || value == "-Inf" || value == "NaN") return true;
  char* end = nullptr;
  std::strtod(value.c_str(), &end);
  return !value.empty() && end == value.c_str() + value.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string query;
  std::getline(in, query);
  detail::MonitorState state(detail::StateLimits{64});
  for (std::string line; std::getline(in, line);) {
    Json event;
    try {
      event = loads(line);
    } catch (const MessageError&) {
      state.count_malformed(1);
      continue;
    }
    if (auto id = state.apply(event))
      check(state.record(*id).has_value(), "a changed task has no record");
  }
  httplib::Params params;
  httplib::detail::parse_query_text(query, params);
  try {
    auto q = detail::task_query_from(params);
    Json tasks = state.tasks(q);
    check(tasks.is_array(), "the task list is not an array");
    check(q.limit == 0 || tasks.size() <= q.limit, "the task list is longer than its limit");
    for (const auto& t : tasks) (void)state.task(t["uuid"].get<std::string>());
  } catch (const ConfigError& e) {
    check(std::string_view(e.what()).find("parameter '") != std::string_view::npos,
          "a bad parameter's error does not name it");
  }
  (void)state.workers();
  (void)state.series();
  (void)state.runtime_percentiles();
  std::istringstream metrics(state.metrics());
  for (std::string line; std::getline(metrics, line);)
    if (line.rfind("# ", 0) != 0)
      check(valid_sample(line), "a /metrics line is not valid Prometheus text");
  return 0;
}
