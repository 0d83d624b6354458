#include "celeriac/tq/redis/broker.hpp"

#include "publisher.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/script.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq::redis {

using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view kSep = "\x06\x16";
constexpr int kSteps[] = {0, 3, 6, 9};
// Most tags per ZREM/HDEL command, and the pending acks that force a flush.
constexpr std::size_t kAckBatchMax = 1000;

// Pops up to ARGV[1] messages from KEYS (in order) and records each in
// unacked/unacked_index exactly as kombu does: ZADD unacked_index <now>
// <tag>; HSET unacked <tag> [<envelope>, "<exchange>", "<routing_key>"].
// The envelope text is spliced in unchanged so the entry is what Python's
// json.dumps([envelope_obj, ex, rk]) produces. ARGV[3]/ARGV[4] optionally
// carry one message already taken by BRPOP (key index, envelope). An envelope
// without a usable delivery_tag gets a synthetic one (it is dead-lettered by
// the worker, but must be held meanwhile). ARGV[5] is this consumer's receipt
// key: "<ARGV[6] = call token>\n<key_index>:<tag>\n..." is stored there so a
// call whose reply was lost (server killed) can be recovered exactly.
// Returns {key_index, env, tag}*.
Script pop_script(R"lua(
local max = tonumber(ARGV[1])
local now = ARGV[2]
local out = {}
-- kombu's delivery_tag and delivery_info sit in the envelope's last
-- "properties" object: read by pattern, they spare a JSON decode of every
-- envelope (the Redis thread's main cost here). Anything unusual: cjson.
local function quick_fields(env)
  local at, from = nil, 1
  while true do
    local s = string.find(env, '"properties"', from, true)
    if not s then break end
    at, from = s, s + 1
  end
  if not at then return nil end
  local props = string.sub(env, at)
  local tag = string.match(props, '"delivery_tag"%s*:%s*"([%w%-_%.]+)"')
  local ex = string.match(props, '"exchange"%s*:%s*"([^"\\]*)"')
  local rk = string.match(props, '"routing_key"%s*:%s*"([^"\\]*)"')
  if tag and ex and rk then return tag, ex, rk end
  return nil
end
local function hold(i, env)
  local base = ARGV[6 + i]
  local tag, ex, rk = quick_fields(env)
  local entry
  if tag then
    entry = '[' .. env .. ', "' .. ex .. '", "' .. rk .. '"]'
  else
    local ok, obj = pcall(cjson.decode, env)
    if ok and type(obj) == 'table' and type(obj.properties) == 'table'
       and type(obj.properties.delivery_tag) == 'string' and obj.properties.delivery_tag ~= '' then
      tag = obj.properties.delivery_tag
      ex, rk = '', base
      local di = obj.properties.delivery_info
      if type(di) == 'table' then
        if type(di.exchange) == 'string' then ex = di.exchange end
        if type(di.routing_key) == 'string' then rk = di.routing_key end
      end
      entry = '[' .. env .. ', ' .. cjson.encode(ex) .. ', ' .. cjson.encode(rk) .. ']'
    else
      tag = 'celeriac-untagged-' .. redis.call('INCR', 'celeriac.untagged')
      entry = cjson.encode({env, '', base})
    end
  end
  redis.call('ZADD', 'unacked_index', now, tag)
  redis.call('HSET', 'unacked', tag, entry)
  out[#out + 1] = i
  out[#out + 1] = env
  out[#out + 1] = tag
end
local pre = tonumber(ARGV[3])
if pre > 0 then hold(pre, ARGV[4]) end
for i = 1, #KEYS do
  while #out < max * 3 do
    local env = redis.call('RPOP', KEYS[i])
    if not env then break end
    hold(i, env)
  end
  if #out >= max * 3 then break end
end
if #out > 0 then
  local r = {ARGV[6]}
  for j = 1, #out, 3 do r[#r + 1] = out[j] .. ':' .. out[j + 2] end
  redis.call('SET', ARGV[5], table.concat(r, '\n'))
end
return out
)lua");

// Puts a held message back (RPUSH: consumed next) if it is still in unacked
// (kombu's WATCH/HGET/MULTI guard: a message restored by someone else is not
// restored twice). KEYS[1] = list; ARGV = tag, envelope.
Script requeue_script(R"lua(
if redis.call('HDEL', 'unacked', ARGV[1]) == 1 then
  redis.call('ZREM', 'unacked_index', ARGV[1])
  redis.call('RPUSH', KEYS[1], ARGV[2])
  return 1
end
redis.call('ZREM', 'unacked_index', ARGV[1])
return 0
)lua");

// Visibility-timeout restore of one entry: only if unacked still holds the
// exact entry read before. KEYS[1] = list; ARGV = tag, entry, envelope'.
Script restore_if_script(R"lua(
if redis.call('HGET', 'unacked', ARGV[1]) == ARGV[2] then
  redis.call('ZREM', 'unacked_index', ARGV[1])
  redis.call('HDEL', 'unacked', ARGV[1])
  redis.call('RPUSH', KEYS[1], ARGV[3])
  return 1
end
return 0
)lua");

// kombu's unacked_mutex release: compare-and-delete.
Script release_mutex_script(R"lua(
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
)lua");

// Dead-letters a held message. ARGV = tag, dead-letter entry, cap.
Script dead_script(R"lua(
redis.call('HDEL', 'unacked', ARGV[1])
redis.call('ZREM', 'unacked_index', ARGV[1])
redis.call('LPUSH', 'celeriac.dead', ARGV[2])
redis.call('LTRIM', 'celeriac.dead', 0, tonumber(ARGV[3]) - 1)
return 1
)lua");

// Parks a held message until its ETA. ARGV = tag, eta score, member.
Script park_script(R"lua(
redis.call('HDEL', 'unacked', ARGV[1])
redis.call('ZREM', 'unacked_index', ARGV[1])
redis.call('ZADD', 'celeriac.eta', ARGV[2], ARGV[3])
return 1
)lua");

// Moves due parked messages back (RPUSH: consumed next). ARGV[1] = now.
// Returns {moved, next_due_score or -1}.
Script move_due_script(R"lua(
local due = redis.call('ZRANGEBYSCORE', 'celeriac.eta', '-inf', ARGV[1], 'LIMIT', 0, 1000)
for _, m in ipairs(due) do
  redis.call('ZREM', 'celeriac.eta', m)
  local ok, v = pcall(cjson.decode, m)
  if ok and type(v) == 'table' and type(v[1]) == 'string' and type(v[2]) == 'string' then
    redis.call('RPUSH', v[1], v[2])
  else
    redis.call('LPUSH', 'celeriac.dead', cjson.encode({envelope = m, queue = '',
      reason = 'unreadable celeriac.eta entry', time = tonumber(ARGV[1])}))
  end
end
local nxt = redis.call('ZRANGE', 'celeriac.eta', 0, 0, 'WITHSCORES')
if #nxt == 2 then return {#due, nxt[2]} end
return {#due, '-1'}
)lua");

// Fleet-wide rate limit: reserves the next start slot of bucket KEYS[1]
// (the time the next start is allowed, in microseconds of Redis's clock),
// one per ARGV[1] microseconds. Returns the microseconds until the slot.
detail::Script rate_slot_script(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
return tat - now
)lua");

// Unique tasks: KEYS[1] holds the id of the pending call (PX ARGV[2]).
// Returns the other holder's id, or nil when ARGV[1] holds it now.
detail::Script claim_unique_script(R"lua(
local h = redis.call('GET', KEYS[1])
if h and h ~= ARGV[1] then return h end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
)lua");

// Deletes KEYS[1] if ARGV[1] still holds it.
detail::Script release_unique_script(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");

std::string fmt_time(double t) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, t, std::chars_format::fixed, 6);
  return std::string(buf, r.ptr);
}

std::string key_for(std::string_view queue, int step) {
  return step == 0 ? std::string(queue)
                   : std::string(queue) + std::string(kSep) + std::to_string(step);
}

[[noreturn]] void rethrow_as_broker_error(const tq::Url& url, const char* op) {
  try {
    throw;
  } catch (const tq::BrokerError&) {
    throw;
  } catch (const MessageError&) {
    throw;
  } catch (const std::exception& e) {
    throw BrokerError("Redis broker " + url.redacted() + ": " + op + ": " + e.what());
  }
}

bool is_conn_error() {
  try {
    throw;
  } catch (const ConnectionError&) {
    return true;
  } catch (const TimeoutError&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

Url to_redis_url(const tq::Url& url) {
  Url r;
  if (!url.host.empty()) r.host = url.host;
  if (url.port != 0) r.port = url.port;
  r.username = url.user;
  r.password = url.password;
  std::string_view path = url.path;
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (!path.empty()) {
    int db = -1;
    auto res = std::from_chars(path.data(), path.data() + path.size(), db);
    if (res.ec != std::errc() || res.ptr != path.data() + path.size() || db < 0)
      throw ConfigError("bad Redis URL '" + url.redacted() + "': database '" + std::string(path) +
                        "' is not a number (expected redis://[:password@]host[:port][/db])");
    r.db = db;
  }
  r.apply_tls_options(url.scheme, url.query, url.redacted());  // rediss:// + ssl_* options
  return r;
}

namespace {
BrokerOptions options_from_url(const tq::Url& url, BrokerOptions o) {
  auto num = [&](const char* key, long long fallback) -> long long {
    std::string v = url.param(key);
    if (v.empty()) return fallback;
    long long x = 0;
    auto r = std::from_chars(v.data(), v.data() + v.size(), x);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || x < 0)
      throw ConfigError("bad Redis URL '" + url.redacted() + "': " + key + "='" + v +
                        "' is not a non-negative integer");
    return x;
  };
  if (!url.param("visibility_timeout").empty())
    o.visibility_timeout = tq::visibility_timeout_of(url);
  o.eta_parking = num("eta_parking", o.eta_parking ? 1 : 0) != 0;
  o.refresh_interval = std::chrono::milliseconds(num("refresh_ms", o.refresh_interval.count()));
  o.ack_delay = std::chrono::microseconds(num("ack_delay_us", o.ack_delay.count()));
  o.publish_window =
      static_cast<std::size_t>(num("publish_window", static_cast<long long>(o.publish_window)));
  return o;
}
}  // namespace

RedisBroker::RedisBroker(const tq::Url& url) : RedisBroker(url, BrokerOptions{}) {}

RedisBroker::RedisBroker(const tq::Url& url, BrokerOptions options)
    : url_(url),
      opts_(options_from_url(url, options)),
      pool_(to_redis_url(url), opts_.connect, opts_.reconnect_timeout),
      receipt_key_("celeriac.receipt." + make_uuid()) {
  if (opts_.publish_window > 0)
    publisher_ = std::make_unique<detail::Publisher>(to_redis_url(url_), opts_.connect,
                                                     opts_.reconnect_timeout, opts_.publish_window);
}

RedisBroker::~RedisBroker() {
  close();
}

std::string RedisBroker::url() const {
  return url_.redacted();
}

void RedisBroker::check_open() const {
  if (closed_) throw BrokerError("Redis broker " + url_.redacted() + " is closed");
}

void RedisBroker::declare(std::string_view queue, Pipeline& p) {
  {
    std::lock_guard lk(mu_);
    if (!declared_.insert(std::string(queue)).second) return;
  }
  // kombu's queue_declare for the default exchange: binding "q SEP SEP q"
  std::string member =
      std::string(queue) + std::string(kSep) + std::string(kSep) + std::string(queue);
  p.add({"SADD", "_kombu.binding." + std::string(queue), member});
}

void RedisBroker::publish(std::string_view queue, int priority, std::string_view envelope) {
  if (!publisher_) {
    Outgoing o{std::string(queue), priority, std::string(envelope)};
    publish_many(std::span<const Outgoing>(&o, 1));
    return;
  }
  check_open();
  try {
    Pipeline p;
    declare(queue, p);
    p.add({"LPUSH", priority_queue_key(queue, priority), envelope});
    publisher_->publish(std::move(p), std::string(queue));
  } catch (...) {
    rethrow_as_broker_error(url_, "publish");
  }
}

void RedisBroker::flush() {
  flush_acks();
  if (!publisher_) return;
  try {
    publisher_->confirm();
  } catch (...) {
    rethrow_as_broker_error(url_, "publish");
  }
}

void RedisBroker::publish_many(std::span<const Outgoing> messages) {
  check_open();
  if (messages.empty()) return;
  try {
    if (publisher_) publisher_->confirm();  // the batch goes after earlier single publishes
    Pipeline p;
    for (auto& m : messages) declare(m.queue, p);
    // consecutive messages to the same list go in one variadic LPUSH (order kept)
    std::vector<std::string_view> argv;
    std::string cur;
    std::vector<const Outgoing*> batch;
    auto flush = [&] {
      if (batch.empty()) return;
      std::vector<std::string> a;
      a.reserve(batch.size() + 2);
      a.push_back("LPUSH");
      a.push_back(cur);
      for (auto* m : batch) a.push_back(m->envelope);
      p.add(a);
      batch.clear();
    };
    for (auto& m : messages) {
      std::string key = priority_queue_key(m.queue, m.priority);
      if (key != cur) {
        flush();
        cur = key;
      }
      batch.push_back(&m);
    }
    flush();
    if (messages.size() == 1) {  // one message: at-least-once on a lost reply, as kombu
      pool_.run([&](Connection& c) {
        for (auto& r : c.execute(p))
          if (r.is_error()) throw ReplyError("Redis " + c.describe() + ": LPUSH: " + r.str());
        return 0;
      });
      return;
    }
    publish_once(p, messages.size());
  } catch (...) {
    rethrow_as_broker_error(url_, "publish");
  }
}

// A batch goes in one MULTI/EXEC that also sets a marker key: when the
// connection dies before EXEC's reply, the marker says whether the batch
// went in, so a retry never publishes it twice. All or none; when none
// could be published by the reconnect deadline, BrokerError says so.
void RedisBroker::publish_once(Pipeline p, std::size_t count) {
  const std::string marker = "celeriac.published." + make_uuid();
  p.add({"SET", marker, "1", "PX", "600000"});
  auto deadline = SteadyClock::now() + opts_.reconnect_timeout;
  bool unknown = false;  // a transaction was sent and its outcome not learned
  for (;;) {
    std::optional<PooledConnection> c;
    try {
      c.emplace(pool_.acquire_until(deadline));
      if (unknown) {
        if ((**c).command({"EXISTS", marker}).integer() == 1) return;
        unknown = false;
      }
      unknown = true;
      auto replies = (**c).transaction(p);
      unknown = false;
      if (!replies)
        throw ReplyError("Redis " + (**c).describe() + ": batch publish: transaction aborted");
      for (auto& r : *replies)
        if (r.is_error())
          throw ReplyError("Redis " + (**c).describe() + ": batch publish: " + r.str());
      return;
    } catch (...) {
      if (!is_conn_error()) throw;
      if (c) (**c).close();
      pool_.clear();
      if (SteadyClock::now() >= deadline)
        throw BrokerError(
            "Redis " + url_.redacted() + ": batch publish of " + std::to_string(count) +
            " message(s) failed: " +
            (unknown ? "the server went away before confirming; whether the batch went in (all "
                       "of it or none: it is atomic) could not be learned before the reconnect "
                       "deadline"
                     : "none of them was published (the batch is atomic)"));
    }
  }
}

RedisBroker::ConsumeKeys RedisBroker::consume_keys(std::span<const std::string> queues) {
  std::vector<std::string> order(queues.begin(), queues.end());
  if (order.size() > 1) {
    std::lock_guard lk(mu_);
    std::rotate(order.begin(), order.begin() + static_cast<long>(rotation_++ % order.size()),
                order.end());
  }
  ConsumeKeys k;
  for (int step : kSteps)
    for (auto& q : order) {
      k.keys.push_back(key_for(q, step));
      k.bases.push_back(q);
      k.steps.push_back(step);
    }
  return k;
}

std::vector<Delivery> RedisBroker::pop(Connection& c, const ConsumeKeys& k, int pre_index,
                                       const std::string& pre_env, std::size_t max) {
  std::string token = make_uuid();
  {
    // until the reply is read, this pop may or may not have happened
    std::lock_guard lk(mu_);
    unsure_ = UnsurePop{token, pre_index, pre_env};
  }
  std::vector<std::string> args{std::to_string(max),
                                fmt_time(unix_now()),
                                std::to_string(pre_index),
                                pre_env,
                                receipt_key_,
                                token};
  args.insert(args.end(), k.bases.begin(), k.bases.end());
  // the acks recorded since the last round trip travel with this pop
  std::vector<std::string> acks = take_pending_acks();
  pop_script.ensure_loaded(c);
  Pipeline p;
  add_ack_commands(p, acks);
  pop_script.add_to(p, k.keys, args);
  std::vector<Reply> replies;
  try {
    replies = c.execute(p);
  } catch (...) {
    return_pending_acks(std::move(acks));
    throw;
  }
  Reply r = std::move(replies.back());
  if (is_noscript(r)) r = pop_script.run(c, k.keys, args);  // server restarted
  if (r.is_error()) throw ReplyError("Redis " + c.describe() + ": reserve script: " + r.str());
  {
    std::lock_guard lk(mu_);
    unsure_.reset();
  }
  std::vector<Delivery> out;
  const auto& e = r.elements();
  out.reserve(e.size() / 3);
  for (size_t i = 0; i + 2 < e.size(); i += 3) {
    size_t idx = static_cast<size_t>(e[i].integer()) - 1;
    Delivery d;
    d.envelope = e[i + 1].str();
    d.queue = k.bases.at(idx);
    d.priority = k.steps.at(idx);
    d.tag = e[i + 2].str();
    d.redelivered = d.envelope.find("\"redelivered\": true") != std::string::npos;
    out.push_back(std::move(d));
  }
  return out;
}

// After a reconnect: the lost pop either ran (its receipt names its token;
// its messages are in unacked and are taken back from there) or did not (a
// message BRPOP had already taken is popped into unacked again).
std::vector<Delivery> RedisBroker::recover_unsure(Connection& c, const ConsumeKeys& k,
                                                  std::size_t max) {
  std::optional<UnsurePop> u;
  {
    std::lock_guard lk(mu_);
    u.swap(unsure_);
  }
  if (!u) return {};
  try {
    Reply receipt = c.command({"GET", receipt_key_});
    std::vector<Delivery> out;
    if (receipt.is_string() && receipt.str().rfind(u->token + "\n", 0) == 0) {
      std::string_view rest(receipt.str());
      rest.remove_prefix(u->token.size() + 1);
      while (!rest.empty()) {
        auto nl = rest.find('\n');
        std::string_view line = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        size_t idx = 0;
        std::from_chars(line.data(), line.data() + colon, idx);
        if (idx == 0 || idx > k.keys.size()) continue;
        Delivery d;
        d.tag = std::string(line.substr(colon + 1));
        Reply entry = c.command({"HGET", "unacked", d.tag});
        if (!entry.is_string()) continue;  // restored or acked by someone meanwhile
        OrderedJson j = loads_ordered(entry.str());
        d.envelope = j.is_array() && !j.empty()
                         ? (j[0].is_string() ? j[0].get<std::string>() : dumps(j[0]))
                         : "";
        d.queue = k.bases[idx - 1];
        d.priority = k.steps[idx - 1];
        d.redelivered = d.envelope.find("\"redelivered\": true") != std::string::npos;
        out.push_back(std::move(d));
      }
      return out;
    }
    if (!u->pre_env.empty()) return pop(c, k, u->pre_index, u->pre_env, max);
    return out;
  } catch (...) {
    std::lock_guard lk(mu_);
    if (!unsure_) unsure_ = std::move(u);
    throw;
  }
}

std::vector<Delivery> RedisBroker::reserve(std::span<const std::string> queues, std::size_t max,
                                           std::chrono::milliseconds timeout) {
  check_open();
  if (queues.empty() || max == 0) return {};
  start_refresher();
  auto deadline = SteadyClock::now() + timeout;
  auto k = consume_keys(queues);
  try {
    std::vector<Delivery> got;
    for (;;) {
      auto c = pool_.acquire_until(deadline);
      try {
        std::optional<SteadyClock::time_point> next_due;
        got = recover_unsure(*c, k, max);
        if (opts_.eta_parking) next_due = maybe_move_due(*c);
        if (got.empty()) got = pop(*c, k, 0, "", max);
        if (got.empty()) {
          flush_acks_on(*c);  // do not let acks wait through a blocking BRPOP
          auto left = deadline - SteadyClock::now();
          if (next_due && *next_due - SteadyClock::now() < left)
            left = *next_due - SteadyClock::now();
          if (left > std::chrono::milliseconds(5)) {
            std::vector<std::string> a{"BRPOP"};
            a.insert(a.end(), k.keys.begin(), k.keys.end());
            a.push_back(fmt_time(std::chrono::duration<double>(left).count()));
            Pipeline p;
            p.add(a);
            c->send(p);
            auto br = c->read_reply(left + c->options().io_timeout);
            if (br->is_error())
              throw ReplyError("Redis " + c->describe() + ": BRPOP: " + br->str());
            if (!br->is_nil()) {
              const std::string& key = (*br)[0].str();
              auto it = std::find(k.keys.begin(), k.keys.end(), key);
              int idx = it == k.keys.end() ? 1 : static_cast<int>(it - k.keys.begin()) + 1;
              got = pop(*c, k, idx, (*br)[1].str(), max);
            }
          }
        }
        if (opts_.eta_parking && !got.empty()) got = park_future(*c, std::move(got));
      } catch (...) {
        if (!is_conn_error()) throw;
        (*c).close();
        pool_.clear();
        if (SteadyClock::now() >= deadline) throw;
        continue;  // reconnect (with backoff, until the deadline) and try again
      }
      if (!got.empty() || SteadyClock::now() >= deadline) break;
    }
    std::lock_guard lk(mu_);
    for (auto& d : got) held_[d.tag] = Held{key_for(d.queue, d.priority), d.envelope};
    return got;
  } catch (...) {
    rethrow_as_broker_error(url_, "reserve");
  }
}

std::optional<SteadyClock::time_point> RedisBroker::maybe_move_due(Connection& c) {
  {
    std::lock_guard lk(mu_);
    auto now = SteadyClock::now();
    if (now < next_eta_check_) return next_eta_check_;
    next_eta_check_ = now + std::chrono::milliseconds(250);
  }
  auto [moved, next_score] = move_due_on(c);
  (void)moved;
  std::lock_guard lk(mu_);
  if (next_score >= 0) {
    double in = next_score - unix_now();
    auto due = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                        std::chrono::duration<double>(std::max(in, 0.0)));
    if (due < next_eta_check_) next_eta_check_ = due;
  }
  return next_eta_check_;
}

std::pair<std::size_t, double> RedisBroker::move_due_on(Connection& c) {
  Reply r = move_due_script.run(c, {}, {fmt_time(unix_now())});
  double next = -1;
  const std::string& s = r[1].str();
  std::from_chars(s.data(), s.data() + s.size(), next);
  return {static_cast<std::size_t>(r[0].integer()), next};
}

std::vector<Delivery> RedisBroker::park_future(Connection& c, std::vector<Delivery> got) {
  std::vector<Delivery> keep;
  keep.reserve(got.size());
  double now = unix_now();
  double threshold = std::chrono::duration<double>(opts_.eta_park_threshold).count();
  for (auto& d : got) {
    // Python always writes "eta": null when there is none: skip parsing then
    if (d.envelope.find("\"eta\": null") != std::string::npos ||
        d.envelope.find("\"eta\"") == std::string::npos) {
      keep.push_back(std::move(d));
      continue;
    }
    double eta = 0;
    try {
      Json env = loads(d.envelope);
      const Json& e = env.at("headers").at("eta");
      if (!e.is_string()) {
        keep.push_back(std::move(d));
        continue;
      }
      eta = std::chrono::duration<double>(parse_iso8601(e.get<std::string>()).time_since_epoch())
                .count();
    } catch (...) {
      keep.push_back(std::move(d));  // let the worker judge (and dead-letter) it
      continue;
    }
    if (eta - now <= threshold) {
      keep.push_back(std::move(d));
      continue;
    }
    std::string member = dumps(Json::array({key_for(d.queue, d.priority), d.envelope}));
    park_script.run(c, {}, {d.tag, fmt_time(eta), member});
    std::lock_guard lk(mu_);
    // the next check must come no later than this ETA
    auto due = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                        std::chrono::duration<double>(eta - now));
    if (due < next_eta_check_) next_eta_check_ = due;
  }
  return keep;
}

std::size_t RedisBroker::move_due_eta() {
  check_open();
  try {
    return pool_.run([&](Connection& c) { return move_due_on(c).first; });
  } catch (...) {
    rethrow_as_broker_error(url_, "move_due_eta");
  }
}

std::size_t RedisBroker::parked_count() {
  check_open();
  try {
    return pool_.run([&](Connection& c) {
      return static_cast<std::size_t>(c.command({"ZCARD", kEtaKey}).integer());
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "parked_count");
  }
}

void RedisBroker::ack(const Delivery& d) {
  ack_many(std::span<const Delivery>(&d, 1));
}

void RedisBroker::ack_many(std::span<const Delivery> ds) {
  check_open();
  if (ds.empty()) return;
  {
    std::lock_guard lk(mu_);
    for (auto& d : ds) {
      held_.erase(d.tag);
      pending_acks_.push_back(d.tag);
    }
  }
  if (opts_.ack_delay.count() == 0 || pending_ack_count() >= kAckBatchMax) {
    flush_acks();
    return;
  }
  start_acker();
  acker_cv_.notify_all();
}

void RedisBroker::add_ack_commands(Pipeline& p, const std::vector<std::string>& tags) {
  for (size_t i = 0; i < tags.size(); i += kAckBatchMax) {
    std::vector<std::string> zrem{"ZREM", "unacked_index"};
    std::vector<std::string> hdel{"HDEL", "unacked"};
    for (size_t j = i; j < tags.size() && j < i + kAckBatchMax; ++j) {
      zrem.push_back(tags[j]);
      hdel.push_back(tags[j]);
    }
    p.add(zrem).add(hdel);
  }
}

std::vector<std::string> RedisBroker::take_pending_acks() {
  std::lock_guard lk(mu_);
  return std::exchange(pending_acks_, {});
}

void RedisBroker::return_pending_acks(std::vector<std::string> tags) {
  if (tags.empty()) return;
  std::lock_guard lk(mu_);
  pending_acks_.insert(pending_acks_.begin(), tags.begin(), tags.end());
}

std::size_t RedisBroker::pending_ack_count() const {
  std::lock_guard lk(mu_);
  return pending_acks_.size();
}

void RedisBroker::flush_acks_on(Connection& c) {
  std::vector<std::string> acks = take_pending_acks();
  if (acks.empty()) return;
  Pipeline p;
  add_ack_commands(p, acks);
  try {
    c.execute(p);  // ZREM/HDEL of unknown members are no-ops: safe to resend
  } catch (...) {
    return_pending_acks(std::move(acks));
    throw;
  }
}

void RedisBroker::flush_acks() {
  if (closed_ && pending_ack_count() == 0) return;
  try {
    pool_.run([&](Connection& c) {
      flush_acks_on(c);
      return 0;
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "ack");
  }
}

void RedisBroker::start_acker() {
  std::lock_guard lk(mu_);
  if (acker_.joinable() || acker_stop_) return;
  acker_ = std::thread([this] {
    std::unique_lock lk(mu_);
    while (!acker_stop_) {
      acker_cv_.wait(lk, [this] { return acker_stop_ || !pending_acks_.empty(); });
      if (acker_stop_) break;
      // gather the acks of the next ack_delay into one round trip
      acker_cv_.wait_for(lk, opts_.ack_delay, [this] { return acker_stop_; });
      lk.unlock();
      bool failed = false;
      try {
        flush_acks();
      } catch (...) {
        failed = true;  // server away: they stay pending; reserve() reports the outage
      }
      lk.lock();
      if (failed)
        acker_cv_.wait_for(lk, std::chrono::milliseconds(100), [this] { return acker_stop_; });
    }
  });
}

void RedisBroker::forget_held(const std::string& tag) {
  std::lock_guard lk(mu_);
  held_.erase(tag);
}

void RedisBroker::requeue(const Delivery& d) {
  check_open();
  try {
    std::string env = mark_redelivered(d.envelope);
    pool_.run([&](Connection& c) {
      return requeue_script.run(c, {key_for(d.queue, d.priority)}, {d.tag, env}).integer();
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "requeue");
  }
  forget_held(d.tag);
}

void RedisBroker::dead_letter(const Delivery& d, std::string_view reason) {
  check_open();
  OrderedJson entry = OrderedJson::object();
  entry["envelope"] = d.envelope;
  entry["queue"] = d.queue;
  entry["reason"] = std::string(reason);
  entry["time"] = unix_now();
  try {
    std::string text = dumps(entry);
    pool_.run([&](Connection& c) {
      return dead_script.run(c, {}, {d.tag, text, std::to_string(kDeadLetterCap)}).integer();
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "dead_letter");
  }
  forget_held(d.tag);
}

std::vector<DeadLetter> RedisBroker::dead_letters(std::size_t limit) {
  check_open();
  std::vector<DeadLetter> out;
  if (limit == 0) return out;
  try {
    Reply r = pool_.run([&](Connection& c) {
      return c.command({"LRANGE", kDeadLetterKey, "0", std::to_string(limit - 1)});
    });
    const auto& e = r.elements();
    for (auto it = e.rbegin(); it != e.rend(); ++it) {  // newest first on the list
      DeadLetter dl;
      try {
        Json j = loads(it->str());
        dl.envelope = j.value("envelope", "");
        dl.queue = j.value("queue", "");
        dl.reason = j.value("reason", "");
        dl.time = j.value("time", 0.0);
      } catch (const std::exception& ex) {
        dl.envelope = it->str();
        dl.reason = std::string("unreadable dead-letter entry: ") + ex.what();
      }
      out.push_back(std::move(dl));
    }
  } catch (...) {
    rethrow_as_broker_error(url_, "dead_letters");
  }
  return out;
}

std::size_t RedisBroker::restore_unacked() {
  if (closed_) return 0;
  try {
    flush_acks();  // what was acked must not be restored
  } catch (const BrokerError&) {
    // server away: the requeue below fails the same way and says so
  }
  std::vector<std::pair<std::string, Held>> mine;
  {
    std::lock_guard lk(mu_);
    mine.assign(held_.begin(), held_.end());
  }
  if (mine.empty()) return 0;
  std::size_t restored = 0;
  try {
    pool_.run([&](Connection& c) {
      requeue_script.ensure_loaded(c);
      Pipeline p;
      for (auto& [tag, h] : mine)
        requeue_script.add_to(p, {h.list_key}, {tag, mark_redelivered(h.envelope)});
      auto replies = c.execute(p);
      if (!replies.empty() && is_noscript(replies[0])) {
        requeue_script.reload(c);
        replies = c.execute(p);
      }
      restored = 0;
      for (auto& r : replies)
        if (r.is_integer() && r.integer() == 1) ++restored;
      return 0;
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "restore_unacked");
  }
  std::lock_guard lk(mu_);
  for (auto& [tag, h] : mine) held_.erase(tag);
  return restored;
}

std::size_t RedisBroker::restore_stale(std::chrono::seconds visibility_timeout) {
  check_open();
  try {
    return pool_.run([&](Connection& c) -> std::size_t {
      std::string token = make_uuid();
      if (c.command({"SET", "unacked_mutex", token, "PX", "300000", "NX"}).is_nil()) return 0;
      std::size_t restored = 0;
      try {
        double ceiling = unix_now() - static_cast<double>(visibility_timeout.count());
        Reply stale =
            c.command({"ZREVRANGEBYSCORE", "unacked_index", fmt_time(ceiling), "0", "WITHSCORES"});
        std::set<std::string> mine;
        {
          std::lock_guard lk(mu_);
          for (auto& [tag, h] : held_) mine.insert(tag);
          mine.insert(pending_acks_.begin(), pending_acks_.end());  // acked, not yet sent
        }
        const auto& e = stale.elements();
        for (size_t i = 0; i + 1 < e.size(); i += 2) {
          const std::string& tag = e[i].str();
          if (mine.count(tag)) continue;  // ours and alive (the refresher keeps it fresh)
          Reply entry = c.command({"HGET", "unacked", tag});
          if (entry.is_nil()) {
            c.command({"ZREM", "unacked_index", tag});
            continue;
          }
          std::string env, exchange, rk;
          try {
            OrderedJson j = loads_ordered(entry.str());
            if (!j.is_array() || j.size() < 3)
              throw MessageError("not [envelope, exchange, routing_key]");
            env = j[0].is_string() ? j[0].get<std::string>() : dumps(j[0]);
            exchange = j[1].get<std::string>();
            rk = j[2].get<std::string>();
          } catch (const std::exception& ex) {
            OrderedJson dl = OrderedJson::object();
            dl["envelope"] = entry.str();
            dl["queue"] = "";
            dl["reason"] = std::string("unreadable unacked entry: ") + ex.what();
            dl["time"] = unix_now();
            dead_script.run(c, {}, {tag, dumps(dl), std::to_string(kDeadLetterCap)});
            continue;
          }
          std::vector<std::string> targets;
          if (exchange.empty()) {
            targets.push_back(rk);
          } else {
            // kombu routes through the exchange's binding table (direct match)
            Reply members = c.command({"SMEMBERS", "_kombu.binding." + exchange});
            for (auto& m : members.elements()) {
              const std::string& s = m.str();
              auto a = s.find(kSep);
              auto b = a == std::string::npos ? a : s.find(kSep, a + kSep.size());
              if (b == std::string::npos) continue;
              if (s.substr(0, a) == rk) targets.push_back(s.substr(b + kSep.size()));
            }
            if (targets.empty()) targets.push_back(rk);
          }
          std::string env2 = mark_redelivered(env);
          for (auto& q : targets)
            if (restore_if_script.run(c, {q}, {tag, entry.str(), env2}).integer() == 1) ++restored;
        }
      } catch (...) {
        release_mutex_script.run(c, {"unacked_mutex"}, {token});
        throw;
      }
      release_mutex_script.run(c, {"unacked_mutex"}, {token});
      return restored;
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "restore_stale");
  }
}

std::size_t RedisBroker::purge(std::string_view queue) {
  check_open();
  try {
    return pool_.run([&](Connection& c) {
      Pipeline p;
      for (int step : kSteps) p.add({"LLEN", key_for(queue, step)});
      for (int step : kSteps) p.add({"DEL", key_for(queue, step)});
      auto r = c.transaction(p);
      std::size_t n = 0;
      if (r)
        for (int i = 0; i < 4; ++i) n += static_cast<std::size_t>((*r)[i].integer());
      return n;
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "purge");
  }
}

std::size_t RedisBroker::queue_length(std::string_view queue) {
  check_open();
  try {
    return pool_.run([&](Connection& c) {
      Pipeline p;
      for (int step : kSteps) p.add({"LLEN", key_for(queue, step)});
      std::size_t n = 0;
      for (auto& r : c.execute(p)) n += static_cast<std::size_t>(r.integer());
      return n;
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "queue_length");
  }
}

std::chrono::microseconds RedisBroker::take_rate_slot(std::string_view key,
                                                      std::chrono::microseconds interval) {
  check_open();
  try {
    return pool_.run([&](Connection& c) {
      return std::chrono::microseconds(
          rate_slot_script.run(c, {std::string(key)}, {std::to_string(interval.count())})
              .integer());
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "take_rate_slot");
  }
}

std::optional<std::string> RedisBroker::claim_unique(std::string_view key, std::string_view id,
                                                     std::chrono::milliseconds ttl) {
  check_open();
  try {
    return pool_.run([&](Connection& c) -> std::optional<std::string> {
      Reply r = claim_unique_script.run(c, {std::string(key)},
                                        {std::string(id), std::to_string(ttl.count())});
      if (r.is_nil()) return std::nullopt;
      return r.str();
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "claim_unique");
  }
}

void RedisBroker::release_unique(std::string_view key, std::string_view id) {
  check_open();
  try {
    pool_.run([&](Connection& c) {
      return release_unique_script.run(c, {std::string(key)}, {std::string(id)}).integer();
    });
  } catch (...) {
    rethrow_as_broker_error(url_, "release_unique");
  }
}

std::size_t RedisBroker::held_count() const {
  std::lock_guard lk(mu_);
  return held_.size();
}

std::size_t RedisBroker::refresh_held() {
  std::vector<std::string> tags;
  {
    std::lock_guard lk(mu_);
    for (auto& [tag, h] : held_) tags.push_back(tag);
  }
  if (tags.empty()) return 0;
  std::string now = fmt_time(unix_now());
  Pipeline p;
  for (size_t i = 0; i < tags.size(); i += 500) {
    // XX: never re-create the index entry of a message acked meanwhile
    std::vector<std::string> a{"ZADD", "unacked_index", "XX"};
    for (size_t j = i; j < tags.size() && j < i + 500; ++j) {
      a.push_back(now);
      a.push_back(tags[j]);
    }
    p.add(a);
  }
  pool_.run([&](Connection& c) {
    c.execute(p);
    return 0;
  });
  return tags.size();
}

void RedisBroker::start_refresher() {
  std::lock_guard lk(mu_);
  if (refresher_.joinable() || refresher_stop_) return;
  auto interval = opts_.refresh_interval;
  if (interval.count() == 0) {
    interval = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.visibility_timeout) / 4;
    if (interval < std::chrono::seconds(1)) interval = std::chrono::seconds(1);
  }
  refresher_ = std::thread([this, interval] {
    // Like kombu: restore crashed workers' stale messages at start and then
    // every ~100 s (at most every visibility_timeout); refresh our own held
    // messages' scores every `interval`.
    auto restore_every =
        std::min<SteadyClock::duration>(std::chrono::seconds(100), opts_.visibility_timeout);
    auto next_restore = SteadyClock::now();
    std::unique_lock lk(mu_);
    while (!refresher_stop_) {
      lk.unlock();
      try {
        refresh_held();
        if (SteadyClock::now() >= next_restore) {
          restore_stale(opts_.visibility_timeout);
          next_restore = SteadyClock::now() + restore_every;
        }
      } catch (...) {
        // the server is away: try again next round (reserve() reports it)
      }
      lk.lock();
      refresher_cv_.wait_for(lk, interval, [this] { return refresher_stop_; });
    }
  });
}

void RedisBroker::close() {
  if (closed_.exchange(true)) return;
  {
    std::lock_guard lk(mu_);
    refresher_stop_ = true;
    acker_stop_ = true;
  }
  refresher_cv_.notify_all();
  acker_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  if (acker_.joinable()) acker_.join();
  if (publisher_) publisher_->close();  // reports (logs) any publish Redis refused
  try {
    // the last acks, and this consumer's receipt (only needed while running)
    pool_.run([&](Connection& c) {
      flush_acks_on(c);
      c.command({"DEL", receipt_key_});
      return 0;
    });
  } catch (...) {
    // server away: unsent acks are redelivered after the visibility timeout
  }
  pool_.clear();
}

}  // namespace celeriac::tq::redis
