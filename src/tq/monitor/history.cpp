// TaskHistory (see history.hpp).
#include "history.hpp"

#include <sqlite3.h>

#include "celeriac/tq/detail/sqlite_open.hpp"
#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::detail {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}
}  // namespace

TaskHistory::TaskHistory(const std::string& path, std::size_t max_tasks, std::chrono::hours max_age)
    : path_(path), max_tasks_(max_tasks), max_age_(max_age) {
  auto opened = detail::open_sqlite(
      path, 0, std::chrono::seconds(5),
      {"CREATE TABLE IF NOT EXISTS tasks (uuid TEXT PRIMARY KEY, updated REAL NOT NULL, "
       "body TEXT NOT NULL)",
       "CREATE INDEX IF NOT EXISTS tasks_updated ON tasks(updated)"});
  if (!opened.db) throw ConfigError("dashboard history file '" + path + "': " + opened.error);
  db_ = opened.db;
}

TaskHistory::~TaskHistory() {
  sqlite3_close_v2(db_);
}

void TaskHistory::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "error";
    sqlite3_free(err);
    throw ConfigError("dashboard history file '" + path_ + "': " + msg);
  }
}

std::vector<Json> TaskHistory::load() {
  std::vector<Json> out;
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db_,
                     "SELECT body FROM (SELECT body, updated FROM tasks ORDER BY updated DESC "
                     "LIMIT ?) ORDER BY updated",
                     -1, &s, nullptr);
  sqlite3_bind_int64(s, 1, static_cast<sqlite3_int64>(max_tasks_));
  while (sqlite3_step(s) == SQLITE_ROW) {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    try {
      out.push_back(loads(p ? p : "null"));
    } catch (const std::exception&) {
      // a damaged row is skipped; the rest of the history still loads
    }
  }
  sqlite3_finalize(s);
  return out;
}

void TaskHistory::save(const std::unordered_map<std::string, Json>& tasks) {
  exec("BEGIN IMMEDIATE");
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO tasks(uuid, updated, body) VALUES (?, ?, ?)", -1,
                     &s, nullptr);
  double now = now_s();
  for (auto& [id, t] : tasks) {
    std::string body = t.dump();
    sqlite3_bind_text(s, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
    sqlite3_bind_double(s, 2, now);
    sqlite3_bind_text(s, 3, body.data(), static_cast<int>(body.size()), SQLITE_TRANSIENT);
    sqlite3_step(s);
    sqlite3_reset(s);
  }
  sqlite3_finalize(s);
  if (++saves_ % 30 == 1) {
    // retention: by age, then by count (oldest first)
    sqlite3_stmt* d = nullptr;
    sqlite3_prepare_v2(db_, "DELETE FROM tasks WHERE updated < ?", -1, &d, nullptr);
    sqlite3_bind_double(d, 1, now - std::chrono::duration<double>(max_age_).count());
    sqlite3_step(d);
    sqlite3_finalize(d);
    sqlite3_prepare_v2(db_,
                       "DELETE FROM tasks WHERE uuid NOT IN (SELECT uuid FROM tasks ORDER BY "
                       "updated DESC LIMIT ?)",
                       -1, &d, nullptr);
    sqlite3_bind_int64(d, 1, static_cast<sqlite3_int64>(max_tasks_));
    sqlite3_step(d);
    sqlite3_finalize(d);
  }
  exec("COMMIT");
}

}  // namespace celeriac::tq::detail
