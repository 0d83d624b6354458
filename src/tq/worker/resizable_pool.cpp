// Resizable execution pools: a gate in front of "lanes", each a pool of
// the -P kind. The gate lets at most `limit` bodies run at once; growing
// adds a lane of n slots (threads or child processes), shrinking lowers the
// limit and retires grown lanes that are no longer needed once idle.
#include "resizable_pool.hpp"

#include <deque>
#include <mutex>
#include <vector>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::detail {

namespace {

class GatedPool;

// The runner a lane's pool calls: forwards to the lifecycle and tells the
// gate when a job's slot is free again.
class SlotRunner final : public JobRunner {
 public:
  SlotRunner(JobRunner& inner, GatedPool& gate, std::size_t lane)
      : inner_(inner), gate_(gate), lane_(lane) {}
  bool begin(const JobPtr& job) override;
  void finish(Job& job, Outcome outcome) override;
  App& app() override { return inner_.app(); }
  const std::string& hostname() const override { return inner_.hostname(); }

 private:
  JobRunner& inner_;
  GatedPool& gate_;
  std::size_t lane_;
};

struct Lane {
  std::unique_ptr<SlotRunner> runner;
  std::unique_ptr<ExecutionPool> pool;
  std::size_t capacity = 0;
  std::size_t running = 0;
  bool retiring = false;  // takes no new job; shut down once idle
};

class GatedPool final : public ResizablePool {
 public:
  GatedPool(std::string_view kind, JobRunner& runner, const PoolSettings& s)
      : kind_(kind), runner_(runner), settings_(s), limit_(s.concurrency) {
    lanes_.push_back(make_lane(s.concurrency, 0));
  }
  std::string_view name() const noexcept override { return kind_; }
  std::size_t concurrency() const noexcept override {
    std::lock_guard lock(mu_);
    return limit_;
  }
  void submit(JobPtr job) override {
    ExecutionPool* to = nullptr;
    {
      std::lock_guard lock(mu_);
      if (!stopping_) {
        to = take_slot();
        if (!to) {
          pending_.push_back(std::move(job));
          return;
        }
      } else {
        to = lanes_.front()->pool.get();  // the lifecycle puts it back
      }
    }
    to->submit(std::move(job));
  }
  void shutdown() override {
    std::deque<JobPtr> left;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      left.swap(pending_);
    }
    // Not started: the lifecycle (already stopping) puts each one back.
    for (auto& j : left) lanes_.front()->pool->submit(std::move(j));
    for (auto& l : lanes_)
      if (l) l->pool->shutdown();
  }
  void grow(std::size_t n) override {
    if (n == 0) return;
    std::size_t index;
    {
      std::lock_guard lock(mu_);
      index = lanes_.size();
      lanes_.push_back(nullptr);  // reserved: lanes are never moved
    }
    auto lane = make_lane(n, index);  // outside the lock: may start children
    {
      std::lock_guard lock(mu_);
      lanes_[index] = std::move(lane);
      limit_ += n;
    }
    drain();
  }
  void shrink(std::size_t n) override {
    std::vector<std::shared_ptr<Lane>> idle;
    {
      std::lock_guard lock(mu_);
      limit_ = limit_ > n ? limit_ - n : 1;
      std::size_t open = 0;
      for (auto& l : lanes_)
        if (l && !l->retiring) open += l->capacity;
      for (std::size_t i = lanes_.size(); i-- > 1;) {
        auto& l = lanes_[i];
        if (!l || l->retiring || open - l->capacity < limit_) continue;
        l->retiring = true;
        open -= l->capacity;
        if (l->running == 0) idle.push_back(std::move(l));
      }
    }
    for (auto& l : idle) l->pool->shutdown();
  }

  bool terminate(const std::string& task_id, int signal) override {
    std::vector<std::shared_ptr<Lane>> lanes;
    {
      std::lock_guard lock(mu_);
      lanes = lanes_;
    }
    for (auto& l : lanes)
      if (l && l->pool->terminate(task_id, signal)) return true;
    return false;
  }

  // A job of lane `i` left its slot.
  void done(std::size_t i) {
    {
      std::lock_guard lock(mu_);
      --lanes_[i]->running;
      --running_;
    }
    drain();
  }

 private:
  std::shared_ptr<Lane> make_lane(std::size_t n, std::size_t index) {
    auto lane = std::make_shared<Lane>();
    lane->runner = std::make_unique<SlotRunner>(runner_, *this, index);
    PoolSettings s = settings_;
    s.concurrency = n;
    lane->pool = make_execution_pool(kind_, *lane->runner, s);
    lane->capacity = n;
    return lane;
  }

  // With mu_ held: a lane with a free slot under the limit, counted as taken.
  ExecutionPool* take_slot() {
    if (running_ >= limit_) return nullptr;
    for (auto& l : lanes_)
      if (l && !l->retiring && l->running < l->capacity) {
        ++l->running;
        ++running_;
        return l->pool.get();
      }
    return nullptr;
  }

  void drain() {
    for (;;) {
      ExecutionPool* to = nullptr;
      JobPtr job;
      {
        std::lock_guard lock(mu_);
        if (pending_.empty() || stopping_) return;
        to = take_slot();
        if (!to) return;
        job = std::move(pending_.front());
        pending_.pop_front();
      }
      to->submit(std::move(job));
    }
  }

  std::string kind_;
  JobRunner& runner_;
  PoolSettings settings_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Lane>> lanes_;  // [0] is the pool the worker started with
  std::deque<JobPtr> pending_;                // submitted while every slot was taken
  std::size_t limit_;
  std::size_t running_ = 0;
  bool stopping_ = false;
};

bool SlotRunner::begin(const JobPtr& job) {
  if (inner_.begin(job)) return true;
  gate_.done(lane_);
  return false;
}

void SlotRunner::finish(Job& job, Outcome outcome) {
  inner_.finish(job, std::move(outcome));
  gate_.done(lane_);
}

// solo and async: the pool as made, whose size is fixed.
class FixedPool final : public ResizablePool {
 public:
  explicit FixedPool(std::unique_ptr<ExecutionPool> p) : pool_(std::move(p)) {}
  std::string_view name() const noexcept override { return pool_->name(); }
  std::size_t concurrency() const noexcept override { return pool_->concurrency(); }
  void submit(JobPtr job) override { pool_->submit(std::move(job)); }
  void shutdown() override { pool_->shutdown(); }
  bool terminate(const std::string& task_id, int signal) override {
    return pool_->terminate(task_id, signal);
  }
  void grow(std::size_t) override { refuse("grow"); }
  void shrink(std::size_t) override { refuse("shrink"); }

 private:
  [[noreturn]] void refuse(const char* what) const {
    throw ConfigError("the " + std::string(pool_->name()) + " pool cannot " + what +
                      " (only the threads and processes pools change size at run time)");
  }
  std::unique_ptr<ExecutionPool> pool_;
};

}  // namespace

std::unique_ptr<ResizablePool> make_resizable_pool(std::string_view kind, JobRunner& runner,
                                                   const PoolSettings& settings) {
  if (kind == "threads" || kind == "processes")
    return std::make_unique<GatedPool>(kind, runner, settings);
  return std::make_unique<FixedPool>(make_execution_pool(kind, runner, settings));
}

}  // namespace celeriac::tq::detail
