#include "celeriac/tq/amqp/broker.hpp"

#include <poll.h>

#include <charconv>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <spdlog/spdlog.h>

#include "celeriac/tq/amqp/detail/codec.hpp"
#include "celeriac/tq/amqp/detail/confirm_window.hpp"
#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/amqp/detail/keepalive.hpp"
#include "celeriac/tq/amqp/detail/layout.hpp"
#include "celeriac/tq/amqp/detail/reply_routes.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq::amqp {

using namespace std::chrono_literals;
using detail::Connection;
using detail::Endpoint;
using detail::Received;

namespace {

long long int_param(const Url& url, const char* key, long long fallback, long long lo,
                    long long hi) {
  std::string v = url.param(key);
  if (v.empty()) return fallback;
  long long out = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), out);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || out < lo || out > hi)
    throw ConfigError("bad AMQP URL '" + url.redacted() + "': " + key + "='" + v +
                      "' is not an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "]");
  return out;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string tag_text(std::uint64_t generation, std::uint64_t tag) {
  return std::to_string(generation) + ":" + std::to_string(tag);
}

bool parse_tag(const std::string& text, std::uint64_t* generation, std::uint64_t* tag) {
  auto colon = text.find(':');
  if (colon == std::string::npos) return false;
  auto a = std::from_chars(text.data(), text.data() + colon, *generation);
  auto b = std::from_chars(text.data() + colon + 1, text.data() + text.size(), *tag);
  return a.ec == std::errc() && b.ec == std::errc();
}

}  // namespace

BrokerOptions BrokerOptions::from_url(const Url& url) {
  BrokerOptions o;
  if (!url.param("max_priority").empty())
    o.max_priority = static_cast<int>(int_param(url, "max_priority", 0, 1, 255));
  o.prefetch_count = static_cast<std::uint16_t>(int_param(url, "prefetch_count", 0, 0, 65535));
  o.eta_hold_limit = std::chrono::seconds(int_param(url, "eta_hold_limit", 900, 0, 86400 * 365));
  o.confirm_timeout = std::chrono::seconds(int_param(url, "confirm_timeout", 30, 1, 3600));
  o.connect_timeout = std::chrono::seconds(int_param(url, "connect_timeout", 4, 1, 600));
  o.publish_window = static_cast<std::size_t>(int_param(url, "publish_window", 256, 0, 65535));
  return o;
}

struct AmqpBroker::Impl {
  Url url;
  BrokerOptions opts;
  std::atomic<bool> closed{false};

  // Publishing side (confirm mode).
  std::mutex pub_mu;
  Connection pub;
  detail::Declarations pub_declared;
  detail::ConfirmWindow window;  // publishes on `pub` not yet confirmed
  std::string pub_failures;      // the confirmer's errors, for the next caller
  std::condition_variable confirmer_cv;
  bool confirmer_stop = false;
  std::thread confirmer;  // started by the first windowed publish

  // Consuming side.
  std::mutex con_mu;
  Connection con;
  detail::Declarations con_declared;
  std::map<std::string, std::string> consumer_queue;  // consumer tag -> queue
  std::set<std::string> consumed;                     // queues with a consumer
  std::uint16_t prefetch = 0;
  std::unordered_set<std::uint64_t> outstanding;  // handed-out tags of this generation

  // Heartbeats for both connections while nobody uses them; declared last so
  // it stops before the connections go.
  std::unique_ptr<detail::Keepalive> keeper;

  explicit Impl(const Url& u)
      : url(u), opts(BrokerOptions::from_url(u)), pub(endpoint(u, opts)), con(endpoint(u, opts)) {}

  static Endpoint endpoint(const Url& u, const BrokerOptions& o) {
    Endpoint e = Endpoint::from_url(u);
    e.connect_timeout = o.connect_timeout;
    return e;
  }

  void check_open() const {
    if (closed) throw BrokerError("AMQP broker " + url.redacted() + " is closed");
  }

