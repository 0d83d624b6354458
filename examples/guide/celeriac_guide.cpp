// celeriac-guide: which tool when, measured on this machine. Runs the same
// workloads (I/O-bound HTTP requests, many concurrent waits, CPU-bound prime
// counting, and a fetch-then-compute pipeline) through every tool of
// celeriac and, when /usr/bin/python3 is there, through Python's threading,
// multiprocessing, asyncio, concurrent.futures and Celery (on a private
// redis-server). Prints one table, writes an SVG chart. docs/guide.md reads it.
//
//   celeriac-guide [--quick] [--svg FILE] [--no-python] [--only PREFIX]
//
// Each row runs in a process of its own (this program with --row NAME, or
// the Python script), so its peak memory and CPU time are its own.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "celeriac/aio.hpp"
#include "celeriac/mp.hpp"
#include "run_child.hpp"
#include "table.hpp"
#include "workloads.hpp"

#ifndef GUIDE_PYTHON_SCRIPT
#define GUIDE_PYTHON_SCRIPT "guide.py"
#endif

namespace aio = celeriac::aio;
namespace fs = std::filesystem;

namespace {

// ---- the HTTP server every I/O row talks to ----

// Answers "GET /<id>" with body <id>, after `delay_ms`, then closes.
aio::Task<void> answer(aio::StreamReader reader, aio::StreamWriter writer, int delay_ms) {
  try {
    std::string head = co_await reader.read_until("\r\n\r\n");
    auto path_end = head.find(' ', 4);
    std::string id = head.starts_with("GET /") ? head.substr(5, path_end - 5) : "";
    co_await aio::sleep(std::chrono::milliseconds(delay_ms));
    writer.write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(id.size()) +
                 "\r\nConnection: close\r\n\r\n" + id);
    co_await writer.drain();
  } catch (const celeriac::Error&) {
    // A client that went away; the next one is served as usual.
  }
  writer.close();
  co_await writer.wait_closed();
}

// The server, on an event loop thread of its own.
class Server {
 public:
  explicit Server(int delay_ms) {
    std::promise<std::uint16_t> port;
    auto ready = port.get_future();
    thread_ = std::thread([this, delay_ms, &port] {
      aio::run(
          [](Server* self, int delay_ms, std::promise<std::uint16_t>& port) -> aio::Task<void> {
            auto handler = [delay_ms](aio::StreamReader r, aio::StreamWriter w) {
              return answer(std::move(r), std::move(w), delay_ms);
            };
            aio::ServerOptions opts;
            opts.backlog = 4096;
            aio::Server server = co_await aio::start_server(handler, "127.0.0.1", 0, opts);
            self->loop_ = &aio::EventLoop::current();
            self->server_ = server;
            port.set_value(server.port());
            co_await server.serve_forever();
            co_await server.wait_closed();
          }(this, delay_ms, port));
    });
    port_ = ready.get();
  }
  ~Server() {
    loop_->call_soon_threadsafe([this] { server_->close(); });
    thread_.join();
  }
  std::uint16_t port() const { return port_; }

 private:
  std::thread thread_;
  aio::EventLoop* loop_ = nullptr;
  std::optional<aio::Server> server_;
  std::uint16_t port_ = 0;
};

// ---- options ----

struct Options {
  bool quick = false;
  bool python = true;
  std::string svg = "celeriac-guide.svg";
  std::string only;  // run only rows whose name starts with this
  std::string python_bin = "/usr/bin/python3";
  std::string script = GUIDE_PYTHON_SCRIPT;
  // Internal: run one C++ row in this process.
  std::string row;
  int port = 0;
  std::string broker_dir;
};

guide::Sizes sizes_of(const Options& o) {
  return o.quick ? guide::quick_sizes() : guide::Sizes{};
}

// --row NAME: run one C++ row and print its result line.
int run_row(const Options& o) {
  spdlog::set_level(spdlog::level::warn);
  guide::RowArgs a{o.row, static_cast<std::uint16_t>(o.port), sizes_of(o), o.broker_dir};
  guide::RowResult r = guide::run_cpp_row(a);
  std::printf("GUIDE-RESULT %lld %.6f\n", r.value, r.wall_s);
  return 0;
}

// "load average 1.52 0.80 0.31 on 2 cores": read the figures against it.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  in >> a >> b >> c;
  char buf[96];
  std::snprintf(buf, sizeof buf, "load average %.2f %.2f %.2f on %u cores", a, b, c,
                std::thread::hardware_concurrency());
  return buf;
}

