// Dashboard: cpp-httplib server, event receiver thread, history flusher,
// authentication and the routes of Flower's REST API (see dashboard.hpp).
#include "celeriac/tq/dashboard.hpp"

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "assets.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/events.hpp"
#include "dashboard_routes.hpp"
#include "history.hpp"
#include "monitor_state.hpp"

namespace celeriac::tq {

namespace {

using namespace std::chrono_literals;

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string base64_decode_lenient(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    auto p = chars.find(c);
    if (p == std::string::npos) break;
    val = (val << 6) + static_cast<int>(p);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

}  // namespace

bool is_loopback_address(const std::string& a) {
  return a == "localhost" || a == "::1" || a.rfind("127.", 0) == 0;
}

struct Dashboard::Impl {
  App& app;
  DashboardOptions opt;
  detail::MonitorState state;
  std::unique_ptr<detail::TaskHistory> history;
  httplib::Server server;
  int bound_port = 0;
  std::thread listener, receiver_thread, flusher;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_set<std::string> dirty;  // ids of tasks to persist
  detail::UpdateFeed feed;                // for the live pages (SSE)
  std::atomic<std::uint64_t> receiver_malformed{0};

  Impl(App& a, DashboardOptions o)
      : app(a), opt(std::move(o)), state(detail::StateLimits{opt.max_tasks}) {}

  bool authorized(const httplib::Request& req) const {
    if (opt.auth_token.empty()) return true;
    std::string h = req.get_header_value("Authorization");
    if (h.rfind("Bearer ", 0) == 0) return constant_time_equal(h.substr(7), opt.auth_token);
    if (h.rfind("Basic ", 0) == 0) {
      std::string up = base64_decode_lenient(h.substr(6));
      auto colon = up.find(':');
      return colon != std::string::npos &&
             constant_time_equal(up.substr(colon + 1), opt.auth_token);
    }
    return false;
  }

  // Actions come from our own pages or from non-browser clients: a browser
  // request from another site carries an Origin (or Sec-Fetch-Site) that
  // does not match this server.
  static bool same_site(const httplib::Request& req) {
    std::string site = req.get_header_value("Sec-Fetch-Site");
    if (!site.empty() && site != "same-origin" && site != "none") return false;
    std::string origin = req.get_header_value("Origin");
    if (origin.empty()) return true;
    return origin == "http://" + req.get_header_value("Host");
  }

  void receive_loop() {
    std::unique_ptr<EventReceiver> rx;
    while (!stopping) {
      try {
        if (!rx) rx = make_event_receiver(app.config().broker_url);
        for (auto& e : rx->poll(200ms)) {
          if (auto id = state.apply(e)) {
            feed.push(*id);
            std::lock_guard lk(mu);
            dirty.insert(std::move(*id));
          }
        }
        receiver_malformed = rx->malformed();
      } catch (const std::exception& e) {
        spdlog::warn("dashboard: receiving events: {} (reconnecting)", e.what());
        rx.reset();  // broker away: reconnect after a pause
        std::unique_lock lk(mu);
        cv.wait_for(lk, 1s, [&] { return stopping.load(); });
      }
    }
  }

  void flush_history() {
    std::unordered_set<std::string> ids;
    {
      std::lock_guard lk(mu);
      ids.swap(dirty);
    }
    if (ids.empty() || !history) return;
    std::unordered_map<std::string, Json> batch;
    for (auto& id : ids)
      if (auto t = state.record(id)) batch.emplace(id, std::move(*t));
    history->save(batch);
  }

  void flush_loop() {
    std::unique_lock lk(mu);
    while (!stopping) {
      cv.wait_for(lk, 1s, [&] { return stopping.load(); });
      lk.unlock();
      try {
        flush_history();
      } catch (const std::exception&) {
        // the history file is unwritable for now; the next round retries
      }
      lk.lock();
    }
  }

  void install_routes() {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req)) {
        res.status = 401;
        res.set_header("WWW-Authenticate", "Basic realm=\"celeriac dashboard\"");
        res.set_content("{\"error\": \"authentication required\"}", "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.method == "POST" && !same_site(req)) {
        res.status = 403;
        res.set_content("{\"error\": \"cross-site request refused\"}", "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    for (const auto& a : detail::dashboard_assets()) {
      std::string path(a.path), type(a.content_type);
      std::string body(a.data, a.size);
      auto serve = [body, type](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-cache");
        res.set_content(body, type.c_str());
      };
      server.Get(path, serve);
      if (path == "/index.html") server.Get("/", serve);
    }
    detail::RouteContext ctx{app, state, feed, stopping,
                             [this] { return receiver_malformed.load(); }};
    detail::install_api_routes(server, ctx);
  }
};

Dashboard::Dashboard(App& app, DashboardOptions options)
    : impl_(std::make_unique<Impl>(app, std::move(options))) {
  auto& o = impl_->opt;
  if (!is_loopback_address(o.address) && o.auth_token.empty())
    throw ConfigError("refusing to serve the dashboard on " + o.address +
                      " without --auth-token: only loopback addresses (127.0.0.1, ::1) may go "
                      "without one");
  if (o.port < 0 || o.port > 65535)
    throw ConfigError("dashboard port " + std::to_string(o.port) + " is not in 0..65535");
}

Dashboard::~Dashboard() {
  stop();
}

void Dashboard::start() {
  Impl& s = *impl_;
  if (!s.opt.history_path.empty()) {
    s.history =
        std::make_unique<detail::TaskHistory>(s.opt.history_path, s.opt.max_tasks, s.opt.max_age);
    for (auto& t : s.history->load()) s.state.restore_task(t);
  }
  s.install_routes();
  s.server.set_keep_alive_max_count(100);
  if (s.opt.port == 0) {
    s.bound_port = s.server.bind_to_any_port(s.opt.address);
  } else {
    s.bound_port = s.server.bind_to_port(s.opt.address, s.opt.port) ? s.opt.port : -1;
  }
  if (s.bound_port < 0)
    throw ConfigError("dashboard cannot listen on " + s.opt.address + ":" +
                      std::to_string(s.opt.port) + " (in use or not a local address)");
  s.listener = std::thread([&s] { s.server.listen_after_bind(); });
  s.receiver_thread = std::thread([&s] { s.receive_loop(); });
  s.flusher = std::thread([&s] { s.flush_loop(); });
}

void Dashboard::stop() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  s.cv.notify_all();
  s.feed.close();
  s.server.stop();
  if (s.listener.joinable()) s.listener.join();
  if (s.receiver_thread.joinable()) s.receiver_thread.join();
  if (s.flusher.joinable()) s.flusher.join();
  try {
    s.flush_history();
  } catch (const std::exception&) {
    // nothing more can be saved
  }
}

int Dashboard::port() const noexcept {
  return impl_->bound_port;
}

std::uint64_t Dashboard::events_seen() const {
  return impl_->state.events_seen();
}

std::uint64_t Dashboard::malformed_events() const {
  return impl_->state.malformed() + impl_->receiver_malformed.load();
}

}  // namespace celeriac::tq
