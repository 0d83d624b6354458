// The process-local beat store (memory:// backends and tests).
#include <mutex>

#include "celeriac/tq/beat_store.hpp"

namespace celeriac::tq {
namespace {

class MemoryBeatStore final : public BeatStore {
 public:
  explicit MemoryBeatStore(const BeatClock& clock) : clock_(clock) {}

  bool acquire(const std::string& instance, std::chrono::milliseconds ttl) override {
    std::lock_guard lock(mu_);
    auto now = clock_.mono();
    if (!holder_.empty() && holder_ != instance && now < expires_) return false;
    holder_ = instance;
    expires_ = now + ttl;
    return true;
  }
  void release(const std::string& instance) override {
    std::lock_guard lock(mu_);
    if (holder_ == instance) holder_.clear();
  }
  std::optional<LeaseInfo> lease() override {
    std::lock_guard lock(mu_);
    auto now = clock_.mono();
    if (holder_.empty() || now >= expires_) return std::nullopt;
    return LeaseInfo{holder_,
                     std::chrono::duration_cast<std::chrono::milliseconds>(expires_ - now)};
  }
  std::map<std::string, EntryState> load() override {
    std::lock_guard lock(mu_);
    return states_;
  }
  bool commit(const std::string& instance, const Updates& updates) override {
    std::lock_guard lock(mu_);
    if (holder_ != instance || clock_.mono() >= expires_) return false;
    for (const auto& [name, state] : updates) states_[name] = state;
    return true;
  }
  std::string describe() const override { return "memory://"; }

 private:
  const BeatClock& clock_;
  std::mutex mu_;
  std::string holder_;
  std::chrono::steady_clock::time_point expires_{};
  std::map<std::string, EntryState> states_;
};

}  // namespace

std::unique_ptr<BeatStore> make_memory_beat_store(const BeatClock& clock) {
  return std::make_unique<MemoryBeatStore>(clock);
}

}  // namespace celeriac::tq
