// sqlite:// broker and result backend: durable, several processes on one
// host. WAL journal, busy timeout, reservations and acks in transactions.
// Within one process every Broker/Backend on the same file shares one
// connection (no lock contention between them) and a condition variable:
// publishers wake local consumers at once, and another process's commits
// wake them through inotify on the database's write-ahead log (no polling).
#include <poll.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/detail/sqlite_open.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::detail {

std::chrono::seconds expires_param(const Url& url);

namespace {

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, const char* sql, const std::string& where) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) != SQLITE_OK)
      throw BrokerError(where + ": cannot prepare '" + sql + "': " + sqlite3_errmsg(db));
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stmt& operator=(Stmt&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Stmt() { sqlite3_finalize(s_); }
  sqlite3_stmt* get() const { return s_; }
  Stmt& reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, long long v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& bind_null(int i) {
    sqlite3_bind_null(s_, i);
    return *this;
  }
  std::string text(int col) const {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, col)))
             : std::string();
  }
  long long integer(int col) const { return sqlite3_column_int64(s_, col); }

 private:
  sqlite3_stmt* s_ = nullptr;
};

// One connection per database file per process.
struct Db {
  std::string path;
  std::mutex mu;
  sqlite3* db = nullptr;
  std::condition_variable cv;  // publish / store notifications within the process
  std::uint64_t local_version = 0;
  std::map<std::string, Stmt> stmts;
  int inotify_fd = -1;  // see watch_other_processes()
  int stop_fd = -1;
  std::thread watcher;

  explicit Db(const std::string& p) : path(p) {
    auto opened = detail::open_sqlite(
        p, SQLITE_OPEN_NOMUTEX, std::chrono::seconds(10),
        {"PRAGMA synchronous=NORMAL",
         "CREATE TABLE IF NOT EXISTS tq_messages(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT "
         "NOT NULL, step INTEGER NOT NULL, front INTEGER NOT NULL DEFAULT 0, envelope TEXT NOT "
         "NULL, redelivered INTEGER NOT NULL DEFAULT 0, reserved_at REAL, owner TEXT)",
         "CREATE INDEX IF NOT EXISTS tq_ready ON tq_messages(queue, step, front DESC, id) WHERE "
         "reserved_at IS NULL",
         "CREATE INDEX IF NOT EXISTS tq_reserved ON tq_messages(reserved_at) WHERE reserved_at IS "
         "NOT NULL",
         "CREATE TABLE IF NOT EXISTS tq_dead(id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT, "
         "envelope TEXT, reason TEXT, time REAL)",
         "CREATE TABLE IF NOT EXISTS tq_results(task_id TEXT PRIMARY KEY, status TEXT, meta TEXT, "
         "expires_at REAL)",
         "CREATE INDEX IF NOT EXISTS tq_results_exp ON tq_results(expires_at) WHERE expires_at IS "
         "NOT NULL",
         // Canvas: chord sizes and finished parts (Celery's .s and .j), saved groups.
         "CREATE TABLE IF NOT EXISTS tq_chords(group_id TEXT PRIMARY KEY, size INTEGER)",
         "CREATE TABLE IF NOT EXISTS tq_chord_parts(group_id TEXT NOT NULL, idx REAL NOT NULL, "
         "part TEXT NOT NULL, UNIQUE(group_id, part))",
         "CREATE TABLE IF NOT EXISTS tq_groups(group_id TEXT PRIMARY KEY, ids TEXT NOT NULL)"});
    if (!opened.db) throw BrokerError("cannot open SQLite database '" + p + "': " + opened.error);
    db = opened.db;
  }
  ~Db() {
    if (watcher.joinable()) {
      std::uint64_t one = 1;
      (void)!write(stop_fd, &one, sizeof one);
      watcher.join();
    }
    if (inotify_fd >= 0) close(inotify_fd);
    if (stop_fd >= 0) close(stop_fd);
    stmts.clear();
    sqlite3_close_v2(db);
  }

