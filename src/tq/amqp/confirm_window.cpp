#include "celeriac/tq/amqp/detail/confirm_window.hpp"
#include "celeriac/tq/detail/id_list.hpp"

#include <algorithm>

namespace celeriac::tq::amqp::detail {

void ConfirmWindow::publish(Connection& c, std::string exchange, std::string routing_key,
                            Message&& m) {
  republish(c);
  std::uint64_t seq = c.publish(exchange, routing_key, m, true);
  written_.push_back(Written{seq, std::move(exchange), std::move(routing_key), std::move(m)});
}

void ConfirmWindow::republish(Connection& c) {
  if (written_.empty() || epoch_ == c.channel_epoch()) {
    epoch_ = c.channel_epoch();
    return;
  }
  for (auto& w : written_) {
    w.seq = c.publish(w.exchange, w.routing_key, w.message, true);
    w.settled = false;
  }
  epoch_ = c.channel_epoch();  // only when all went out: else all go again
}

bool ConfirmWindow::settle(Connection& c, std::size_t keep, std::chrono::milliseconds timeout) {
  republish(c);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (written_.size() > keep) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto e = c.next_confirm(std::max(left, std::chrono::milliseconds(0)));
    if (!e) return false;
    take(*e);
  }
  return true;
}

void ConfirmWindow::take(const ConfirmEvent& e) {
  if (e.kind == ConfirmEvent::Kind::returned) {
    // Its ack follows; the return says why it went nowhere.
    auto it = std::find_if(written_.begin(), written_.end(),
                           [&](const Written& w) { return w.message.correlation_id == e.task_id; });
    refuse(e.task_id, it == written_.end() ? std::string("?") : it->routing_key,
           "returned as unroutable (" + e.why + ")");
    return;
  }
  const bool nack = e.kind == ConfirmEvent::Kind::nack;
  auto settle_one = [&](Written& w) {
    if (w.settled) return;
    w.settled = true;
    if (nack) refuse(w.message.correlation_id, w.routing_key, "refused by the broker (basic.nack)");
  };
  if (e.multiple) {
    for (auto& w : written_) {
      if (w.seq > e.tag) break;
      settle_one(w);
    }
  } else {
    auto it = std::lower_bound(written_.begin(), written_.end(), e.tag,
                               [](const Written& w, std::uint64_t tag) { return w.seq < tag; });
    if (it != written_.end() && it->seq == e.tag) settle_one(*it);
  }
  while (!written_.empty() && written_.front().settled) written_.pop_front();
}

void ConfirmWindow::refuse(const std::string& task_id, const std::string& queue,
                           const std::string& why) {
  refused_ += (refused_.empty() ? "" : "; ") + std::string("task ") +
              (task_id.empty() ? std::string("(unknown id)") : task_id) + " to queue '" + queue +
              "': " + why;
}

std::string ConfirmWindow::take_refused() {
  std::string out = std::move(refused_);
  refused_.clear();
  return out;
}

std::string ConfirmWindow::drop_all() {
  std::string s = tq::detail::list_ids(written_, [](const auto& w) {
    return w.message.correlation_id.empty() ? std::string("(unknown id)")
                                            : w.message.correlation_id;
  });
  written_.clear();
  return s;
}

}  // namespace celeriac::tq::amqp::detail
