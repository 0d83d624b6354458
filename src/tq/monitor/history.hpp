// The dashboard's task history: one row per task in a SQLite file, written
// in batches, trimmed by count and age, read back at start-up.
#pragma once

#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include "celeriac/tq/json.hpp"

struct sqlite3;

namespace celeriac::tq::detail {

/// Task records persisted across dashboard restarts.
class TaskHistory {
 public:
  /// Opens (creates) `path`; throws ConfigError naming the file when it cannot.
  TaskHistory(const std::string& path, std::size_t max_tasks, std::chrono::hours max_age);
  ~TaskHistory();
  TaskHistory(const TaskHistory&) = delete;
  TaskHistory& operator=(const TaskHistory&) = delete;
  /// The newest `max_tasks` records, oldest first.
  std::vector<Json> load();
  /// Writes these records (keyed by uuid) in one transaction, then trims.
  void save(const std::unordered_map<std::string, Json>& tasks);

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::string path_;
  std::size_t max_tasks_;
  std::chrono::hours max_age_;
  std::size_t saves_ = 0;
};

}  // namespace celeriac::tq::detail