  // Starts (once; caller holds mu) the thread that turns other processes'
  // commits into notify(): inotify on the database's folder, filtered to
  // this database's files (every WAL commit writes <db>-wal). Without
  // inotify, waiters fall back to polling data_version.
  bool watch_other_processes() {
    if (watcher.joinable()) return true;
    if (inotify_fd >= 0) return false;  // tried and failed before
    inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    std::filesystem::path file(path);
    if (inotify_fd < 0 || stop_fd < 0 ||
        inotify_add_watch(inotify_fd, file.parent_path().c_str(), IN_MODIFY | IN_CLOSE_WRITE) < 0)
      return false;
    watcher = std::thread([this, name = file.filename().string()] { watch_loop(name); });
    return true;
  }

  void watch_loop(const std::string& name) {
    alignas(inotify_event) char buf[4096];
    for (;;) {
      pollfd fds[2] = {{inotify_fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents) return;
      bool ours = false;
      ssize_t n;
      while ((n = read(inotify_fd, buf, sizeof buf)) > 0) {
        for (char* p = buf; p < buf + n;) {
          auto* e = reinterpret_cast<inotify_event*>(p);
          if (e->len && std::string_view(e->name).rfind(name, 0) == 0) ours = true;
          p += sizeof(inotify_event) + e->len;
        }
      }
      if (ours) {
        std::lock_guard lock(mu);
        notify();
      }
    }
  }

  void exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      throw BrokerError("SQLite '" + path + "': " + sql + ": " + msg);
    }
  }

  Stmt& stmt(const char* sql) {
    auto it = stmts.find(sql);
    if (it == stmts.end()) it = stmts.emplace(sql, Stmt(db, sql, "SQLite '" + path + "'")).first;
    return it->second.reset();
  }

  // Steps a statement to completion; returns rows changed.
  int run(Stmt& s) {
    int rc = sqlite3_step(s.get());
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) fail("step");
    sqlite3_reset(s.get());
    return sqlite3_changes(db);
  }
  bool row(Stmt& s) {
    int rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail("query");
    return false;
  }
  [[noreturn]] void fail(const char* what) {
    throw BrokerError(std::string("SQLite '") + path + "': " + what +
                      " failed: " + sqlite3_errmsg(db));
  }

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT (rolled back on exception).
  template <class F>
  auto transaction(F&& fn) {
    exec("BEGIN IMMEDIATE");
    try {
      if constexpr (std::is_void_v<decltype(fn())>) {
        fn();
        exec("COMMIT");
      } else {
        auto r = fn();
        exec("COMMIT");
        return r;
      }
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }

  std::uint64_t data_version() {
    Stmt& s = stmt("PRAGMA data_version");
    std::uint64_t v = row(s) ? static_cast<std::uint64_t>(s.integer(0)) : 0;
    sqlite3_reset(s.get());
    return v;
  }

  void notify() {
    ++local_version;
    cv.notify_all();
  }
};

std::string db_path(const Url& url) {
  if (url.path.empty())
    throw ConfigError("bad URL '" + url.redacted() +
                      "': SQLite needs a file path (expected sqlite:///relative/file.db or "
                      "sqlite:////absolute/file.db)");
  if (!url.host.empty())
    throw ConfigError("bad URL '" + url.redacted() + "': SQLite URLs have no host ('" + url.host +
                      "'); expected sqlite:///relative/file.db or sqlite:////absolute/file.db");
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(std::filesystem::absolute(url.path, ec), ec);
  return abs.empty() ? url.path : abs.string();
}

std::shared_ptr<Db> shared_db(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<Db>> map;
  std::lock_guard lock(mu);
  auto& w = map[path];
  auto s = w.lock();
  if (!s) {
    s = std::make_shared<Db>(path);
    w = s;
  }
  return s;
}

std::string new_owner() {
  return std::to_string(getpid()) + ":" + make_uuid();
}

class SqliteBroker final : public Broker {
 public:
  explicit SqliteBroker(const Url& url)
      : url_(url.redacted()), db_(shared_db(db_path(url))), owner_(new_owner()) {}
  ~SqliteBroker() override {
    try {
      close();
    } catch (...) {
    }
  }

  std::string url() const override { return url_; }

  void publish(std::string_view queue, int priority, std::string_view envelope) override {
    check();
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("INSERT INTO tq_messages(queue, step, envelope) VALUES(?, ?, ?)");
    s.bind(1, queue).bind(2, static_cast<long long>(priority_step(priority))).bind(3, envelope);
    db_->run(s);
    db_->notify();
  }

