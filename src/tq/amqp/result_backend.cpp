#include "celeriac/tq/amqp/result_backend.hpp"

#include <condition_variable>
#include <map>
#include <mutex>

#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/amqp/detail/keepalive.hpp"
#include "celeriac/tq/amqp/detail/reply_routes.hpp"
#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::amqp {

using namespace std::chrono_literals;
using detail::Connection;
using detail::Endpoint;

struct RpcResultBackend::Impl {
  Url url;
  std::mutex pub_mu;  // worker side: store()
  std::unique_ptr<Connection> pub;
  std::mutex con_mu;  // client side: the reply queue
  std::unique_ptr<Connection> con;
  std::mutex cache_mu;
  std::map<std::string, ResultMeta, std::less<>> cache;
  std::uint64_t version = 0;
  bool closed = false;
  // Heartbeats while the client waits for nothing and the worker stores nothing.
  detail::Keepalive keeper{[this] {
    detail::keep_alive(pub_mu, pub);
    detail::keep_alive(con_mu, con);
  }};

  explicit Impl(const Url& u) : url(u) {}

  Endpoint endpoint() const {
    if (!url.host.empty()) return Endpoint::from_url(url);
    auto broker = detail::last_broker_url();
    if (!broker)
      throw BackendError(
          "result backend " + url.redacted() +
          ": rpc:// needs an amqp:// broker in this process, or the broker's address "
          "(rpc://user:pass@host:port/vhost)");
    return Endpoint::from_url(*broker);
  }

  void check_open() {
    if (closed) throw BackendError("result backend " + url.redacted() + " is closed");
  }

  // Opens the reply queue's consumer (no-ack: results are consumed once).
  void ensure_consumer() {
    if (con && con->is_open()) return;
    con = std::make_unique<Connection>(endpoint());
    con->open();
    con->declare_queue(detail::client_reply_queue(), detail::reply_queue_spec());
    con->consume(detail::client_reply_queue(), true);
  }

  // Reads replies for up to `timeout`; true when something arrived.
  bool pump(std::chrono::milliseconds timeout) {
    std::lock_guard lock(con_mu);
    check_open();
    try {
      ensure_consumer();
      auto r = con->next_delivery(timeout);
      if (!r) return false;
      bool any = false;
      for (; r; r = con->next_delivery(0ms)) {
        try {
          ResultMeta m = ResultMeta::from_json(r->message.body);
          if (m.task_id.empty()) m.task_id = r->message.correlation_id;
          std::lock_guard c(cache_mu);
          cache[m.task_id] = std::move(m);
          ++version;
          any = true;
        } catch (const MessageError&) {
          // not a result meta: ignored, as Celery's consumer does
        }
      }
      return any;
    } catch (const BrokerError& e) {
      con.reset();
      throw BackendError(std::string("rpc result backend: ") + e.what());
    }
  }

  std::optional<ResultMeta> cached(std::string_view id) {
    std::lock_guard c(cache_mu);
    auto it = cache.find(id);
    if (it == cache.end()) return std::nullopt;
    return it->second;
  }
};

RpcResultBackend::RpcResultBackend(const Url& url) : impl_(std::make_unique<Impl>(url)) {}

RpcResultBackend::~RpcResultBackend() {
  close();
}

std::string RpcResultBackend::url() const {
  return impl_->url.redacted();
}

bool RpcResultBackend::store(const ResultMeta& meta) {
  auto& im = *impl_;
  auto reply_to = detail::reply_to_of(meta.task_id, is_ready(meta.status));
  if (!reply_to) return false;  // no client waits for this one over rpc
  detail::Message m;
  m.body = meta.to_json();
  m.content_type = "application/json";
  m.content_encoding = "utf-8";
  m.correlation_id = meta.task_id;
  m.delivery_mode = 1;  // Celery's result_persistent default
  std::lock_guard lock(im.pub_mu);
  im.check_open();
  for (int attempt = 0;; ++attempt) {
    try {
      if (!im.pub || !im.pub->is_open()) {
        im.pub = std::make_unique<Connection>(im.endpoint());
        im.pub->open();
      }
      im.pub->publish("", *reply_to, m, false);
      return true;
    } catch (const BrokerError& e) {
      im.pub.reset();
      if (attempt >= 2) throw BackendError(std::string("rpc result backend: ") + e.what());
    }
  }
}

std::optional<ResultMeta> RpcResultBackend::get(std::string_view task_id) {
  impl_->pump(0ms);
  return impl_->cached(task_id);
}

std::optional<ResultMeta> RpcResultBackend::wait(std::string_view task_id,
                                                 std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto m = impl_->cached(task_id);
    if (m && is_ready(m->status)) return m;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return m;
    impl_->pump(std::min(left, std::chrono::milliseconds(100)));
  }
}

bool RpcResultBackend::wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) {
  {
    std::lock_guard c(impl_->cache_mu);
    if (impl_->version != *cursor) {
      *cursor = impl_->version;
      return true;
    }
  }
  impl_->pump(timeout);
  std::lock_guard c(impl_->cache_mu);
  bool changed = impl_->version != *cursor;
  *cursor = impl_->version;
  return changed;
}

void RpcResultBackend::forget(std::string_view task_id) {
  std::lock_guard c(impl_->cache_mu);
  if (auto it = impl_->cache.find(task_id); it != impl_->cache.end()) impl_->cache.erase(it);
}

std::chrono::seconds RpcResultBackend::expires() const {
  return std::chrono::seconds(86400);
}

void RpcResultBackend::close() {
  auto& im = *impl_;
  im.keeper.stop();
  {
    std::lock_guard lock(im.con_mu);
    if (im.closed) return;
    im.closed = true;
    im.con.reset();
  }
  std::lock_guard lock(im.pub_mu);
  im.pub.reset();
}

}  // namespace celeriac::tq::amqp