  // Runs `op` on the publishing connection (pub_mu held), reconnecting with
  // backoff when the connection (not the broker's answer) failed; the
  // unconfirmed publishes of a dead connection are published again first.
  template <class Op>
  auto with_publisher_locked(Op&& op) {
    auto backoff = 200ms;
    for (int attempt = 0;; ++attempt) {
      check_open();
      try {
        if (!pub.is_open()) {
          pub.open();
          pub.enable_confirms();
          pub_declared.clear();
        }
        window.republish(pub);
        return op();
      } catch (const BrokerError& e) {
        if (pub.is_open()) throw;
        if (attempt >= 3 || pub.refused()) give_up(e);  // a refusal is final
        spdlog::warn("{}; reconnecting in {} ms", e.what(), backoff.count());
        std::this_thread::sleep_for(backoff);
        backoff *= 2;
      }
    }
  }

  template <class Op>
  auto with_publisher(Op&& op) {
    std::lock_guard lock(pub_mu);
    return with_publisher_locked(op);
  }

  [[noreturn]] void give_up(const BrokerError& e) {
    std::string ids = window.drop_all();
    if (ids.empty()) throw e;
    throw BrokerError(std::string(e.what()) + " (not known to be published: tasks " + ids + ")");
  }

  // Reads confirms until at most `keep` publishes are unconfirmed; when the
  // broker does not confirm within confirm_timeout, the waiting ones are
  // reported and forgotten (their late confirms match nothing).
  void settle(std::size_t keep) {
    if (window.settle(pub, keep, opts.confirm_timeout)) return;
    std::string ids = window.drop_all();
    throw BrokerError("AMQP broker " + url.redacted() + ": publishes not confirmed within " +
                      std::to_string(opts.confirm_timeout.count()) +
                      " s (not known to be published: tasks " + ids + ")");
  }

  // Reports refusals and confirmer errors collected so far.
  void throw_refused(const char* what) {
    std::string r = window.take_refused();
    if (!pub_failures.empty()) r += (r.empty() ? "" : "; ") + std::exchange(pub_failures, {});
    if (!r.empty()) throw BrokerError("AMQP broker " + url.redacted() + " " + what + ": " + r);
  }

  void declare_reply_queue() {
    if (pub_declared.count(detail::client_reply_queue())) return;
    // Results may come back before the client starts consuming.
    pub.declare_queue(detail::client_reply_queue(), detail::reply_queue_spec());
    pub_declared.emplace(detail::client_reply_queue());
  }

  detail::Message to_message(const Outgoing& o) {
    try {
      auto m = detail::envelope_to_message(o.envelope, detail::to_amqp_priority(o.priority));
      // As Celery: every task names this process's reply queue (rpc://).
      if (m.reply_to.empty()) m.reply_to = detail::client_reply_queue();
      return m;
    } catch (const MessageError& e) {
      throw BrokerError("cannot publish to AMQP queue '" + o.queue + "': " + e.what());
    }
  }

  // One message, confirmed later (publish_window).
  void publish_windowed(const Outgoing& o) {
    detail::Message m = to_message(o);
    std::unique_lock lock(pub_mu);
    check_open();
    if (!confirmer.joinable() && !confirmer_stop)
      confirmer = std::thread([this] { confirmer_loop(); });
    with_publisher_locked([&] {
      declare_reply_queue();
      if (window.size() >= opts.publish_window)
        settle(opts.publish_window / 2);  // full: wait for the older half
      else if (window.size() >= opts.publish_window / 4)
        window.settle(pub, 0, 0ms);  // collect what has arrived, in bulk
      throw_refused("refused an earlier publish");
      detail::declare_task_queue(pub, pub_declared, o.queue, opts.max_priority);
      window.publish(pub, "", o.queue, std::move(m));
    });
    if (window.size() == 1) confirmer_cv.notify_one();
  }

