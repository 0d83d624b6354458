// The Redis beat store (RedBeat's lock design): the lease is a key taken with
// SET NX PX and extended by a Lua script that compares the holder first;
// state is one hash, written by a script that checks the lease in the same
// atomic step (a fenced write).
#include <mutex>

#include "celeriac/redis/connection.hpp"
#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/pool.hpp"
#include "celeriac/tq/beat_store.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/url.hpp"
#include "state_codec.hpp"

namespace celeriac::tq {
namespace {

// KEYS[1] lease, ARGV[1] instance, ARGV[2] ttl ms.
constexpr const char* kExtend = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0)lua";

// KEYS[1] lease, KEYS[2] state hash, ARGV[1] instance, then entry/state pairs.
constexpr const char* kCommit = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1)lua";

// KEYS[1] lease, ARGV[1] instance.
constexpr const char* kRelease = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0)lua";

class RedisBeatStore final : public BeatStore {
 public:
  RedisBeatStore(const Url& url, const std::string& name)
      : url_(url.redacted()),
        pool_(redis::to_redis_url(url), redis::ConnectOptions{}, std::chrono::seconds(5)),
        lease_key_(name + ":lock"),
        state_key_(name + ":state") {}

  bool acquire(const std::string& instance, std::chrono::milliseconds ttl) override {
    auto ms = std::to_string(ttl.count());
    return guard([&] {
      return pool_.run([&](redis::Connection& c) {
        if (c.command({"EVAL", kExtend, "1", lease_key_, instance, ms}).integer() == 1) return true;
        return !c.command({"SET", lease_key_, instance, "NX", "PX", ms}).is_nil();
      });
    });
  }
  void release(const std::string& instance) override {
    guard([&] {
      return pool_.run([&](redis::Connection& c) {
        return c.command({"EVAL", kRelease, "1", lease_key_, instance});
      });
    });
  }
  std::optional<LeaseInfo> lease() override {
    return guard([&]() -> std::optional<LeaseInfo> {
      redis::Pipeline p;
      p.add({"GET", lease_key_}).add({"PTTL", lease_key_});
      auto r = pool_.run([&](redis::Connection& c) { return c.execute(p); });
      if (r.size() != 2 || r[0].is_nil() || r[0].is_error()) return std::nullopt;
      return LeaseInfo{r[0].str(), std::chrono::milliseconds(
                                       r[1].is_integer() ? std::max(0LL, r[1].integer()) : 0)};
    });
  }
  std::map<std::string, EntryState> load() override {
    return guard([&] {
      auto r = pool_.run([&](redis::Connection& c) { return c.command({"HGETALL", state_key_}); });
      std::map<std::string, EntryState> out;
      for (std::size_t i = 0; i + 1 < r.size(); i += 2)
        out[r[i].str()] = detail::decode_entry_state(r[i].str(), r[i + 1].str());
      return out;
    });
  }
  bool commit(const std::string& instance, const Updates& updates) override {
    std::vector<std::string> argv{"EVAL", kCommit, "2", lease_key_, state_key_, instance};
    argv.reserve(6 + 2 * updates.size());
    for (const auto& [entry, state] : updates) {
      argv.push_back(entry);
      argv.push_back(detail::encode_entry_state(state));
    }
    // Not retried on a lost connection: a commit that may have landed must not be doubled by a
    // resend.
    return guard([&] {
      auto c = pool_.acquire();
      return c->command(argv).integer() == 1;
    });
  }
  std::string describe() const override { return url_; }

 private:
  template <class F>
  auto guard(F&& fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const redis::RedisError& e) {
      throw BackendError(std::string("beat store (") + url_ + "): " + e.what());
    } catch (const celeriac::TimeoutError& e) {
      throw BackendError(std::string("beat store (") + url_ + "): " + e.what());
    }
  }

  std::string url_;
  redis::ConnectionPool pool_;
  std::string lease_key_, state_key_;
};

}  // namespace

std::unique_ptr<BeatStore> make_redis_beat_store(const Url& url, const std::string& name) {
  return std::make_unique<RedisBeatStore>(url, name);
}

}  // namespace celeriac::tq