bool python_has(const Options& o, const std::string& module) {
  std::string cmd = o.python_bin + " -c 'import " + module + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

int run_guide(const Options& o, const std::string& self) {
  guide::Sizes sizes = sizes_of(o);
  guide::install_subreaper();
  std::vector<guide::Row> rows = guide::all_rows();
  if (!o.only.empty())
    std::erase_if(rows, [&](const guide::Row& r) { return !r.id.starts_with(o.only); });
  bool python = o.python && fs::exists(o.python_bin);
  if (python && !fs::exists(o.script)) {
    std::fprintf(stderr, "celeriac-guide: the Python script %s is missing\n", o.script.c_str());
    return 2;
  }
  std::optional<guide::RedisServer> redis;
  bool celery = python && python_has(o, "celery") && fs::exists("/usr/bin/redis-server");
  if (celery) redis.emplace();
  Server server(sizes.delay_ms);
  fs::path tmp = fs::temp_directory_path() / ("celeriac-guide-" + std::to_string(getpid()));
  std::printf("celeriac-guide%s: %zu rows; HTTP server on 127.0.0.1:%u; Python: %s; Celery: %s\n",
              o.quick ? " --quick" : "", rows.size(), server.port(),
              python ? o.python_bin.c_str() : "no",
              celery ? ("on redis-server at " + redis->url()).c_str()
                     : "no (needs python3-celery and redis-server)");
  std::printf("%s\n", load_average().c_str());
  std::size_t index = 0;
  int failures = 0;
  for (guide::Row& r : rows) {
    ++index;
    std::printf("[%2zu/%zu] %-22s %-7s %-38s ", index, rows.size(), r.id.c_str(), r.lang.c_str(),
                r.tool.c_str());
    std::fflush(stdout);
    if (r.lang == "Python" && !python) {
      r.error = o.python ? "no " + o.python_bin : "--no-python";
      std::printf("skipped (%s)\n", r.error.c_str());
      continue;
    }
    if (r.needs_redis && !celery) {
      r.error = "no Celery on Redis here";
      std::printf("skipped (%s)\n", r.error.c_str());
      continue;
    }
    fs::create_directories(tmp / r.id);
    std::vector<std::string> argv;
    if (r.lang == "C++")
      argv = {self,
              "--row",
              r.id,
              "--port",
              std::to_string(server.port()),
              "--broker-dir",
              (tmp / r.id).string()};
    else
      argv = {o.python_bin, o.script, "--row", r.id, "--port", std::to_string(server.port())};
    if (o.quick) argv.push_back("--quick");
    if (r.needs_redis) argv.insert(argv.end(), {"--redis", redis->url()});
    guide::ChildRun c = guide::run_measured(argv, redis ? redis->pid() : 0);
    r.ran = true;
    r.cpu_s = c.cpu_s;
    r.peak_mb = c.peak_mb;
    if (!c.error.empty()) {
      r.error = c.error;
    } else {
      r.value = c.value;
      r.wall_s = c.wall_s;
    }
    bool ok = r.error.empty() && r.value == guide::expected_value(r, sizes);
    failures += ok ? 0 : 1;
    std::printf("%8.3f s  %s\n", r.wall_s,
                ok ? "ok" : ("WRONG: got " + std::to_string(r.value) + " " + r.error).c_str());
    std::fflush(stdout);
  }
  fs::remove_all(tmp);
  guide::compute_speedups(rows);
  guide::print_table(rows, sizes);
  std::ofstream(o.svg) << guide::render_svg(rows, sizes);
  std::printf("\n%s (at the end)\nchart: %s\n", load_average().c_str(), o.svg.c_str());
  std::size_t ran = 0;
  for (const auto& r : rows) ran += r.ran;
  if (failures == 0)
    std::printf("all %zu rows that ran are correct (%zu skipped)\n", ran, rows.size() - ran);
  else
    std::printf("%d of %zu rows failed\n", failures, ran);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App cli{
      "celeriac-guide: the same workloads through every tool, C++ and Python side by side"};
  cli.add_flag("--quick", o.quick, "small sizes (seconds; what CI runs)");
  cli.add_option("--svg", o.svg, "where to write the chart");
  cli.add_flag("!--no-python", o.python, "skip the Python rows");
  cli.add_option("--only", o.only,
                 "run only the rows whose name starts with this (e.g. io., cpu.)");
  cli.add_option("--python", o.python_bin,
                 "the Python interpreter (with python3-celery for the Celery rows)");
  cli.add_option("--script", o.script, "the guide's Python side");
  cli.add_option("--row", o.row, "internal: run one C++ row")->group("");
  cli.add_option("--port", o.port, "internal: the HTTP server's port")->group("");
  cli.add_option("--broker-dir", o.broker_dir, "internal: a directory for the row's SQLite broker")
      ->group("");
  CLI11_PARSE(cli, argc, argv);
  try {
    if (!o.row.empty()) return run_row(o);
    return run_guide(o, fs::read_symlink("/proc/self/exe").string());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "celeriac-guide: %s\n", e.what());
    return 1;
  }
}
