#include "time_limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "celeriac/tq/app.hpp"

namespace celeriac::tq::detail {

namespace {

std::string fmt_value(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::optional<double> positive(std::optional<double> v) {
  return v && *v > 0 ? v : std::nullopt;
}

std::chrono::steady_clock::time_point after(std::chrono::steady_clock::time_point t, double s) {
  return t + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                 std::chrono::duration<double>(s));
}

}  // namespace

void check_time_limits(const std::string& owner, std::optional<double> soft,
                       std::optional<double> hard) {
  auto check = [&](const char* name, std::optional<double> v) {
    if (v && (!std::isfinite(*v) || *v < 0))
      throw ConfigError(owner + " " + name + " must be a number of seconds >= 0, got " +
                        fmt_value(*v));
  };
  check("time_limit", hard);
  check("soft_time_limit", soft);
  if (positive(soft) && positive(hard) && *soft > *hard)
    throw ConfigError(owner + " soft_time_limit (" + fmt_value(*soft) +
                      " s) must not be above its time_limit (" + fmt_value(*hard) + " s)");
}

TimeLimits effective_time_limits(const TaskMessage& m, const TaskOptions& task,
                                 const TimeLimits& worker) {
  TimeLimits out;
  // Celery: `time_limit or task.time_limit`, each limit on its own (0 and
  // None both fall through), the task's default being the worker's.
  out.hard = positive(m.time_limit)      ? m.time_limit
             : positive(task.time_limit) ? task.time_limit
                                         : positive(worker.hard);
  out.soft = positive(m.soft_time_limit)      ? m.soft_time_limit
             : positive(task.soft_time_limit) ? task.soft_time_limit
                                              : positive(worker.soft);
  try {
    check_time_limits("task '" + m.task + "' [" + m.id + "]", m.soft_time_limit, m.time_limit);
    check_time_limits("task '" + m.task + "' [" + m.id + "]", out.soft, out.hard);
  } catch (const ConfigError& e) {
    throw TaskError("ValueError", "builtins", std::string(e.what()));
  }
  return out;
}

Supervisor::Supervisor(JobRunner& runner, TimeLimits defaults)
    : runner_(runner), defaults_(defaults) {
  check_time_limits("worker", defaults_.soft, defaults_.hard);
  thread_ = std::thread([this] { loop(); });
}

Supervisor::~Supervisor() {
  stop();
}

void Supervisor::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

SupervisedPtr Supervisor::watch(const JobPtr& job, InterruptHooks hooks) {
  auto s = std::make_shared<Supervised>();
  s->job = job;
  s->hooks = std::move(hooks);
  try {
    s->limits = effective_time_limits(job->msg, job->def->options, defaults_);
  } catch (...) {
    runner_.finish(*job, Outcome{Json(), std::nullopt, std::current_exception()});
    return nullptr;
  }
  auto now = std::chrono::steady_clock::now();
  if (s->limits.soft) s->soft_at = after(now, *s->limits.soft);
  if (s->limits.hard && !s->hooks.hard_by_pool) s->hard_at = after(now, *s->limits.hard);
  {
    std::lock_guard lock(mu_);
    running_.push_back(s);
  }
  if (s->soft_at || s->hard_at) wake_.notify_all();
  return s;
}

void Supervisor::unregister(const Supervised& s) {
  std::lock_guard lock(mu_);
  std::erase_if(running_, [&](const SupervisedPtr& p) { return p.get() == &s; });
  std::erase_if(undelivered_, [&](const auto& u) { return u.first.get() == &s; });
}

void Supervisor::finished(const SupervisedPtr& s, Outcome out) {
  unregister(*s);
  if (s->claim()) {
    runner_.finish(*s->job, std::move(out));
    return;
  }
  const TaskMessage& m = s->job->msg;
  spdlog::warn("task {}[{}] returned after its result was stored ({}): its {} is discarded", m.task,
               m.id, s->job->terminated_signal ? "revoked with terminate" : "time limit",
               out.error ? "error" : "return value");
}

bool Supervisor::terminate(const std::string& task_id, int signal) {
  std::vector<SupervisedPtr> hit;
  {
    std::lock_guard lock(mu_);
    for (auto& s : running_) {
      if (s->job->msg.id != task_id) continue;
      s->cancel->request(Cancellation::kRevoked);
      s->job->terminated_signal = signal;
      if (s->hooks.terminate && !s->hooks.terminate(signal)) {
        undelivered_.emplace_back(s, signal);
        wake_.notify_one();
      }
      if (!s->claim()) continue;
      if (s->hooks.abandon) s->hooks.abandon();
      hit.push_back(s);
    }
    std::erase_if(running_, [&](const SupervisedPtr& p) {
      return std::find(hit.begin(), hit.end(), p) != hit.end();
    });
  }
  for (auto& s : hit)
    runner_.finish(*s->job, Outcome{Json(), std::nullopt,
                                    std::make_exception_ptr(TaskRevokedError("terminated"))});
  return !hit.empty();
}

void Supervisor::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    std::vector<SupervisedPtr> overdue;
    for (auto& s : running_) {
      const TaskMessage& m = s->job->msg;
      if (s->soft_at && *s->soft_at <= now) {
        s->soft_at.reset();
        spdlog::warn("Soft time limit ({}s) exceeded for {}[{}]", fmt_value(*s->limits.soft),
                     m.task, m.id);
        s->cancel->request(Cancellation::kSoftTimeLimit);
        if (s->hooks.soft) s->hooks.soft();
      }
      if (s->hard_at && *s->hard_at <= now) {
        s->hard_at.reset();
        s->cancel->request(Cancellation::kSoftTimeLimit);  // cooperative code stops too
        if (s->claim()) {
          spdlog::error("Hard time limit ({}s) exceeded for {}[{}]", fmt_value(*s->limits.hard),
                        m.task, m.id);
          if (s->hooks.abandon) s->hooks.abandon();
          overdue.push_back(s);
        }
      }
      if (s->soft_at) next = std::min(next, *s->soft_at);
      if (s->hard_at) next = std::min(next, *s->hard_at);
    }
    if (!overdue.empty()) {
      std::erase_if(running_, [&](const SupervisedPtr& p) {
        return std::find(overdue.begin(), overdue.end(), p) != overdue.end();
      });
      lock.unlock();
      for (auto& s : overdue)
        runner_.finish(*s->job,
                       Outcome{Json(), std::nullopt,
                               std::make_exception_ptr(TimeLimitExceeded(*s->limits.hard))});
      lock.lock();
      continue;
    }
    std::erase_if(undelivered_, [](const auto& u) { return u.first->hooks.terminate(u.second); });
    if (!undelivered_.empty()) next = std::min(next, now + std::chrono::milliseconds(5));
    if (next == std::chrono::steady_clock::time_point::max())
      wake_.wait(lock);
    else
      wake_.wait_until(lock, next);
  }
}

}  // namespace celeriac::tq::detail
