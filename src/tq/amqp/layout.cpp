#include "celeriac/tq/amqp/detail/layout.hpp"

#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq::amqp::detail {

void declare_task_queue(Connection& c, Declarations& done, std::string_view queue,
                        std::optional<int> max_priority) {
  if (done.count(queue)) return;
  c.declare_exchange(queue, "direct", true, false);
  QueueSpec spec;
  if (max_priority) spec.arguments["x-max-priority"] = *max_priority;
  c.declare_queue(queue, spec);
  c.bind_queue(queue, queue, queue);
  done.emplace(queue);
}

void declare_dead_letter_queue(Connection& c, Declarations& done) {
  if (done.count(kDeadLetterQueue)) return;
  QueueSpec spec;
  spec.arguments["x-max-length"] = 100000;
  c.declare_queue(kDeadLetterQueue, spec);
  done.emplace(kDeadLetterQueue);
}

int delay_level(std::chrono::milliseconds wait) {
  long long s = std::chrono::duration_cast<std::chrono::seconds>(wait).count();
  int k = 0;
  while (k < kMaxDelayLevel && (1LL << (k + 1)) <= s) ++k;
  return k;
}

std::string declare_delay_level(Connection& c, Declarations& done, std::chrono::milliseconds wait) {
  int k = delay_level(wait);
  std::string name = "celeriac_delayed_" + std::to_string(k);
  if (!done.count(name)) {
    c.declare_exchange(name, "fanout", true, false);
    QueueSpec spec;
    spec.arguments["x-message-ttl"] = (1LL << k) * 1000;
    spec.arguments["x-dead-letter-exchange"] = "";
    c.declare_queue(name, spec);
    c.bind_queue(name, name, "#");
    done.emplace(name);
  }
  return name;
}

std::optional<std::chrono::milliseconds> eta_remaining(const OrderedJson& headers) {
  auto it = headers.find("eta");
  if (it == headers.end() || !it->is_string()) return std::nullopt;
  try {
    auto eta = parse_iso8601(it->get<std::string>());
    return std::chrono::duration_cast<std::chrono::milliseconds>(eta - Clock::now());
  } catch (const MessageError&) {
    return std::nullopt;
  }
}

}  // namespace celeriac::tq::amqp::detail
