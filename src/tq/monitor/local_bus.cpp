// LocalBus for memory:// (a process-wide log under one mutex) and sqlite://
// (the celeriac_monitor table of the broker's database; readers in other
// processes are woken by inotify on the database's WAL, never by spinning).
#include "local_bus.hpp"

#include <poll.h>
#include <sqlite3.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>

#include "celeriac/tq/detail/sqlite_open.hpp"
#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::monitor {

std::string reply_channel(const std::string& oid) {
  return "reply:" + oid;
}

namespace {

using Clock = std::chrono::steady_clock;

double wall_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------ memory://

struct MemoryLog {
  struct Row {
    std::int64_t id;
    std::string channel;
    std::string body;
    Clock::time_point at;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Row> rows;
  std::int64_t last = 0;
  std::int64_t events = 0;

  static MemoryLog& instance() {
    static MemoryLog* log = new MemoryLog;  // never destroyed: workers may outlive main's statics
    return *log;
  }
};

class MemoryBus final : public LocalBus {
 public:
  explicit MemoryBus(BusLimits limits) : limits_(limits) {}

  void append(const std::string& channel, const std::vector<std::string>& bodies) override {
    auto& log = MemoryLog::instance();
    {
      std::lock_guard lk(log.mu);
      for (auto& b : bodies) {
        log.rows.push_back({++log.last, channel, b, Clock::now()});
        if (channel == kEventChannel) ++log.events;
      }
      trim(log);
    }
    log.cv.notify_all();
  }

  std::vector<std::string> read(const std::string& channel, std::int64_t& cursor,
                                std::chrono::milliseconds timeout, std::size_t limit) override {
    auto& log = MemoryLog::instance();
    std::vector<std::string> out;
    std::unique_lock lk(log.mu);
    log.cv.wait_for(lk, timeout, [&] {
      collect(log, channel, cursor, limit, out);
      return !out.empty();
    });
    return out;
  }

  std::int64_t tail() override {
    auto& log = MemoryLog::instance();
    std::lock_guard lk(log.mu);
    return log.last;
  }

 private:
  static void collect(MemoryLog& log, const std::string& channel, std::int64_t& cursor,
                      std::size_t limit, std::vector<std::string>& out) {
    // rows are in id order: skip to the cursor by binary search
    auto it = std::upper_bound(log.rows.begin(), log.rows.end(), cursor,
                               [](std::int64_t c, const MemoryLog::Row& r) { return c < r.id; });
    for (; it != log.rows.end() && out.size() < limit; ++it) {
      cursor = it->id;
      if (it->channel == channel) out.push_back(it->body);
    }
  }

  void trim(MemoryLog& log) const {
    auto too_old = Clock::now() - limits_.control_ttl;
    while (!log.rows.empty()) {
      auto& f = log.rows.front();
      bool is_event = f.channel == kEventChannel;
      if (is_event ? log.events > limits_.max_events : f.at < too_old) {
        if (is_event) --log.events;
        log.rows.pop_front();
      } else {
        break;
      }
    }
  }

  BusLimits limits_;
};

// ------------------------------------------------------------ sqlite://

std::string sqlite_path(const Url& url) {
  if (url.path.empty())
    throw ConfigError("bad URL '" + url.redacted() +
                      "': SQLite needs a file path (sqlite:///relative.db or sqlite:////abs.db)");
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(std::filesystem::absolute(url.path, ec), ec);
  return abs.empty() ? url.path : abs.string();
}

class SqliteBus final : public LocalBus {
 public:
  SqliteBus(const Url& url, BusLimits limits) : path_(sqlite_path(url)), limits_(limits) {
    auto opened = detail::open_sqlite(
        path_, SQLITE_OPEN_FULLMUTEX, std::chrono::seconds(10),
        {"CREATE TABLE IF NOT EXISTS celeriac_monitor (id INTEGER PRIMARY KEY AUTOINCREMENT, "
         "channel TEXT NOT NULL, body TEXT NOT NULL, created REAL NOT NULL)",
         "CREATE INDEX IF NOT EXISTS celeriac_monitor_channel ON celeriac_monitor(channel, id)"});
    if (!opened.db) throw BrokerError("SQLite monitor bus " + url.redacted() + ": " + opened.error);
    db_ = opened.db;
  }

  ~SqliteBus() override {
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    sqlite3_close_v2(db_);
  }

  void append(const std::string& channel, const std::vector<std::string>& bodies) override {
    std::lock_guard lk(mu_);
    exec("BEGIN IMMEDIATE");
    try {
      Stmt ins(db_, "INSERT INTO celeriac_monitor(channel, body, created) VALUES (?, ?, ?)");
      double now = wall_now();
      for (auto& b : bodies) {
        ins.text(1, channel).text(2, b).real(3, now);
        ins.step_done();
      }
      if ((appended_ += bodies.size()) >= 256) {
        appended_ = 0;
        trim(now);
      }
      exec("COMMIT");
    } catch (...) {
      exec_noexcept("ROLLBACK");
      throw;
    }
  }

