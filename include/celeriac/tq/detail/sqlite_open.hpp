// Opening a SQLite file that other processes may be opening at the same
// moment (a broker, a result store, a monitor bus, a beat store).
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <initializer_list>
#include <string>

namespace celeriac::tq::detail {

/// What open_sqlite() returns: an open connection, or why there is none.
struct SqliteOpened {
  sqlite3* db = nullptr;  ///< Owned by the caller (sqlite3_close_v2); null on failure.
  std::string error;      ///< "<statement>: <SQLite's message>" when db is null.
};

/// Opens (creating it if needed) the SQLite file `path` with `flags` added to
/// READWRITE|CREATE, sets `busy_timeout`, switches it to WAL and runs
/// `schema` (idempotent statements such as CREATE TABLE IF NOT EXISTS).
///
/// Why the retry: when several processes open a fresh file together, the
/// journal-mode switch can fail at once with "database is locked" (SQLite
/// does not call the busy handler where waiting could deadlock) or with an
/// I/O error while another connection sets up the WAL. Such failures close
/// the connection and start over, until `busy_timeout` has passed; any other
/// failure (a read-only file, a missing folder, a corrupt file) is returned
/// at once.
SqliteOpened open_sqlite(const std::string& path, int flags, std::chrono::milliseconds busy_timeout,
                         std::initializer_list<const char*> schema);

}  // namespace celeriac::tq::detail
