// Beat's schedule held compactly: 100,000 entries that mostly share a few
// schedules and a few calls cost a name and three small indices each, not a
// PeriodicEntry (~780 bytes with its CallOptions and JSON arguments).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/periodic_task.hpp"

namespace celeriac::tq::detail {

/// The entries of a schedule, with equal schedules and equal (call, options)
/// pairs stored once (interned) and the names in one buffer.
class EntryTable {
 public:
  EntryTable() = default;
  /// Takes the entries over (validate them first: names must be unique).
  explicit EntryTable(std::vector<PeriodicEntry> entries);

  /// How many entries.
  std::size_t size() const noexcept { return schedule_of_.size(); }
  /// Entry i's name.
  std::string_view name(std::size_t i) const noexcept;
  /// Entry i's schedule.
  const Schedule& schedule(std::size_t i) const noexcept { return schedules_[schedule_of_[i]]; }
  /// What entry i sends.
  const TaskCall& call(std::size_t i) const noexcept { return whats_[what_of_[i]].call; }
  /// Entry i's options.
  const PeriodicOptions& options(std::size_t i) const noexcept {
    return whats_[what_of_[i]].options;
  }
  /// Entry i as a PeriodicEntry (a copy).
  PeriodicEntry entry(std::size_t i) const;
  /// Every entry, as given (copies).
  std::vector<PeriodicEntry> to_vector() const;
  /// Distinct schedules and distinct (call, options) pairs held.
  std::size_t distinct_schedules() const noexcept { return schedules_.size(); }
  std::size_t distinct_calls() const noexcept { return whats_.size(); }

 private:
  struct What {
    TaskCall call;
    PeriodicOptions options;
  };
  std::string names_;                    // all names, back to back
  std::vector<std::uint32_t> name_end_;  // entry i's name ends here in names_
  std::vector<std::uint32_t> schedule_of_, what_of_;
  std::vector<Schedule> schedules_;
  std::vector<What> whats_;
};

}  // namespace celeriac::tq::detail