  // Publishes `count` messages (`next(i)` declares what message i needs and
  // returns {exchange, routing key, &message}; the message is taken only once
  // written, so a retry can ask again) and waits for every confirm,
  // earlier windowed publishes' included. Refusals throw, naming the tasks.
  template <class Next>
  void publish_confirmed(std::size_t count, Next next) {
    std::lock_guard lock(pub_mu);
    std::size_t done = 0;  // a retry after a reconnect skips what the window holds
    with_publisher_locked([&] {
      settle(0);
      throw_refused("refused an earlier publish");
      for (; done < count; ++done) {
        auto [exchange, key, m] = next(done);
        window.publish(pub, std::move(exchange), std::move(key), std::move(*m));
      }
      settle(0);
    });
    throw_refused("refused a publish");
  }

  void publish_batch(std::span<const Outgoing> messages) {
    std::vector<detail::Message> converted;
    converted.reserve(messages.size());
    for (auto& o : messages) converted.push_back(to_message(o));
    publish_confirmed(messages.size(), [&](std::size_t i) {
      declare_reply_queue();
      detail::declare_task_queue(pub, pub_declared, messages[i].queue, opts.max_priority);
      return std::tuple(std::string(), messages[i].queue, &converted[i]);
    });
  }

  // Confirms what publishers left unconfirmed for ~2 ms; errors are kept for
  // the next caller, as refusals are.
  void confirmer_loop() {
    std::unique_lock lock(pub_mu);
    while (!confirmer_stop) {
      confirmer_cv.wait(lock, [&] { return confirmer_stop || window.size() > 0; });
      if (confirmer_stop) break;
      confirmer_cv.wait_for(lock, 2ms, [&] { return confirmer_stop; });
      if (confirmer_stop || closed || window.size() == 0) continue;  // close() confirms
      try {
        with_publisher_locked([&] { settle(0); });
      } catch (const std::exception& e) {
        if (closed) continue;
        spdlog::error("{}", e.what());
        pub_failures += (pub_failures.empty() ? "" : "; ") + std::string(e.what());
      }
    }
  }

  // Stops the confirmer and confirms what is left, without reconnecting.
  void close_publisher() {
    {
      std::lock_guard lock(pub_mu);
      confirmer_stop = true;
    }
    confirmer_cv.notify_all();
    if (confirmer.joinable()) confirmer.join();
    std::lock_guard lock(pub_mu);
    try {
      if (window.size() && pub.is_open() && !window.settle(pub, 0, opts.confirm_timeout))
        spdlog::error("AMQP broker {}: closing with publishes not confirmed", url.redacted());
      if (std::string r = window.take_refused(); !r.empty())
        spdlog::error("AMQP broker {} refused a publish: {}", url.redacted(), r);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
    }
    if (std::string ids = window.drop_all(); !ids.empty())
      spdlog::error("AMQP broker {} closed; not known to be published: tasks {}", url.redacted(),
                    ids);
    pub.close();
  }

  // ---- consuming ----

  void drop_consumer() {
    con.close();
    consumer_queue.clear();
    consumed.clear();
    outstanding.clear();
    con_declared.clear();
    prefetch = 0;
  }

  void ensure_consuming(std::span<const std::string> queues, std::size_t max) {
    check_open();
    if (!con.is_open()) {
      drop_consumer();
      con.open();
    }
    std::uint16_t want =
        opts.prefetch_count
            ? opts.prefetch_count
            : std::max<std::uint16_t>(
                  prefetch, static_cast<std::uint16_t>(std::min<std::size_t>(max, 65535)));
    if (want != prefetch) {
      con.qos(want);
      prefetch = want;
    }
    for (auto& q : queues) {
      if (consumed.count(q)) continue;
      detail::declare_task_queue(con, con_declared, q, opts.max_priority);
      consumer_queue[con.consume(q)] = q;
      consumed.insert(q);
    }
  }

