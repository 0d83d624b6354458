// Helpers of the monitoring tests: an HTTP client for the dashboard and a
// bounded wait for conditions that have no notification of their own.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "celeriac/tq/json.hpp"

namespace celeriac::tq::test {

/// Re-checks `ready` until it holds or `timeout` passes (HTTP state and
/// other processes give no notification); returns the last result.
inline bool eventually(const std::function<bool()>& ready,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ready();
}

/// GET `path` from 127.0.0.1:`port`; {status, body} (status -1 when unreachable).
inline std::pair<int, std::string> http_get(int port, const std::string& path,
                                            const httplib::Headers& headers = {}) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  auto r = c.Get(path.c_str(), headers);
  if (!r) return {-1, ""};
  return {r->status, r->body};
}

/// POST `path` (empty body).
inline std::pair<int, std::string> http_post(int port, const std::string& path,
                                             const httplib::Headers& headers = {}) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  auto r = c.Post(path.c_str(), headers, "", "application/x-www-form-urlencoded");
  if (!r) return {-1, ""};
  return {r->status, r->body};
}

/// GET `path` as JSON (null when not 200 or not JSON).
inline Json get_json(int port, const std::string& path) {
  auto [status, body] = http_get(port, path);
  if (status != 200) return Json();
  try {
    return loads(body);
  } catch (const std::exception&) {
    return Json();
  }
}

}  // namespace celeriac::tq::test
