#include "consumer.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "celeriac/sync/thread_name.hpp"

namespace celeriac::tq::detail {

namespace {
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// How often reservations are renewed and stale ones restored: a quarter of
// the visibility timeout, between 1 s and 60 s.
SteadyClock::duration maintenance_period(std::chrono::seconds visibility_timeout) {
  return std::clamp<SteadyClock::duration>(visibility_timeout / 4, std::chrono::seconds(1),
                                           std::chrono::seconds(60));
}
}  // namespace

Consumer::Consumer(Broker& broker, JobLifecycle& lifecycle, ConsumerSettings settings,
                   std::function<void(JobPtr)> dispatch, std::function<void()> after_stop)
    : broker_(broker),
      lifecycle_(lifecycle),
      settings_(std::move(settings)),
      dispatch_(std::move(dispatch)),
      after_stop_(std::move(after_stop)) {}

Consumer::~Consumer() {
  stop();
  join();
}

void Consumer::start() {
  thread_ = std::thread([this] { loop(); });
}

void Consumer::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  round_cv_.notify_all();
}

void Consumer::join() {
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Consumer::release() {
  {
    std::lock_guard lock(mu_);
    --in_flight_;
  }
  cv_.notify_all();
}

std::vector<JobPtr> Consumer::held() const {
  std::lock_guard lock(mu_);
  std::vector<JobPtr> out;
  for (auto& [t, j] : eta_held_) out.push_back(j);
  return out;
}

std::vector<std::pair<TimePoint, JobPtr>> Consumer::held_until() const {
  std::lock_guard lock(mu_);
  return {eta_held_.begin(), eta_held_.end()};
}

std::vector<std::string> Consumer::queues() const {
  std::lock_guard lock(mu_);
  return settings_.queues;
}

bool Consumer::add_queue(const std::string& queue) {
  std::lock_guard lock(mu_);
  auto& q = settings_.queues;
  if (std::find(q.begin(), q.end(), queue) != q.end()) return false;
  q.push_back(queue);
  ++queues_version_;
  return true;
}

bool Consumer::cancel_queue(const std::string& queue) {
  std::unique_lock lock(mu_);
  auto& q = settings_.queues;
  auto it = std::find(q.begin(), q.end(), queue);
  if (it == q.end()) return false;
  q.erase(it);
  const auto version = ++queues_version_;
  cv_.notify_all();
  // A reserve() already under way may still take from the queue: wait for
  // the next round (bounded: a round lasts at most the poll interval).
  if (loop_thread_ != std::thread::id{} && loop_thread_ != std::this_thread::get_id())
    round_cv_.wait_for(lock, settings_.poll_interval * 4 + std::chrono::seconds(10),
                       [&] { return stopping_ || round_version_ >= version; });
  return true;
}

void Consumer::set_window(std::size_t window) {
  {
    std::lock_guard lock(mu_);
    settings_.window = std::max<std::size_t>(1, window);
  }
  cv_.notify_all();
}

void Consumer::loop() {
  sync::set_current_thread_name("celeriac-consume");
  {
    std::lock_guard lock(mu_);
    loop_thread_ = std::this_thread::get_id();
  }
  auto backoff = milliseconds(100);
  for (;;) {
    dispatch_due();
    maintain();
    std::size_t capacity = 0;
    auto timeout = settings_.poll_interval;
    std::vector<std::string> queues;
    {
      std::unique_lock lock(mu_);
      if (stopping_) break;
      queues = settings_.queues;
      if (round_version_ != queues_version_) {
        round_version_ = queues_version_;
        round_cv_.notify_all();
      }
      if (!eta_held_.empty())
        timeout = std::min(timeout, std::chrono::duration_cast<milliseconds>(
                                        eta_held_.begin()->first - Clock::now()) +
                                        milliseconds(1));
      capacity = in_flight_ >= settings_.window ? 0 : settings_.window - in_flight_;
    }
    if (!wait_for_room(timeout)) continue;
    std::vector<Delivery> got;
    try {
      if (queues.empty()) {  // every queue cancelled: wait for add_consumer or stop
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, timeout, [&] { return stopping_; });
        continue;
      }
      got = broker_.reserve(queues, capacity, std::max(timeout, milliseconds(0)));
      backoff = milliseconds(100);
    } catch (const std::exception& e) {
      spdlog::error("broker {}: {}; retrying in {} ms", broker_.url(), e.what(), backoff.count());
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, milliseconds(5000));
      continue;
    }
    receive_all(std::move(got));
  }
  put_back_held();
  if (after_stop_) after_stop_();
}

// Reserve in batches of at least a quarter of the window while busy: one
// broker round trip per freed slot costs more than a small task. False when
// there is no room yet (after waiting up to `timeout` for it).
bool Consumer::wait_for_room(milliseconds timeout) {
  auto room = [&] {
    const std::size_t batch_min = std::max<std::size_t>(1, settings_.window / 4);
    return in_flight_ == 0 || in_flight_ + batch_min <= settings_.window;
  };
  {
    std::lock_guard lock(mu_);
    if (room()) return true;
  }
  broker_.flush();  // nothing reserves for a while: let batched acks go
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return stopping_ || room(); });
  return false;
}

void Consumer::receive_all(std::vector<Delivery> got) {
  {
    std::lock_guard lock(mu_);
    in_flight_ += got.size();
  }
  std::vector<JobPtr> jobs;
  jobs.reserve(got.size());
  for (auto& d : got) {
    jobs.push_back(std::make_shared<Job>());
    jobs.back()->delivery = std::move(d);
  }
  lifecycle_.dispatched(jobs);
  for (auto& j : jobs) dispatch_(std::move(j));
}

void Consumer::hold(JobPtr job) {
  TimePoint eta = *job->msg.eta;
  hold_until(std::move(job), eta);
}

void Consumer::hold_until(JobPtr job, TimePoint when, bool keep_window) {
  {
    std::lock_guard lock(mu_);
    if (keep_window)
      window_held_.insert(job.get());
    else
      --in_flight_;
    eta_held_.emplace(when, std::move(job));
  }
  cv_.notify_all();
}

void Consumer::dispatch_due() {
  std::vector<JobPtr> due;
  {
    std::lock_guard lock(mu_);
    auto now = Clock::now();
    while (!eta_held_.empty() && eta_held_.begin()->first <= now) {
      due.push_back(std::move(eta_held_.begin()->second));
      eta_held_.erase(eta_held_.begin());
      if (window_held_.erase(due.back().get()) == 0) ++in_flight_;
    }
  }
  if (due.empty()) return;
  lifecycle_.dispatched(due);
  for (auto& j : due) dispatch_(std::move(j));
}

void Consumer::maintain() {
  auto now = SteadyClock::now();
  if (now < next_maintenance_) return;
  next_maintenance_ = now + maintenance_period(settings_.visibility_timeout);
  try {
    broker_.renew_reservations();
    std::size_t n = broker_.restore_stale(settings_.visibility_timeout);
    if (n) spdlog::info("restored {} message(s) reserved longer than the visibility timeout", n);
  } catch (const std::exception& e) {
    spdlog::warn("restore of stale messages failed: {}", e.what());
  }
}

void Consumer::put_back_held() {
  std::multimap<TimePoint, JobPtr> held;
  {
    std::lock_guard lock(mu_);
    held.swap(eta_held_);
    window_held_.clear();
  }
  for (auto& [t, j] : held) lifecycle_.put_back(*j);
  if (!held.empty()) spdlog::info("put back {} message(s) held for their ETA", held.size());
}

}  // namespace celeriac::tq::detail
