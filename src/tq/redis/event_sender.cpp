// The Redis transport's client-side event sender (task-sent): events go to
// the `celeryev` fanout channel exactly as the worker's events do.
#include "celeriac/tq/detail/event_sender.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/control.hpp"

namespace celeriac::tq::redis {

namespace {

class RedisEventSender final : public tq::detail::EventSender {
 public:
  explicit RedisEventSender(const tq::Url& url)
      : rurl_(to_redis_url(url)), pool_(rurl_, ConnectOptions{}, std::chrono::seconds(5)) {}
  void send(const OrderedJson& event, std::string_view routing_key) override {
    OrderedJson headers = {{"hostname", event.value("hostname", "")}};
    std::string env = make_envelope(event, headers, "celeryev", routing_key, 1);
    pool_.run([&](Connection& c) {
      return c.command({"PUBLISH", event_channel(rurl_.db, routing_key), env});
    });
  }

 private:
  Url rurl_;
  ConnectionPool pool_;
};

}  // namespace

void register_event_senders() {
  for (const char* scheme : {"redis", "rediss"})
    tq::detail::register_event_sender(
        scheme, [](const tq::Url& url) { return std::make_unique<RedisEventSender>(url); });
}

}  // namespace celeriac::tq::redis