  // Turns a delivery into a Delivery, or parks it in the delay queues when
  // its ETA is too far away to hold it unacknowledged.
  std::optional<Delivery> accept(Received r) {
    std::string queue =
        consumer_queue.count(r.consumer_tag) ? consumer_queue[r.consumer_tag] : r.routing_key;
    if (auto wait = detail::eta_remaining(r.message.headers);
        wait && *wait > opts.eta_hold_limit && *wait >= 1s) {
      detail::Message parked = r.message;
      parked.expiration.clear();
      publish_confirmed(1, [&](std::size_t) {
        return std::tuple(detail::declare_delay_level(pub, pub_declared, *wait), queue, &parked);
      });
      con.ack(r.delivery_tag);
      return std::nullopt;
    }
    if (!r.message.reply_to.empty() && !r.message.correlation_id.empty())
      detail::remember_reply_to(r.message.correlation_id, r.message.reply_to);
    Delivery d;
    d.tag = tag_text(con.generation(), r.delivery_tag);
    d.envelope = detail::message_to_envelope(r, d.tag);
    d.queue = std::move(queue);
    d.priority = priority_step(detail::from_amqp_priority(r.message.priority.value_or(0)));
    d.redelivered = r.redelivered;
    outstanding.insert(r.delivery_tag);
    return d;
  }

  // The tag of `d` when it belongs to the live consumer connection.
  std::optional<std::uint64_t> live_tag(const Delivery& d) {
    std::uint64_t gen = 0, tag = 0;
    if (!parse_tag(d.tag, &gen, &tag) || !con.is_open() || gen != con.generation() ||
        !outstanding.count(tag))
      return std::nullopt;
    return tag;
  }

  template <class Op>
  void on_consumer(Op&& op) {
    try {
      op();
    } catch (const BrokerError&) {
      drop_consumer();  // the broker redelivers what this connection held
      throw;
    }
  }
};

AmqpBroker::AmqpBroker(const Url& url) : impl_(std::make_unique<Impl>(url)) {
  detail::remember_broker_url(url);
  auto& im = *impl_;
  im.keeper = std::make_unique<detail::Keepalive>([&im] {
    detail::keep_alive(im.pub_mu, im.pub);
    detail::keep_alive(im.con_mu, im.con);
  });
}

AmqpBroker::~AmqpBroker() {
  close();
}

std::string AmqpBroker::url() const {
  return impl_->url.redacted();
}

void AmqpBroker::publish(std::string_view queue, int priority, std::string_view envelope) {
  Outgoing o{std::string(queue), priority, std::string(envelope)};
  if (impl_->opts.publish_window == 0)
    impl_->publish_batch(std::span<const Outgoing>(&o, 1));
  else
    impl_->publish_windowed(o);
}

void AmqpBroker::flush() {
  auto& im = *impl_;
  std::lock_guard lock(im.pub_mu);
  if (im.window.size()) im.with_publisher_locked([&] { im.settle(0); });
  im.throw_refused("refused an earlier publish");
}

void AmqpBroker::publish_many(std::span<const Outgoing> messages) {
  if (!messages.empty()) impl_->publish_batch(messages);
}

std::vector<Delivery> AmqpBroker::reserve(std::span<const std::string> queues, std::size_t max,
                                          std::chrono::milliseconds timeout) {
  std::vector<Delivery> out;
  if (max == 0 || queues.empty()) return out;
  auto& im = *impl_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(im.con_mu);
  for (;;) {
    int fd = -1;
    im.on_consumer([&] {
      im.ensure_consuming(queues, max);
      while (out.size() < max) {
        auto r = im.con.next_delivery(0ms);
        if (!r) break;
        if (auto d = im.accept(std::move(*r))) out.push_back(std::move(*d));
      }
      fd = im.con.socket_fd();
    });
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (!out.empty() || left.count() <= 0) return out;
    if (im.con.has_buffered()) continue;
    // Wait for data without holding the lock, so acks from other threads go
    // out meanwhile; bounded so close() is noticed.
    lock.unlock();
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
    lock.lock();
  }
}

void AmqpBroker::ack(const Delivery& d) {
  ack_many(std::span<const Delivery>(&d, 1));
}

void AmqpBroker::ack_many(std::span<const Delivery> ds) {
  auto& im = *impl_;
  std::lock_guard lock(im.con_mu);
  im.on_consumer([&] {
    for (auto& d : ds) {
      auto tag = im.live_tag(d);
      if (!tag) continue;  // a dead connection's: the broker redelivers it
      im.con.ack(*tag);
      im.outstanding.erase(*tag);
    }
  });
}

