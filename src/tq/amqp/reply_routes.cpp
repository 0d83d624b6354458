#include "celeriac/tq/amqp/detail/reply_routes.hpp"

#include <mutex>
#include <unordered_map>

#include "celeriac/tq/message.hpp"

namespace celeriac::tq::amqp::detail {

namespace {

constexpr std::size_t kMaxRoutes = 200000;

struct Routes {
  std::mutex mu;
  std::unordered_map<std::string, std::string> by_task;
  std::optional<Url> broker;
};

Routes& routes() {
  static Routes* r = new Routes;  // lives until exit: used from worker threads
  return *r;
}

}  // namespace

void remember_reply_to(const std::string& task_id, const std::string& reply_to) {
  auto& r = routes();
  std::lock_guard lock(r.mu);
  if (r.by_task.size() >= kMaxRoutes) r.by_task.clear();  // abandoned entries: start over
  r.by_task[task_id] = reply_to;
}

std::optional<std::string> reply_to_of(const std::string& task_id, bool final) {
  auto& r = routes();
  std::lock_guard lock(r.mu);
  auto it = r.by_task.find(task_id);
  if (it == r.by_task.end()) return std::nullopt;
  std::string out = it->second;
  if (final) r.by_task.erase(it);
  return out;
}

const std::string& client_reply_queue() {
  static const std::string oid = make_uuid();
  return oid;
}

QueueSpec reply_queue_spec() {
  QueueSpec s;
  s.durable = false;
  s.auto_delete = true;
  s.arguments["x-expires"] = 86400000;
  return s;
}

void remember_broker_url(const Url& url) {
  auto& r = routes();
  std::lock_guard lock(r.mu);
  r.broker = url;
}

std::optional<Url> last_broker_url() {
  auto& r = routes();
  std::lock_guard lock(r.mu);
  return r.broker;
}

}  // namespace celeriac::tq::amqp::detail