  void publish_many(std::span<const Outgoing> messages) override {
    check();
    if (messages.empty()) return;
    std::lock_guard lock(db_->mu);
    db_->transaction([&] {
      for (const auto& m : messages) {
        Stmt& s = db_->stmt("INSERT INTO tq_messages(queue, step, envelope) VALUES(?, ?, ?)");
        s.bind(1, m.queue)
            .bind(2, static_cast<long long>(priority_step(m.priority)))
            .bind(3, m.envelope);
        db_->run(s);
      }
    });
    db_->notify();
  }

  std::vector<Delivery> reserve(std::span<const std::string> queues, std::size_t max,
                                std::chrono::milliseconds timeout) override {
    check();
    std::vector<Delivery> out;
    if (queues.empty() || max == 0) return out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto poll = std::chrono::milliseconds(1);
    std::unique_lock lock(db_->mu);
    for (;;) {
      if (closed_) return out;
      take(queues, max, out);  // sends the batched acks in the same transaction
      if (!out.empty()) return out;
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return out;
      // Woken by a publish or ack in this process, or (inotify) another
      // process's commit; polling only where inotify is unavailable.
      bool first_watch = !db_->watcher.joinable();
      bool watched = db_->watch_other_processes();
      if (first_watch && watched) continue;  // a commit before the watch began: look once more
      std::uint64_t seen = db_->local_version;
      db_->cv.wait_until(lock, watched ? deadline : std::min(deadline, now + poll), [&] {
        return db_->local_version != seen || closed_ || !pending_acks_.empty();
      });
      if (!pending_acks_.empty()) flush_acks_locked();
      poll = std::min(poll * 2, std::chrono::milliseconds(20));
    }
  }

  // Acks are batched: deleted in the next reserve() transaction, by flush(),
  // or at once when kAckBatch are pending (a waiting reserve() is woken).
  void ack(const Delivery& d) override {
    std::lock_guard lock(db_->mu);
    pending_acks_.push_back(id_of(d));
    if (pending_acks_.size() >= kAckBatch) flush_acks_locked();
    db_->cv.notify_all();
  }

  void ack_many(std::span<const Delivery> ds) override {
    if (ds.empty()) return;
    std::lock_guard lock(db_->mu);
    for (const auto& d : ds) pending_acks_.push_back(id_of(d));
    flush_acks_locked();
  }

  void flush() override {
    std::lock_guard lock(db_->mu);
    flush_acks_locked();
  }

  std::size_t renew_reservations() override {
    std::lock_guard lock(db_->mu);
    flush_acks_locked();
    Stmt& s = db_->stmt(
        "UPDATE tq_messages SET reserved_at = ? WHERE owner = ? AND reserved_at IS NOT NULL");
    s.bind(1, unix_now()).bind(2, owner_);
    return static_cast<std::size_t>(db_->run(s));
  }

  void requeue(const Delivery& d) override {
    std::lock_guard lock(db_->mu);
    requeue_locked(id_of(d), d.envelope);
    db_->notify();
  }

  void dead_letter(const Delivery& d, std::string_view reason) override {
    std::lock_guard lock(db_->mu);
    db_->transaction([&] {
      Stmt& del = db_->stmt("DELETE FROM tq_messages WHERE id = ?");
      del.bind(1, id_of(d));
      db_->run(del);
      Stmt& ins =
          db_->stmt("INSERT INTO tq_dead(queue, envelope, reason, time) VALUES(?, ?, ?, ?)");
      ins.bind(1, d.queue).bind(2, d.envelope).bind(3, reason).bind(4, unix_now());
      db_->run(ins);
    });
  }

  std::vector<DeadLetter> dead_letters(std::size_t limit) override {
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt(
        "SELECT queue, envelope, reason, time FROM (SELECT * FROM tq_dead ORDER BY id DESC LIMIT "
        "?) ORDER BY id");
    s.bind(1, static_cast<long long>(limit));
    std::vector<DeadLetter> out;
    while (db_->row(s))
      out.push_back(DeadLetter{s.text(1), s.text(0), s.text(2), sqlite3_column_double(s.get(), 3)});
    return out;
  }

  std::size_t restore_unacked() override {
    std::lock_guard lock(db_->mu);
    flush_acks_locked();
    return restore_where("owner = ?", [&](Stmt& s) { s.bind(1, owner_); });
  }