void AmqpBroker::requeue(const Delivery& d) {
  auto& im = *impl_;
  std::lock_guard lock(im.con_mu);
  im.on_consumer([&] {
    if (auto tag = im.live_tag(d)) {
      im.con.reject(*tag, true);
      im.outstanding.erase(*tag);
    }
  });
}

void AmqpBroker::dead_letter(const Delivery& d, std::string_view reason) {
  auto& im = *impl_;
  std::lock_guard lock(im.con_mu);
  auto tag = im.live_tag(d);
  if (!tag) return;
  detail::Message m;
  try {
    m = detail::envelope_to_message(d.envelope, detail::to_amqp_priority(d.priority));
  } catch (const MessageError&) {
    m.body = d.envelope;  // keep the raw text
  }
  m.headers["x-celeriac-reason"] = std::string(reason);
  m.headers["x-celeriac-queue"] = d.queue;
  m.headers["x-celeriac-time"] = unix_now();
  m.expiration.clear();
  im.publish_confirmed(1, [&](std::size_t) {
    detail::declare_dead_letter_queue(im.pub, im.pub_declared);
    return std::tuple(std::string(), std::string(kDeadLetterQueue), &m);
  });
  im.on_consumer([&] {
    im.con.ack(*tag);
    im.outstanding.erase(*tag);
  });
}

std::vector<DeadLetter> AmqpBroker::dead_letters(std::size_t limit) {
  auto& im = *impl_;
  return im.with_publisher([&] {
    detail::declare_dead_letter_queue(im.pub, im.pub_declared);
    std::vector<DeadLetter> all;
    std::uint64_t last_tag = 0;
    for (std::size_t n = 0; n < 100000; ++n) {
      auto r = im.pub.get(kDeadLetterQueue);
      if (!r) break;
      last_tag = r->delivery_tag;
      DeadLetter dl;
      auto& h = r->message.headers;
      auto text = [&](const char* k) {
        auto it = h.find(k);
        return it != h.end() && it->is_string() ? it->template get<std::string>() : std::string();
      };
      dl.reason = text("x-celeriac-reason");
      dl.queue = text("x-celeriac-queue");
      if (auto it = h.find("x-celeriac-time"); it != h.end() && it->is_number())
        dl.time = it->template get<double>();
      for (const char* k : {"x-celeriac-reason", "x-celeriac-queue", "x-celeriac-time"}) h.erase(k);
      dl.envelope = detail::message_to_envelope(*r, "");
      all.push_back(std::move(dl));
    }
    if (last_tag) im.pub.nack(last_tag, true, true);  // all back, in order
    if (all.size() > limit) all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(limit));
    return all;
  });
}

std::size_t AmqpBroker::restore_unacked() {
  auto& im = *impl_;
  std::lock_guard lock(im.con_mu);
  std::size_t n = im.outstanding.size();
  im.drop_consumer();
  return n;
}

std::size_t AmqpBroker::restore_stale(std::chrono::seconds) {
  return 0;
}

std::size_t AmqpBroker::purge(std::string_view queue) {
  auto& im = *impl_;
  return im.with_publisher([&]() -> std::size_t {
    im.settle(0);  // what was published before is purged too
    if (!im.pub.declare_queue(queue, {}, true)) return 0;
    return im.pub.purge_queue(queue);
  });
}

std::size_t AmqpBroker::queue_length(std::string_view queue) {
  auto& im = *impl_;
  return im.with_publisher([&]() -> std::size_t {
    im.settle(0);  // RabbitMQ counts a publish once it confirmed it
    return im.pub.declare_queue(queue, {}, true).value_or(0);
  });
}

void AmqpBroker::close() {
  auto& im = *impl_;
  if (im.closed.exchange(true)) return;
  im.keeper->stop();
  {
    std::lock_guard lock(im.con_mu);
    im.drop_consumer();
  }
  im.close_publisher();
}

}  // namespace celeriac::tq::amqp
