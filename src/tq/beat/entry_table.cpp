#include "celeriac/tq/detail/entry_table.hpp"

#include <unordered_map>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::detail {

namespace {

bool same_call_options(const CallOptions& a, const CallOptions& b) {
  return a == b;
}

bool same(const TaskCall& a, const TaskCall& b) {
  return a.task == b.task && a.args == b.args && a.kwargs == b.kwargs &&
         same_call_options(a.options, b.options);
}

bool same(const PeriodicOptions& a, const PeriodicOptions& b) {
  return a.relative == b.relative && a.queue == b.queue && a.priority == b.priority &&
         a.expires == b.expires && a.enabled == b.enabled;
}

// A cheap bucket key; equality is decided field by field (same()).
std::string call_key(const PeriodicEntry& e) {
  std::string key = e.call.task;
  key += '\0';
  key += e.call.args.dump();
  key += '\0';
  key += e.call.kwargs.dump();
  key += '\0';
  key += e.options.queue;
  key += e.call.options.queue;
  return key;
}

}  // namespace

EntryTable::EntryTable(std::vector<PeriodicEntry> entries) {
  if (entries.size() >= UINT32_MAX) throw ConfigError("beat: too many entries");
  std::unordered_map<std::string, std::uint32_t> schedule_index;
  std::unordered_multimap<std::string, std::uint32_t> what_index;
  std::size_t name_bytes = 0;
  for (const auto& e : entries) name_bytes += e.name.size();
  if (name_bytes >= UINT32_MAX) throw ConfigError("beat: entry names too long in total");
  names_.reserve(name_bytes);
  name_end_.reserve(entries.size());
  schedule_of_.reserve(entries.size());
  what_of_.reserve(entries.size());
  for (auto& e : entries) {
    names_ += e.name;
    name_end_.push_back(static_cast<std::uint32_t>(names_.size()));
    auto [s, fresh] = schedule_index.try_emplace(e.schedule.to_json().dump(),
                                                 static_cast<std::uint32_t>(schedules_.size()));
    if (fresh) schedules_.push_back(std::move(e.schedule));
    schedule_of_.push_back(s->second);
    std::string key = call_key(e);
    std::uint32_t found = UINT32_MAX;
    for (auto [it, end] = what_index.equal_range(key); it != end && found == UINT32_MAX; ++it)
      if (same(whats_[it->second].call, e.call) && same(whats_[it->second].options, e.options))
        found = it->second;
    if (found == UINT32_MAX) {
      found = static_cast<std::uint32_t>(whats_.size());
      what_index.emplace(std::move(key), found);
      whats_.push_back(What{std::move(e.call), std::move(e.options)});
    }
    what_of_.push_back(found);
  }
  schedules_.shrink_to_fit();
  whats_.shrink_to_fit();
}

std::string_view EntryTable::name(std::size_t i) const noexcept {
  std::uint32_t begin = i == 0 ? 0 : name_end_[i - 1];
  return std::string_view(names_).substr(begin, name_end_[i] - begin);
}

PeriodicEntry EntryTable::entry(std::size_t i) const {
  return PeriodicEntry{std::string(name(i)), schedule(i), call(i), options(i)};
}

std::vector<PeriodicEntry> EntryTable::to_vector() const {
  std::vector<PeriodicEntry> out;
  out.reserve(size());
  for (std::size_t i = 0; i < size(); ++i) out.push_back(entry(i));
  return out;
}

}  // namespace celeriac::tq::detail