  std::size_t restore_stale(std::chrono::seconds visibility_timeout) override {
    std::lock_guard lock(db_->mu);
    double limit = unix_now() - static_cast<double>(visibility_timeout.count());
    return restore_where("reserved_at <= ?", [&](Stmt& s) { s.bind(1, limit); });
  }

  std::size_t purge(std::string_view queue) override {
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("DELETE FROM tq_messages WHERE queue = ? AND reserved_at IS NULL");
    s.bind(1, queue);
    return static_cast<std::size_t>(db_->run(s));
  }

  std::size_t queue_length(std::string_view queue) override {
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("SELECT count(*) FROM tq_messages WHERE queue = ? AND reserved_at IS NULL");
    s.bind(1, queue);
    std::size_t n = db_->row(s) ? static_cast<std::size_t>(s.integer(0)) : 0;
    sqlite3_reset(s.get());
    return n;
  }

  // Fleet-wide rate limit: the bucket's next allowed start (microseconds
  // since the epoch) in tq_rate, read and moved in one transaction.
  std::chrono::microseconds take_rate_slot(std::string_view key,
                                           std::chrono::microseconds interval) override {
    check();
    std::lock_guard lock(db_->mu);
    db_->exec("CREATE TABLE IF NOT EXISTS tq_rate(key TEXT PRIMARY KEY, next_us INTEGER NOT NULL)");
    return db_->transaction([&] {
      long long now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      Stmt& get = db_->stmt("SELECT next_us FROM tq_rate WHERE key = ?");
      get.bind(1, key);
      long long start = db_->row(get) ? std::max(now, get.integer(0)) : now;
      sqlite3_reset(get.get());
      Stmt& put = db_->stmt("INSERT OR REPLACE INTO tq_rate(key, next_us) VALUES(?, ?)");
      put.bind(1, key).bind(2, start + static_cast<long long>(interval.count()));
      db_->run(put);
      return std::chrono::microseconds(start - now);
    });
  }

  // Unique tasks: tq_unique maps a key to the pending call's id until
  // until_us (microseconds since the epoch), in one transaction.
  std::optional<std::string> claim_unique(std::string_view key, std::string_view id,
                                          std::chrono::milliseconds ttl) override {
    check();
    std::lock_guard lock(db_->mu);
    db_->exec(
        "CREATE TABLE IF NOT EXISTS tq_unique(key TEXT PRIMARY KEY, id TEXT NOT NULL, "
        "until_us INTEGER NOT NULL)");
    return db_->transaction([&]() -> std::optional<std::string> {
      long long now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      Stmt& get = db_->stmt("SELECT id FROM tq_unique WHERE key = ? AND until_us > ?");
      get.bind(1, key).bind(2, now);
      std::optional<std::string> holder;
      if (db_->row(get)) holder = get.text(0);
      sqlite3_reset(get.get());
      if (holder && *holder != id) return holder;
      Stmt& put = db_->stmt("INSERT OR REPLACE INTO tq_unique(key, id, until_us) VALUES(?, ?, ?)");
      put.bind(1, key).bind(2, id).bind(3, now + static_cast<long long>(ttl.count()) * 1000);
      db_->run(put);
      return std::nullopt;
    });
  }

  void release_unique(std::string_view key, std::string_view id) override {
    check();
    std::lock_guard lock(db_->mu);
    db_->exec(
        "CREATE TABLE IF NOT EXISTS tq_unique(key TEXT PRIMARY KEY, id TEXT NOT NULL, "
        "until_us INTEGER NOT NULL)");
    Stmt& del = db_->stmt("DELETE FROM tq_unique WHERE key = ? AND id = ?");
    del.bind(1, key).bind(2, id);
    db_->run(del);
  }

  void close() override {
    if (closed_.exchange(true)) return;
    {
      std::lock_guard lock(db_->mu);
      flush_acks_locked();
      restore_where("owner = ?", [&](Stmt& s) { s.bind(1, owner_); });
      db_->notify();
    }
  }

 private:
  void check() const {
    if (closed_) throw BrokerError("broker '" + url_ + "' is closed");
  }

