// The SQLite beat store: a lease row and state rows in the backend's
// database file, each change in one IMMEDIATE transaction (so the lease
// check and the write are atomic across processes).
#include <sqlite3.h>

#include <mutex>

#include "celeriac/tq/beat_store.hpp"
#include "celeriac/tq/detail/sqlite_open.hpp"
#include "celeriac/tq/errors.hpp"
#include "state_codec.hpp"

namespace celeriac::tq {
namespace {

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw BackendError(std::string("beat store (SQLite): ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, long long v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw BackendError(std::string("beat store (SQLite): ") + sqlite3_errmsg(db_));
  }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }
  long long integer(int col) const { return sqlite3_column_int64(s_, col); }
  /// Makes the statement ready to run again with new bindings.
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

class SqliteBeatStore final : public BeatStore {
 public:
  SqliteBeatStore(std::string path, std::string name, const BeatClock& clock)
      : path_(std::move(path)), name_(std::move(name)), clock_(clock) {
    auto opened = detail::open_sqlite(
        path_, SQLITE_OPEN_NOMUTEX, std::chrono::seconds(10),
        {"CREATE TABLE IF NOT EXISTS celeriac_beat_lease (name TEXT PRIMARY KEY, holder TEXT NOT "
         "NULL, expires_ms INTEGER NOT NULL)",
         "CREATE TABLE IF NOT EXISTS celeriac_beat_state (name TEXT NOT NULL, entry TEXT NOT NULL, "
         "state TEXT NOT NULL, PRIMARY KEY (name, entry))"});
    if (!opened.db)
      throw BackendError("beat store: cannot open SQLite database '" + path_ +
                         "': " + opened.error);
    db_ = opened.db;
  }
  ~SqliteBeatStore() override { sqlite3_close(db_); }

  bool acquire(const std::string& instance, std::chrono::milliseconds ttl) override {
    std::lock_guard lock(mu_);
    Tx tx(*this);
    if (!free_or_mine(instance)) return false;
    Stmt up(
        db_,
        "INSERT OR REPLACE INTO celeriac_beat_lease (name, holder, expires_ms) VALUES (?, ?, ?)");
    up.bind(1, name_).bind(2, instance).bind(3, now_ms() + ttl.count()).step();
    tx.commit();
    return true;
  }
  void release(const std::string& instance) override {
    std::lock_guard lock(mu_);
    Stmt del(db_, "DELETE FROM celeriac_beat_lease WHERE name = ? AND holder = ?");
    del.bind(1, name_).bind(2, instance).step();
  }
  std::optional<LeaseInfo> lease() override {
    std::lock_guard lock(mu_);
    Stmt q(db_, "SELECT holder, expires_ms FROM celeriac_beat_lease WHERE name = ?");
    q.bind(1, name_);
    if (!q.step()) return std::nullopt;
    long long left = q.integer(1) - now_ms();
    if (left <= 0) return std::nullopt;
    return LeaseInfo{q.text(0), std::chrono::milliseconds(left)};
  }
  std::map<std::string, EntryState> load() override {
    std::lock_guard lock(mu_);
    std::map<std::string, EntryState> out;
    Stmt q(db_, "SELECT entry, state FROM celeriac_beat_state WHERE name = ?");
    q.bind(1, name_);
    while (q.step()) out[q.text(0)] = detail::decode_entry_state(q.text(0), q.text(1));
    return out;
  }
  bool commit(const std::string& instance, const Updates& updates) override {
    std::lock_guard lock(mu_);
    Tx tx(*this);
    Stmt q(db_, "SELECT holder, expires_ms FROM celeriac_beat_lease WHERE name = ?");
    q.bind(1, name_);
    if (!q.step() || q.text(0) != instance || q.integer(1) <= now_ms()) return false;
    Stmt up(db_,
            "INSERT OR REPLACE INTO celeriac_beat_state (name, entry, state) VALUES (?, ?, ?)");
    for (const auto& [entry, state] : updates) {
      up.reset();
      up.bind(1, name_).bind(2, entry).bind(3, detail::encode_entry_state(state)).step();
    }
    tx.commit();
    return true;
  }
  std::string describe() const override { return "sqlite:///" + path_; }

 private:
  // BEGIN IMMEDIATE ... COMMIT, rolled back unless committed.
  class Tx {
   public:
    explicit Tx(SqliteBeatStore& s) : s_(s) { s_.exec("BEGIN IMMEDIATE"); }
    void commit() {
      s_.exec("COMMIT");
      done_ = true;
    }
    ~Tx() {
      if (!done_) sqlite3_exec(s_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    Tx(const Tx&) = delete;
    Tx& operator=(const Tx&) = delete;

   private:
    SqliteBeatStore& s_;
    bool done_ = false;
  };

  bool free_or_mine(const std::string& instance) {
    Stmt q(db_, "SELECT holder, expires_ms FROM celeriac_beat_lease WHERE name = ?");
    q.bind(1, name_);
    if (!q.step()) return true;
    return q.text(0) == instance || q.integer(1) <= now_ms();
  }
  long long now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.wall().time_since_epoch())
        .count();
  }
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw BackendError("beat store (SQLite " + path_ + "): " + msg);
    }
  }

  std::string path_, name_;
  const BeatClock& clock_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<BeatStore> make_sqlite_beat_store(const std::string& path, const std::string& name,
                                                  const BeatClock& clock) {
  return std::make_unique<SqliteBeatStore>(path, name, clock);
}

}  // namespace celeriac::tq
