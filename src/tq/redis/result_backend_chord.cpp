// Chords on the Redis result backend with Celery's keys
// (celery/backends/redis.py, ../shared/CELERY-PROTOCOL.md §8.3), so a chord
// whose header parts run on Python and C++ workers completes once:
//   celery-taskset-meta-<gid>.s  header size (set by the client)
//   celery-taskset-meta-<gid>.t  parts added later (INCR by add_to_chord)
//   celery-taskset-meta-<gid>.j  ZSET of [1, id, state, result] by group_index
//   celery-taskset-meta-<gid>    a saved GroupResult ({"result": as_tuple})
#include <charconv>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/redis/errors.hpp"
#include "celeriac/tq/redis/result_backend.hpp"

namespace celeriac::tq::redis {

namespace {

constexpr std::string_view kGroupPrefix = "celery-taskset-meta-";

std::string group_key(std::string_view gid, std::string_view suffix = {}) {
  std::string k(kGroupPrefix);
  k += gid;
  k += suffix;
  return k;
}

long long to_count(const Reply& r) {
  if (r.is_nil()) return 0;
  if (r.is_integer()) return r.integer();
  long long v = 0;
  const std::string& s = r.str();
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size())
    throw BackendError("chord counter holds '" + s + "', not a number");
  return v;
}

// Python's repr of a float score: +inf for a part without group_index.
std::string score_of(const std::optional<long long>& index) {
  return index ? std::to_string(*index) : std::string("+inf");
}

}  // namespace

void RedisResultBackend::set_chord_size(std::string_view group_id, std::size_t size) {
  check_open();
  try {
    const std::string key = group_key(group_id, ".s");
    const std::string value = std::to_string(size);
    pool_.run([&](Connection& c) {
      Pipeline p;
      // Celery's backend.set(): SETEX (or SET) plus a PUBLISH on the key's name.
      if (expires_.count() > 0)
        p.add({"SETEX", key, std::to_string(expires_.count()), value});
      else
        p.add({"SET", key, value});
      p.add({"PUBLISH", key, value});
      for (auto& r : c.execute(p))
        if (r.is_error()) throw ReplyError("chord size: " + r.str());
      return 0;
    });
  } catch (const BackendError&) {
    throw;
  } catch (const std::exception& e) {
    throw BackendError("Redis result backend " + url_.redacted() + ": set chord size: " + e.what());
  }
}

std::optional<Json> RedisResultBackend::add_chord_part(const ChordPart& part) {
  check_open();
  const std::string jkey = group_key(part.group_id, ".j");
  const std::string tkey = group_key(part.group_id, ".t");
  const std::string skey = group_key(part.group_id, ".s");
  const std::string member =
      dumps(Json::array({1, part.task_id, std::string(to_string(part.state)), part.result}));
  try {
    return pool_.run([&](Connection& c) -> std::optional<Json> {
      Pipeline p;
      p.add({"ZADD", jkey, score_of(part.group_index), member});
      p.add({"ZCOUNT", jkey, "-inf", "+inf"});
      p.add({"GET", tkey});
      p.add({"GET", skey});
      if (expires_.count() > 0) {
        const std::string ex = std::to_string(expires_.count());
        for (const auto* k : {&jkey, &tkey, &skey}) p.add({"EXPIRE", *k, ex});
      }
      auto replies = c.transaction(p);
      if (!replies || replies->size() < 4)
        throw BackendError("chord part transaction for group " + part.group_id + " was aborted");
      for (auto& r : *replies)
        if (r.is_error()) throw ReplyError("chord part of group " + part.group_id + ": " + r.str());
      if ((*replies)[3].is_nil()) return std::nullopt;  // size not set yet: not the last part
      const long long ready = (*replies)[1].integer();
      const long long total = to_count((*replies)[3]) + to_count((*replies)[2]);
      if (ready != total) return std::nullopt;
      Reply all = c.command({"ZRANGE", jkey, "0", "-1"});
      Json parts = Json::array();
      for (const auto& e : all.elements()) parts.push_back(loads(e.str()));
      c.command({"DEL", jkey, tkey, skey});
      return parts;
    });
  } catch (const BackendError&) {
    throw;
  } catch (const std::exception& e) {
    throw BackendError("Redis result backend " + url_.redacted() + ": chord part of group " +
                       part.group_id + ": " + e.what());
  }
}

void RedisResultBackend::save_group(std::string_view group_id,
                                    const std::vector<std::string>& task_ids) {
  check_open();
  // GroupResult.as_tuple(): [[gid, null], [[[id, null], null], ...]]
  Json members = Json::array();
  for (const auto& id : task_ids)
    members.push_back(Json::array({Json::array({id, nullptr}), nullptr}));
  Json meta{{"result", Json::array({Json::array({std::string(group_id), nullptr}), members})}};
  const std::string key = group_key(group_id);
  const std::string value = dumps(meta);
  try {
    pool_.run([&](Connection& c) {
      if (expires_.count() > 0)
        c.command({"SETEX", key, std::to_string(expires_.count()), value});
      else
        c.command({"SET", key, value});
      return 0;
    });
  } catch (const std::exception& e) {
    throw BackendError("Redis result backend " + url_.redacted() + ": save group: " + e.what());
  }
}

std::optional<std::vector<std::string>> RedisResultBackend::restore_group(
    std::string_view group_id) {
  check_open();
  Reply r;
  try {
    r = pool_.run([&](Connection& c) { return c.command({"GET", group_key(group_id)}); });
  } catch (const std::exception& e) {
    throw BackendError("Redis result backend " + url_.redacted() + ": restore group: " + e.what());
  }
  if (r.is_nil()) return std::nullopt;
  try {
    Json meta = loads(r.str());
    std::vector<std::string> ids;
    for (const auto& m : meta.at("result").at(1)) ids.push_back(m.at(0).at(0).get<std::string>());
    return ids;
  } catch (const std::exception& e) {
    throw BackendError("saved group " + std::string(group_id) +
                       " is not a GroupResult tuple: " + e.what());
  }
}

void RedisResultBackend::forget_group(std::string_view group_id) {
  check_open();
  try {
    pool_.run([&](Connection& c) { return c.command({"DEL", group_key(group_id)}); });
  } catch (const std::exception& e) {
    throw BackendError("Redis result backend " + url_.redacted() + ": forget group: " + e.what());
  }
}

}  // namespace celeriac::tq::redis
