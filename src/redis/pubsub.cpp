#include "celeriac/redis/pubsub.hpp"

#include "celeriac/redis/errors.hpp"

namespace celeriac::redis {

using Clock = std::chrono::steady_clock;

Subscriber::Subscriber(const Url& url, ConnectOptions opts)
    : url_(url), opts_(opts), conn_(Connection::connect(url, opts)) {}

std::optional<Message> Subscriber::to_message(const Reply& r) {
  if (!r.is_array() || r.size() < 3 || !r[0].is_string()) return std::nullopt;
  const std::string& kind = r[0].str();
  if (kind == "message") return Message{r[1].str(), "", r[2].str()};
  if (kind == "pmessage" && r.size() >= 4) return Message{r[2].str(), r[1].str(), r[3].str()};
  return std::nullopt;  // (p)subscribe / (p)unsubscribe confirmations
}

void Subscriber::send_and_confirm(const char* verb, const std::vector<std::string>& names) {
  if (names.empty()) return;
  if (!conn_ || !conn_->is_open())
    throw ConnectionError("Redis " + url_.str() + ": subscriber connection is closed");
  std::vector<std::string> argv{verb};
  argv.insert(argv.end(), names.begin(), names.end());
  Pipeline p;
  p.add(argv);
  conn_->send(p);
  std::string confirm = std::string(verb) == "SUBSCRIBE" ? "subscribe" : "psubscribe";
  size_t confirmed = 0;
  auto deadline = Clock::now() + opts_.io_timeout;
  while (confirmed < names.size()) {
    auto left = deadline - Clock::now();
    auto r = conn_->read_reply(left > Duration::zero() ? left : Duration::zero());
    if (r->is_error()) throw ReplyError("Redis " + url_.str() + ": " + verb + ": " + r->str());
    if (r->is_array() && r->size() >= 1 && r->elements()[0].is_string() &&
        r->elements()[0].str() == confirm) {
      ++confirmed;
    } else if (auto m = to_message(*r)) {
      pending_.push_back(std::move(*m));
    }
  }
}

void Subscriber::subscribe(const std::vector<std::string>& channels) {
  send_and_confirm("SUBSCRIBE", channels);
  channels_.insert(channels.begin(), channels.end());
}

void Subscriber::psubscribe(const std::vector<std::string>& patterns) {
  send_and_confirm("PSUBSCRIBE", patterns);
  patterns_.insert(patterns.begin(), patterns.end());
}

void Subscriber::unsubscribe(const std::vector<std::string>& channels) {
  if (channels.empty()) return;
  for (auto& c : channels) channels_.erase(c);
  if (!is_open()) return;
  std::vector<std::string> argv{"UNSUBSCRIBE"};
  argv.insert(argv.end(), channels.begin(), channels.end());
  Pipeline p;
  p.add(argv);
  conn_->send(p);
}

void Subscriber::punsubscribe(const std::vector<std::string>& patterns) {
  if (patterns.empty()) return;
  for (auto& c : patterns) patterns_.erase(c);
  if (!is_open()) return;
  std::vector<std::string> argv{"PUNSUBSCRIBE"};
  argv.insert(argv.end(), patterns.begin(), patterns.end());
  Pipeline p;
  p.add(argv);
  conn_->send(p);
}

std::optional<Message> Subscriber::get_message(Duration timeout) {
  if (!pending_.empty()) {
    Message m = std::move(pending_.front());
    pending_.erase(pending_.begin());
    return m;
  }
  if (!conn_ || !conn_->is_open())
    throw ConnectionError("Redis " + url_.str() + ": subscriber connection is closed");
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = deadline - Clock::now();
    auto r = conn_->read_reply(left > Duration::zero() ? left : Duration::zero(), true);
    if (!r) return std::nullopt;
    if (auto m = to_message(*r)) return m;
    if (Clock::now() >= deadline) return std::nullopt;
  }
}

void Subscriber::reconnect(Clock::time_point deadline, Backoff backoff) {
  if (conn_) conn_->close();
  conn_.reset();
  conn_.emplace(connect_with_retry(url_, deadline, opts_, backoff));
  std::vector<std::string> ch(channels_.begin(), channels_.end());
  std::vector<std::string> pa(patterns_.begin(), patterns_.end());
  send_and_confirm("SUBSCRIBE", ch);
  send_and_confirm("PSUBSCRIBE", pa);
}

void Subscriber::close() {
  if (conn_) conn_->close();
}

}  // namespace celeriac::redis
