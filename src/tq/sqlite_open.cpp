#include "celeriac/tq/detail/sqlite_open.hpp"

#include <algorithm>
#include <random>
#include <thread>

namespace celeriac::tq::detail {

namespace {

// Failures that another process's concurrent open causes and that go away.
bool transient(int rc) {
  int primary = rc & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_IOERR;
}

// Runs `sql` on `db`; on failure says which statement failed and why.
int run(sqlite3* db, const char* sql, std::string& error) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) error = std::string(sql) + ": " + (err ? err : sqlite3_errstr(rc));
  sqlite3_free(err);
  return rc;
}

// One attempt; on failure closes the connection and returns its result code.
int try_open(const std::string& path, int flags, std::chrono::milliseconds busy_timeout,
             std::initializer_list<const char*> schema, SqliteOpened& out) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | flags,
                           nullptr);
  if (rc != SQLITE_OK) {
    out.error = std::string("open: ") + (db ? sqlite3_errmsg(db) : "out of memory");
  } else {
    sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
    rc = run(db, "PRAGMA journal_mode=WAL", out.error);
    for (auto sql = schema.begin(); rc == SQLITE_OK && sql != schema.end(); ++sql)
      rc = run(db, *sql, out.error);
  }
  if (rc != SQLITE_OK) {
    sqlite3_close_v2(db);
    return rc;
  }
  out.db = db;
  out.error.clear();
  return SQLITE_OK;
}

}  // namespace

SqliteOpened open_sqlite(const std::string& path, int flags, std::chrono::milliseconds busy_timeout,
                         std::initializer_list<const char*> schema) {
  using std::chrono::milliseconds;
  auto deadline = std::chrono::steady_clock::now() + busy_timeout;
  std::minstd_rand jitter(std::random_device{}());
  SqliteOpened out;
  for (milliseconds pause(1);; pause = std::min(pause * 2, milliseconds(50))) {
    int rc = try_open(path, flags, busy_timeout, schema, out);
    if (rc == SQLITE_OK || !transient(rc) || std::chrono::steady_clock::now() >= deadline)
      return out;
    std::this_thread::sleep_for(pause + milliseconds(jitter() % 5));
  }
}

}  // namespace celeriac::tq::detail
