#include "publisher.hpp"

#include <spdlog/spdlog.h>

#include <string_view>

#include "celeriac/redis/errors.hpp"
#include "celeriac/tq/detail/id_list.hpp"

namespace celeriac::tq::redis::detail {

using celeriac::redis::connect_with_retry;
using celeriac::redis::Connection;
using celeriac::redis::ConnectionError;
using celeriac::redis::Pipeline;
using celeriac::redis::ProtocolError;
using celeriac::redis::Reply;
using celeriac::redis::ReplyError;
using Clock = std::chrono::steady_clock;

namespace {
// The task id of an envelope (its correlation_id), for error messages;
// found in the written command bytes (the envelope is inside them), and only
// when an error names it, so the hot path never looks for it.
std::string task_id_in(std::string_view envelope) {
  constexpr std::string_view key = "\"correlation_id\":";
  auto at = envelope.find(key);
  if (at == std::string_view::npos) return "(unknown id)";
  auto open = envelope.find('"', at + key.size());
  auto close = open == std::string_view::npos ? open : envelope.find('"', open + 1);
  if (close == std::string_view::npos) return "(unknown id)";
  return std::string(envelope.substr(open + 1, close - open - 1));
}

}  // namespace

Publisher::Publisher(celeriac::redis::Url url, celeriac::redis::ConnectOptions opts,
                     std::chrono::milliseconds reconnect_timeout, std::size_t window)
    : url_(std::move(url)),
      opts_(opts),
      reconnect_timeout_(reconnect_timeout),
      window_(std::max<std::size_t>(window, 1)) {}

Connection& Publisher::connection() {
  if (!conn_ || !conn_->is_open())
    conn_.emplace(connect_with_retry(url_, Clock::now() + reconnect_timeout_, opts_));
  return *conn_;
}

Publisher::~Publisher() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  confirmer_cv_.notify_all();
  if (confirmer_.joinable()) confirmer_.join();
}

// Runs `step` (I/O on the connection) until it gets through; after a lost
// connection the unconfirmed writes are written again on a new one, until
// reconnect_timeout from now.
template <class Step>
void Publisher::with_rewrites(Step&& step) {
  const auto deadline = Clock::now() + reconnect_timeout_;
  for (;;) {
    try {
      step();
      return;
    } catch (const ConnectionError&) {
      rewrite_after_error(deadline);
    } catch (const celeriac::TimeoutError&) {
      rewrite_after_error(deadline);
    } catch (const ProtocolError&) {
      rewrite_after_error(deadline);
    }
  }
}

void Publisher::publish(Pipeline commands, std::string queue) {
  std::lock_guard lk(mu_);
  if (!confirmer_.joinable() && !stop_) confirmer_ = std::thread([this] { confirmer_loop(); });
  with_rewrites([&] {
    // collect confirmations in bulk (one read for many), and wait only
    // when the window is full
    if (written_.size() >= window_)
      read_confirmations(window_ / 2, true);
    else if (written_.size() >= window_ / 4)
      read_confirmations(0, false);
    throw_refused();
    connection().send(commands);
  });
  if (written_.empty()) {
    replies_left_ = commands.size();
    confirmer_cv_.notify_one();
  }
  written_.push_back(Written{std::move(commands), std::move(queue)});
}

void Publisher::confirm() {
  std::unique_lock lk(mu_);
  confirm_locked(lk);
  throw_refused();
}

// Confirms every write without throwing for refusals (they stay in refused_).
void Publisher::confirm_locked(std::unique_lock<std::mutex>&) {
  with_rewrites([&] { read_confirmations(0, true); });
}

// Confirms what callers left unconfirmed for `linger_`; a failure to
// reconnect is kept for the next caller, as a refusal is.
void Publisher::confirmer_loop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    confirmer_cv_.wait(lk, [&] { return stop_ || !written_.empty(); });
    if (stop_) break;
    confirmer_cv_.wait_for(lk, linger_, [&] { return stop_; });
    if (stop_ || written_.empty()) continue;
    try {
      confirm_locked(lk);
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      refused_ += (refused_.empty() ? "" : "; ") + std::string(e.what());
    }
  }
}

std::size_t Publisher::unconfirmed() const {
  std::lock_guard lk(mu_);
  return written_.size();
}

void Publisher::close() noexcept {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  confirmer_cv_.notify_all();
  if (confirmer_.joinable()) confirmer_.join();
  try {
    confirm();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
  }
  std::lock_guard lk(mu_);
  conn_.reset();
}

// Reads replies until at most `keep` publishes are unconfirmed; without
// `wait`, only the replies already readable.
void Publisher::read_confirmations(std::size_t keep, bool wait) {
  while (written_.size() > keep) {
    auto r = wait ? conn_->read_reply() : conn_->read_reply(Clock::duration::zero(), true);
    if (!r) return;
    take_reply(*r);
  }
}

void Publisher::take_reply(const Reply& r) {
  Written& w = written_.front();
  if (r.is_error())
    refused_ += (refused_.empty() ? "" : "; ") + ("task " + task_id_in(w.commands.bytes()) +
                                                  " to queue '" + w.queue + "': " + r.str());
  if (--replies_left_ > 0) return;
  written_.pop_front();
  if (!written_.empty()) replies_left_ = written_.front().commands.size();
}

void Publisher::throw_refused() {
  if (refused_.empty()) return;
  std::string what = std::move(refused_);
  refused_.clear();
  throw ReplyError("Redis " + url_.str() + " refused an earlier publish: " + what);
}

// The connection died with publishes unconfirmed: they may or may not have
// reached Redis, so they are written again on a new connection.
void Publisher::rewrite_after_error(Clock::time_point deadline) {
  conn_.reset();
  for (;;) {
    try {
      // retries transient failures by itself until the deadline; what it
      // throws is final (deadline passed, TLS or AUTH refused)
      conn_.emplace(connect_with_retry(url_, deadline, opts_));
    } catch (const std::exception& e) {
      give_up(e);
    }
    try {
      if (!written_.empty()) replies_left_ = written_.front().commands.size();
      for (const auto& w : written_) conn_->send(w.commands);
      return;
    } catch (const std::exception& e) {
      conn_.reset();
      if (Clock::now() >= deadline) give_up(e);
    }
  }
}

void Publisher::give_up(const std::exception& e) {
  std::string ids =
      tq::detail::list_ids(written_, [](const auto& w) { return task_id_in(w.commands.bytes()); });
  written_.clear();
  throw ConnectionError(std::string(e.what()) +
                        (ids.empty() ? "" : " (not known to be published: tasks " + ids + ")"));
}

}  // namespace celeriac::tq::redis::detail