  static long long id_of(const Delivery& d) {
    try {
      return std::stoll(d.tag);
    } catch (...) {
      return -1;
    }
  }

  // Caller holds db_->mu.
  void delete_acked() {
    for (long long id : pending_acks_) {
      Stmt& s = db_->stmt("DELETE FROM tq_messages WHERE id = ? AND owner = ?");
      s.bind(1, id).bind(2, owner_);
      db_->run(s);
    }
    pending_acks_.clear();
  }

  // Caller holds db_->mu.
  void flush_acks_locked() {
    if (pending_acks_.empty()) return;
    db_->transaction([&] { delete_acked(); });
  }

  // Caller holds db_->mu.
  void requeue_locked(long long id, const std::string& envelope) {
    Stmt& s = db_->stmt(
        "UPDATE tq_messages SET reserved_at = NULL, owner = NULL, redelivered = 1, front = 1, "
        "envelope = ? "
        "WHERE id = ? AND reserved_at IS NOT NULL");
    s.bind(1, mark_redelivered(envelope)).bind(2, id);
    db_->run(s);
  }

  template <class Bind>
  std::size_t restore_where(const char* cond, Bind bind) {
    std::string sql =
        std::string("SELECT id, envelope FROM tq_messages WHERE reserved_at IS NOT NULL AND ") +
        cond;
    Stmt sel(db_->db, sql.c_str(), "SQLite '" + db_->path + "'");
    bind(sel);
    std::vector<std::pair<long long, std::string>> rows;
    std::size_t n = db_->transaction([&] {
      while (db_->row(sel)) rows.emplace_back(sel.integer(0), sel.text(1));
      for (auto& [id, env] : rows) requeue_locked(id, env);
      return rows.size();
    });
    if (n) db_->notify();
    return n;
  }

  // Caller holds db_->mu. One transaction: the pending acks, then by
  // priority step and round-robin over queues, each share reserved by one
  // UPDATE ... RETURNING (FIFO restored from the returned order keys).
  void take(std::span<const std::string> queues, std::size_t max, std::vector<Delivery>& out) {
    const double now = unix_now();
    db_->transaction([&] {
      delete_acked();
      for (int step = 0; step <= 9 && out.size() < max; step += 3) {
        bool any = true;
        while (any && out.size() < max) {
          any = false;
          for (std::size_t k = 0; k < queues.size() && out.size() < max; ++k) {
            const std::string& qn = queues[(rr_ + k) % queues.size()];
            std::size_t share = queues.size() == 1 ? max - out.size() : 1;
            if (reserve_share(qn, step, share, now, out)) {
              any = true;
              ++rr_;
            }
          }
          if (queues.size() == 1) break;
        }
      }
    });
  }

  // Reserves up to `share` ready messages of (queue, step) for this owner,
  // oldest first (requeued ones ahead); appends them to `out`.
  bool reserve_share(const std::string& queue, int step, std::size_t share, double now,
                     std::vector<Delivery>& out) {
    Stmt& s = db_->stmt(
        "UPDATE tq_messages SET reserved_at = ?, owner = ? WHERE id IN (SELECT id FROM tq_messages "
        "WHERE "
        "queue = ? AND step = ? AND reserved_at IS NULL ORDER BY front DESC, id LIMIT ?) "
        "RETURNING id, envelope, redelivered, front");
    s.bind(1, now)
        .bind(2, owner_)
        .bind(3, queue)
        .bind(4, static_cast<long long>(step))
        .bind(5, static_cast<long long>(share));
    struct Row {
      long long front, id;
      Delivery d;
    };
    std::vector<Row> rows;
    while (db_->row(s))
      rows.push_back(
          Row{s.integer(3), s.integer(0),
              Delivery{s.text(1), queue, step, std::to_string(s.integer(0)), s.integer(2) != 0}});
    sqlite3_reset(s.get());
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.front != b.front ? a.front > b.front : a.id < b.id;
    });
    for (auto& r : rows) out.push_back(std::move(r.d));
    return !rows.empty();
  }

  std::string url_;
  std::shared_ptr<Db> db_;
  std::string owner_;
  std::atomic<bool> closed_{false};
  std::size_t rr_ = 0;
  std::vector<long long> pending_acks_;  // guarded by db_->mu
  static constexpr std::size_t kAckBatch = 512;
};

