// EventReceiver for every broker: Redis (PSUBSCRIBE on kombu's fanout
// channels), AMQP (a private queue bound to the celeryev topic exchange) and
// the LocalBus (sqlite://, memory://).
#include <poll.h>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/events.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/url.hpp"
#include "local_bus.hpp"

#ifdef CELERIAC_TQ_WITH_REDIS
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/control.hpp"
#include "celeriac/tq/redis/pubsub.hpp"
#endif
#ifdef CELERIAC_TQ_WITH_AMQP
#include "celeriac/tq/amqp/detail/connection.hpp"
#endif

namespace celeriac::tq {

std::vector<Json> decode_events(std::string_view body) {
  if (body.size() > kMaxEventBytes)
    throw MessageError("event message of " + std::to_string(body.size()) +
                       " bytes is over the limit of " + std::to_string(kMaxEventBytes));
  return decode_events_json(loads(body));
}

std::vector<Json> decode_events_json(Json j) {
  std::vector<Json> out;
  auto check = [](const Json& e) {
    if (!e.is_object() || !e.contains("type") || !e["type"].is_string())
      throw MessageError("event is not an object with a string \"type\"");
  };
  if (j.is_array()) {
    for (auto& e : j) check(e);
    for (auto& e : j) out.push_back(std::move(e));
  } else {
    check(j);
    out.push_back(std::move(j));
  }
  return out;
}

void EventReceiver::accept_json(Json body, std::vector<Json>& out) {
  try {
    for (auto& e : decode_events_json(std::move(body))) out.push_back(std::move(e));
  } catch (const std::exception&) {
    ++malformed_;
  }
}

void EventReceiver::accept(std::string_view body, std::vector<Json>& out) {
  try {
    for (auto& e : decode_events(body)) out.push_back(std::move(e));
  } catch (const std::exception&) {
    ++malformed_;
  }
}

namespace {

using namespace std::chrono_literals;

class LocalReceiver final : public EventReceiver {
 public:
  explicit LocalReceiver(const Url& url) : bus_(monitor::open_local_bus(url)) {
    cursor_ = bus_->tail();
  }
  std::vector<Json> poll(std::chrono::milliseconds timeout) override {
    std::vector<Json> out;
    for (auto& body : bus_->read(monitor::kEventChannel, cursor_, timeout, 5000)) accept(body, out);
    return out;
  }

 private:
  std::unique_ptr<monitor::LocalBus> bus_;
  std::int64_t cursor_ = 0;
};

#ifdef CELERIAC_TQ_WITH_REDIS
class RedisReceiver final : public EventReceiver {
 public:
  explicit RedisReceiver(const Url& url) : sub_(redis::to_redis_url(url)) {
    sub_.psubscribe({redis::event_channel(redis::to_redis_url(url).db, "*")});
  }
  std::vector<Json> poll(std::chrono::milliseconds timeout) override {
    std::vector<Json> out;
    auto wait = timeout;
    // drain what is buffered, waiting only for the first message
    while (auto m = next(wait)) {
      unwrap(m->data, out);
      wait = 0ms;
      if (out.size() >= 5000) break;
    }
    return out;
  }

 private:
  std::optional<redis::Message> next(std::chrono::milliseconds wait) {
    try {
      return sub_.get_message(wait);
    } catch (const std::exception&) {
      sub_.reconnect(std::chrono::steady_clock::now() + 1s);
      return std::nullopt;
    }
  }
  void unwrap(const std::string& envelope_text, std::vector<Json>& out) {
    Json body;
    try {
      // base64 makes a body a third bigger than the limit kept for plain bodies
      if (envelope_text.size() > kMaxEventBytes * 4 / 3 + 4096) throw MessageError("too big");
      body = redis::envelope_body(loads(envelope_text));
    } catch (const std::exception&) {
      accept(std::string_view(), out);  // counted as malformed
      return;
    }
    accept_json(std::move(body), out);
  }
  redis::Subscriber sub_;
};
#endif

#ifdef CELERIAC_TQ_WITH_AMQP
class AmqpReceiver final : public EventReceiver {
 public:
  explicit AmqpReceiver(const Url& url) : conn_(amqp::detail::Endpoint::from_url(url)) {
    conn_.open();
    conn_.declare_exchange("celeryev", "topic", true, false);
    std::string queue = "celeryev." + make_uuid();
    amqp::detail::QueueSpec spec;
    spec.durable = false;
    spec.auto_delete = true;
    spec.exclusive = true;
    spec.arguments["x-message-ttl"] = 5000;  // Celery's event_queue_ttl
    conn_.declare_queue(queue, spec);
    conn_.bind_queue(queue, "celeryev", "#");
    conn_.consume(queue, true, true);
  }
  std::vector<Json> poll(std::chrono::milliseconds timeout) override {
    std::vector<Json> out;
    auto wait = timeout;
    while (auto r = conn_.next_delivery(wait)) {
      accept(r->message.body, out);
      wait = 0ms;
      if (out.size() >= 5000) break;
    }
    return out;
  }

 private:
  amqp::detail::Connection conn_;
};
#endif

}  // namespace

std::unique_ptr<EventReceiver> make_event_receiver(std::string_view broker_url) {
  Url url = Url::parse(broker_url);
  if (url.scheme == "memory" || url.scheme == "sqlite") return std::make_unique<LocalReceiver>(url);
#ifdef CELERIAC_TQ_WITH_REDIS
  if (url.scheme == "redis" || url.scheme == "rediss") return std::make_unique<RedisReceiver>(url);
#endif
#ifdef CELERIAC_TQ_WITH_AMQP
  if (url.scheme == "amqp" || url.scheme == "pyamqp") return std::make_unique<AmqpReceiver>(url);
#endif
  throw ConfigError("no events for broker '" + url.redacted() +
                    "' (expected redis://, amqp://, sqlite:// or memory://)");
}

}  // namespace celeriac::tq