  std::vector<std::string> read(const std::string& channel, std::int64_t& cursor,
                                std::chrono::milliseconds timeout, std::size_t limit) override {
    auto deadline = Clock::now() + timeout;
    watch();
    for (;;) {
      std::vector<std::string> out = query(channel, cursor, limit);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (!out.empty() || left.count() <= 0) return out;
      wait_for_change(left);
    }
  }

  std::int64_t tail() override {
    std::lock_guard lk(mu_);
    Stmt s(db_, "SELECT COALESCE(MAX(id), 0) FROM celeriac_monitor");
    return s.step_row() ? sqlite3_column_int64(s.s, 0) : 0;
  }

 private:
  struct Stmt {
    sqlite3_stmt* s = nullptr;
    sqlite3* db;
    Stmt(sqlite3* d, const char* sql) : db(d) {
      if (sqlite3_prepare_v2(d, sql, -1, &s, nullptr) != SQLITE_OK)
        throw BrokerError(std::string("SQLite monitor bus: ") + sqlite3_errmsg(d));
    }
    ~Stmt() { sqlite3_finalize(s); }
    Stmt& text(int i, const std::string& v) {
      sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
      return *this;
    }
    Stmt& real(int i, double v) {
      sqlite3_bind_double(s, i, v);
      return *this;
    }
    Stmt& int64(int i, std::int64_t v) {
      sqlite3_bind_int64(s, i, v);
      return *this;
    }
    bool step_row() {
      int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) return true;
      if (rc != SQLITE_DONE)
        throw BrokerError(std::string("SQLite monitor bus: ") + sqlite3_errmsg(db));
      return false;
    }
    void step_done() {
      step_row();
      sqlite3_reset(s);
    }
  };

  std::vector<std::string> query(const std::string& channel, std::int64_t& cursor,
                                 std::size_t limit) {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    Stmt s(db_,
           "SELECT id, body FROM celeriac_monitor WHERE channel = ? AND id > ? ORDER BY id "
           "LIMIT ?");
    s.text(1, channel).int64(2, cursor).int64(3, static_cast<std::int64_t>(limit));
    while (s.step_row()) {
      cursor = sqlite3_column_int64(s.s, 0);
      auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s.s, 1));
      out.emplace_back(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s.s, 1)));
    }
    return out;
  }

  void trim(double now) {
    Stmt ev(db_,
            "DELETE FROM celeriac_monitor WHERE channel = 'event' AND id <= "
            "(SELECT COALESCE(MAX(id), 0) FROM celeriac_monitor) - ?");
    ev.int64(1, limits_.max_events);
    ev.step_done();
    Stmt ctl(db_, "DELETE FROM celeriac_monitor WHERE channel <> 'event' AND created < ?");
    ctl.real(1, now - static_cast<double>(limits_.control_ttl.count()));
    ctl.step_done();
  }

  // inotify on the folder, filtered to this database's files (every WAL
  // commit writes <db>-wal). Without inotify the reader polls every 50 ms.
  void watch() {
    if (inotify_fd_ >= 0 || watch_failed_) return;
    inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    std::filesystem::path p(path_);
    if (inotify_fd_ < 0 ||
        inotify_add_watch(inotify_fd_, p.parent_path().c_str(), IN_MODIFY | IN_CLOSE_WRITE) < 0) {
      if (inotify_fd_ >= 0) ::close(inotify_fd_);
      inotify_fd_ = -1;
      watch_failed_ = true;
    }
  }

  void wait_for_change(std::chrono::milliseconds left) {
    if (inotify_fd_ < 0) {
      pollfd none{};
      ::poll(&none, 0, static_cast<int>(std::min<long long>(left.count(), 50)));
      return;
    }
    pollfd fd{inotify_fd_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(std::min<long long>(left.count(), 1000))) <= 0) return;
    alignas(inotify_event) char buf[4096];
    while (::read(inotify_fd_, buf, sizeof buf) > 0) {
      // drained: any change in the folder triggers one query
    }
  }

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "error";
      sqlite3_free(err);
      throw BrokerError("SQLite monitor bus: " + msg);
    }
  }
  void exec_noexcept(const char* sql) noexcept {
    sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  }

  std::string path_;
  BusLimits limits_;
  sqlite3* db_ = nullptr;
  std::mutex mu_;
  std::size_t appended_ = 0;
  int inotify_fd_ = -1;
  bool watch_failed_ = false;
};

}  // namespace

std::unique_ptr<LocalBus> open_local_bus(const Url& broker_url, BusLimits limits) {
  if (broker_url.scheme == "memory") return std::make_unique<MemoryBus>(limits);
  if (broker_url.scheme == "sqlite") return std::make_unique<SqliteBus>(broker_url, limits);
  throw ConfigError("no local monitor bus for '" + broker_url.redacted() +
                    "' (memory:// and sqlite:// only)");
}

}  // namespace celeriac::tq::monitor
