// Client-side task-sent events: see detail/event_sender.hpp.
#include <unistd.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>

#include <spdlog/spdlog.h>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/detail/event_sender.hpp"

namespace celeriac::tq::detail {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, EventSenderFactory, std::less<>> factories;
  // one sender per broker URL; null when the scheme has none (warned once)
  std::map<std::string, std::shared_ptr<EventSender>, std::less<>> senders;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: senders may be used at exit
  return *r;
}

std::shared_ptr<EventSender> sender_for(const std::string& broker_url) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  if (auto it = r.senders.find(broker_url); it != r.senders.end()) return it->second;
  std::shared_ptr<EventSender> made;
  Url url = Url::parse(broker_url.empty() ? std::string(kDefaultUrl) : broker_url);
  if (auto f = r.factories.find(url.scheme); f != r.factories.end())
    made = f->second(url);
  else
    spdlog::warn("task-sent events: the {} broker has no event channel", url.scheme);
  r.senders.emplace(broker_url, made);
  return made;
}

// Celery's anon_nodename(): the client's node name in its events.
const std::string& client_nodename() {
  static const std::string name = [] {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) return std::string("gen@localhost");
    return "gen" + std::to_string(::getpid()) + "@" + host.data();
  }();
  return name;
}

std::atomic<long> client_clock{0};

std::string header_string(const Json& headers, const char* key) {
  auto it = headers.find(key);
  return it != headers.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

void register_event_sender(std::string scheme, EventSenderFactory factory) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.factories[std::move(scheme)] = std::move(factory);
}

OrderedJson task_sent_event(const TaskMessage& m, std::string_view envelope) {
  std::string argsrepr = m.argsrepr, kwargsrepr = m.kwargsrepr;
  if (argsrepr.empty() || kwargsrepr.empty()) {
    try {  // the reprs encode() wrote into the headers
      Json headers = loads(envelope).at("headers");
      if (argsrepr.empty()) argsrepr = header_string(headers, "argsrepr");
      if (kwargsrepr.empty()) kwargsrepr = header_string(headers, "kwargsrepr");
    } catch (const std::exception&) {
    }
  }
  OrderedJson e = OrderedJson::object();
  e["hostname"] = client_nodename();
  e["utcoffset"] = 0;
  e["pid"] = static_cast<long>(::getpid());
  e["clock"] = ++client_clock;
  e["uuid"] = m.id;
  e["root_id"] = m.root_id.empty() ? m.id : m.root_id;
  e["parent_id"] = m.parent_id ? OrderedJson(*m.parent_id) : OrderedJson(nullptr);
  e["name"] = m.task;
  e["args"] = argsrepr;
  e["kwargs"] = kwargsrepr;
  e["retries"] = m.retries;
  e["eta"] = m.eta ? OrderedJson(format_iso8601(*m.eta)) : OrderedJson(nullptr);
  e["expires"] = m.expires ? OrderedJson(format_iso8601(*m.expires)) : OrderedJson(nullptr);
  e["queue"] = m.queue;
  e["exchange"] = m.exchange;
  e["routing_key"] = m.queue;
  e["timestamp"] = unix_now();
  e["type"] = "task-sent";
  return e;
}

void send_task_sent(const std::string& broker_url, const TaskMessage& m,
                    std::string_view envelope) noexcept {
  try {
    if (auto sender = sender_for(broker_url))
      sender->send(task_sent_event(m, envelope), "task.sent");
  } catch (const std::exception& e) {
    spdlog::warn("task-sent event for {} not published: {}", m.id, e.what());
  }
}

}  // namespace celeriac::tq::detail
