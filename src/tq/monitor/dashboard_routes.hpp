// The dashboard's HTTP routes (Flower's REST API, /metrics, /healthcheck,
// the live feed) and the feed of task updates the pages stream.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "celeriac/tq/json.hpp"
#include "monitor_state.hpp"

namespace httplib {
class Server;
}

namespace celeriac::tq {
class App;
}

namespace celeriac::tq::detail {

/// Recent task updates for the live pages: a bounded log with sequence numbers.
class UpdateFeed {
 public:
  /// Notes that task `id` changed.
  void push(std::string id);
  /// Ids changed after `seq` (advanced), waiting up to `timeout` for one; at most the newest 200.
  std::vector<std::string> wait(std::uint64_t& seq, std::chrono::milliseconds timeout);
  /// Waits until `deadline` or close(), whichever comes first; true when closed.
  bool closed_by(std::chrono::steady_clock::time_point deadline);
  /// Wakes every waiter for good.
  void close();
  /// True once closed.
  bool closed() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::uint64_t, std::string>> log_;
  std::uint64_t last_ = 0;
  bool closed_ = false;
};

/// What the routes use.
struct RouteContext {
  App& app;                                           ///< broker, backend, publishing
  MonitorState& state;                                ///< events folded
  UpdateFeed& feed;                                   ///< live task updates
  std::atomic<bool>& stopping;                        ///< the server is stopping
  std::function<std::uint64_t()> receiver_malformed;  ///< undecodable messages so far
};

/// Adds the API, metrics, health and stream routes to `server`.
void install_api_routes(httplib::Server& server, RouteContext ctx);

}  // namespace celeriac::tq::detail