class SqliteBackend final : public ResultBackend {
 public:
  SqliteBackend(const Url& url, std::chrono::seconds expires)
      : url_(url.redacted()), expires_(expires), db_(shared_db(db_path(url))) {}

  std::string url() const override { return url_; }

  bool store(const ResultMeta& meta) override {
    check();
    std::string text = meta.to_json();
    std::lock_guard lock(db_->mu);
    bool written = store_locked(meta, text, unix_now());
    if (written) db_->notify();
    return written;
  }

  // One transaction for all: the results of tasks finishing together.
  std::vector<bool> store_many(std::span<const ResultMeta> metas) override {
    check();
    std::vector<std::string> texts;
    texts.reserve(metas.size());
    for (const auto& m : metas) texts.push_back(m.to_json());
    std::vector<bool> out;
    out.reserve(metas.size());
    std::lock_guard lock(db_->mu);
    db_->transaction([&] {
      double now = unix_now();
      for (std::size_t i = 0; i < metas.size(); ++i)
        out.push_back(store_locked(metas[i], texts[i], now));
    });
    db_->notify();
    return out;
  }

  std::optional<ResultMeta> get(std::string_view task_id) override {
    check();
    std::string text;
    {
      std::lock_guard lock(db_->mu);
      Stmt& s = db_->stmt(
          "SELECT meta FROM tq_results WHERE task_id = ? AND (expires_at IS NULL OR expires_at > "
          "?)");
      s.bind(1, task_id).bind(2, unix_now());
      bool found = db_->row(s);
      if (found) text = s.text(0);
      sqlite3_reset(s.get());
      if (!found) return std::nullopt;
    }
    return ResultMeta::from_json(text);
  }

  std::vector<std::optional<ResultMeta>> get_many(std::span<const std::string> ids) override {
    check();
    std::vector<std::optional<std::string>> texts(ids.size());
    {
      std::lock_guard lock(db_->mu);
      double now = unix_now();
      for (std::size_t i = 0; i < ids.size(); ++i) {
        Stmt& s = db_->stmt(
            "SELECT meta FROM tq_results WHERE task_id = ? AND (expires_at IS NULL OR expires_at > "
            "?)");
        s.bind(1, ids[i]).bind(2, now);
        if (db_->row(s)) texts[i] = s.text(0);
        sqlite3_reset(s.get());
      }
    }
    std::vector<std::optional<ResultMeta>> out(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (texts[i]) out[i] = ResultMeta::from_json(*texts[i]);
    return out;
  }

  bool wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) override {
    // cursor packs (data_version << 32 | local_version low bits).
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto poll = std::chrono::milliseconds(1);
    std::unique_lock lock(db_->mu);
    for (;;) {
      std::uint64_t v = (db_->data_version() << 32) ^ (db_->local_version & 0xFFFFFFFFu);
      if (v != *cursor) {
        *cursor = v;
        return true;
      }
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline || closed_) return false;
      bool watched = db_->watch_other_processes();
      std::uint64_t seen = db_->local_version;
      db_->cv.wait_until(lock, watched ? deadline : std::min(deadline, now + poll),
                         [&] { return db_->local_version != seen; });
      poll = std::min(poll * 2, std::chrono::milliseconds(10));
    }
  }

  void forget(std::string_view task_id) override {
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("DELETE FROM tq_results WHERE task_id = ?");
    s.bind(1, task_id);
    db_->run(s);
  }

  std::size_t cleanup() override {
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("DELETE FROM tq_results WHERE expires_at IS NOT NULL AND expires_at <= ?");
    s.bind(1, unix_now());
    return static_cast<std::size_t>(db_->run(s));
  }

  std::chrono::seconds expires() const override { return expires_; }

  void set_chord_size(std::string_view group_id, std::size_t size) override {
    check();
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("INSERT OR REPLACE INTO tq_chords(group_id, size) VALUES(?, ?)");
    s.bind(1, group_id).bind(2, static_cast<long long>(size));
    db_->run(s);
  }

  // One IMMEDIATE transaction: insert, count, compare, collect, delete —
  // exactly one part (of any process) completes the chord.
  std::optional<Json> add_chord_part(const ChordPart& part) override {
    check();
    const std::string text =
        dumps(Json::array({1, part.task_id, std::string(to_string(part.state)), part.result}));
    const double idx = part.group_index ? static_cast<double>(*part.group_index) : 1e300;
    std::lock_guard lock(db_->mu);
    return db_->transaction([&]() -> std::optional<Json> {
      Stmt& ins =
          db_->stmt("INSERT OR IGNORE INTO tq_chord_parts(group_id, idx, part) VALUES(?, ?, ?)");
      ins.bind(1, part.group_id).bind(2, idx).bind(3, text);
      db_->run(ins);
      Stmt& q = db_->stmt(
          "SELECT c.size, (SELECT COUNT(*) FROM tq_chord_parts p WHERE p.group_id = c.group_id) "
          "FROM tq_chords c WHERE c.group_id = ?");
      q.bind(1, part.group_id);
      bool found = db_->row(q);
      long long size = found ? q.integer(0) : -1, count = found ? q.integer(1) : 0;
      sqlite3_reset(q.get());
      if (!found || count != size) return std::nullopt;
      Json all = Json::array();
      Stmt& sel =
          db_->stmt("SELECT part FROM tq_chord_parts WHERE group_id = ? ORDER BY idx, part");
      sel.bind(1, part.group_id);
      while (db_->row(sel)) all.push_back(loads(sel.text(0)));
      sqlite3_reset(sel.get());
      for (const char* sql : {"DELETE FROM tq_chord_parts WHERE group_id = ?",
                              "DELETE FROM tq_chords WHERE group_id = ?"}) {
        Stmt& del = db_->stmt(sql);
        del.bind(1, part.group_id);
        db_->run(del);
      }
      return all;
    });
  }

  void save_group(std::string_view group_id, const std::vector<std::string>& task_ids) override {
    check();
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("INSERT OR REPLACE INTO tq_groups(group_id, ids) VALUES(?, ?)");
    s.bind(1, group_id).bind(2, dumps(Json(task_ids)));
    db_->run(s);
  }

  std::optional<std::vector<std::string>> restore_group(std::string_view group_id) override {
    check();
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("SELECT ids FROM tq_groups WHERE group_id = ?");
    s.bind(1, group_id);
    std::optional<std::string> text;
    if (db_->row(s)) text = s.text(0);
    sqlite3_reset(s.get());
    if (!text) return std::nullopt;
    return loads(*text).get<std::vector<std::string>>();
  }

  void forget_group(std::string_view group_id) override {
    std::lock_guard lock(db_->mu);
    Stmt& s = db_->stmt("DELETE FROM tq_groups WHERE group_id = ?");
    s.bind(1, group_id);
    db_->run(s);
  }

  void close() override { closed_ = true; }

 private:
  void check() const {
    if (closed_) throw BackendError("result backend '" + url_ + "' is closed");
  }

  // Caller holds db_->mu. The WHERE on the upsert keeps a stored SUCCESS
  // (Celery's dedup guard).
  bool store_locked(const ResultMeta& meta, const std::string& text, double now) {
    Stmt& s = db_->stmt(
        "INSERT INTO tq_results(task_id, status, meta, expires_at) VALUES(?, ?, ?, ?) "
        "ON CONFLICT(task_id) DO UPDATE SET status = excluded.status, meta = excluded.meta, "
        "expires_at = excluded.expires_at WHERE tq_results.status != 'SUCCESS' OR "
        "(tq_results.expires_at IS NOT NULL AND tq_results.expires_at <= ?)");
    s.bind(1, meta.task_id).bind(2, to_string(meta.status)).bind(3, text);
    if (expires_.count() > 0) {
      s.bind(4, now + static_cast<double>(expires_.count()));
    } else {
      s.bind_null(4);
    }
    s.bind(5, now);
    return db_->run(s) > 0;
  }

  std::string url_;
  std::chrono::seconds expires_;
  std::shared_ptr<Db> db_;
  std::atomic<bool> closed_{false};
};

}  // namespace

std::unique_ptr<Broker> make_sqlite_broker(const Url& url) {
  return std::make_unique<SqliteBroker>(url);
}
std::unique_ptr<ResultBackend> make_sqlite_backend(const Url& url) {
  return std::make_unique<SqliteBackend>(url, expires_param(url));
}

}  // namespace celeriac::tq::detail
