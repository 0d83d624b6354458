// The guide's rows, its table and its SVG chart (plain SVG text, no library).
#include "table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace guide {

std::vector<Row> all_rows() {
  // workload, tool, C++ row ("" = none), Python row ("" = none), Celery?
  struct Spec {
    const char* workload;
    const char* tool;
    const char* cpp;
    const char* py;
    bool celery;
  };
  static const Spec specs[] = {
      {"io", "sequential", "io.sequential", "io.sequential", false},
      {"io", "a thread per request", "io.threads", "io.threads", false},
      {"io", "thread pool (8)", "io.pool8", "io.pool8", false},
      {"io", "thread pool (64)", "io.pool64", "io.pool64", false},
      {"io", "coroutines (aio / asyncio)", "io.aio", "io.asyncio", false},
      {"io", "process pool (16)", "io.procpool", "io.procpool", false},
      {"io", "task queue, threads pool (64)", "io.tq_threads", "", false},
      {"io", "task queue, threads pool (64)", "", "io.celery_threads", true},
      {"io", "task queue, async pool", "io.tq_async", "", false},
      {"wait", "a thread per wait", "wait.threads", "wait.threads", false},
      {"wait", "thread pool (64)", "wait.pool64", "wait.pool64", false},
      {"wait", "coroutines (aio / asyncio)", "wait.aio", "wait.asyncio", false},
      {"cpu", "sequential", "cpu.sequential", "cpu.sequential", false},
      {"cpu", "a thread per chunk", "cpu.threads", "cpu.threads", false},
      {"cpu", "thread pool (cores)", "cpu.pool", "cpu.pool", false},
      {"cpu", "process pool (cores)", "cpu.procpool", "cpu.procpool", false},
      {"cpu", "multiprocessing.Pool (cores)", "", "cpu.mp_pool", false},
      {"cpu", "coroutines + to_thread", "cpu.aio_to_thread", "cpu.asyncio_to_thread", false},
      {"cpu", "task queue, processes pool", "cpu.tq_processes", "", false},
      {"cpu", "task queue, processes pool", "", "cpu.celery_prefork", true},
      {"mixed", "coroutines fetch, thread pool counts", "mixed.aio_pool", "mixed.asyncio_threads",
       false},
      {"mixed", "coroutines fetch, process pool counts", "", "mixed.asyncio_procs", false},
  };
  std::vector<Row> rows;
  for (const Spec& s : specs) {
    auto add = [&](const char* lang, const char* id) {
      Row r;
      r.workload = s.workload;
      r.tool = s.tool;
      r.lang = lang;
      r.id = id;
      r.needs_redis = s.celery;
      rows.push_back(r);
    };
    if (*s.cpp) add("C++", s.cpp);
    if (*s.py) add("Python", s.py);
  }
  return rows;
}

long long expected_value(const Row& row, const Sizes& sizes) {
  if (row.workload == "io") return sizes.requests;
  if (row.workload == "wait") return sizes.waits;
  return expected_primes(sizes.limit);  // cpu and mixed count every chunk once
}

std::string workload_title(const std::string& workload, const Sizes& s) {
  char buf[160];
  if (workload == "io")
    std::snprintf(buf, sizeof buf, "I/O-bound: %d HTTP requests, each answered after %d ms",
                  s.requests, s.delay_ms);
  else if (workload == "wait")
    std::snprintf(buf, sizeof buf, "%d concurrent waits of %d ms", s.waits, s.delay_ms);
  else if (workload == "cpu")
    std::snprintf(buf, sizeof buf, "CPU-bound: primes below %lld in %d chunks", s.limit, s.chunks);
  else
    std::snprintf(buf, sizeof buf,
                  "mixed: %d fetches (%d ms each), each followed by counting one chunk",
                  s.mixed_fetches, s.delay_ms);
  return buf;
}

void compute_speedups(std::vector<Row>& rows) {
  std::map<std::string, double> sequential;  // workload + lang -> wall
  for (const Row& r : rows)
    if (r.ran && r.error.empty() && r.tool == "sequential")
      sequential[r.workload + r.lang] = r.wall_s;
  for (Row& r : rows) {
    auto it = sequential.find((r.workload == "mixed" ? "cpu" : r.workload) + r.lang);
    if (r.ran && r.error.empty() && it != sequential.end() && r.wall_s > 0 && r.workload != "mixed")
      r.speedup = it->second / r.wall_s;
  }
}

void print_table(const std::vector<Row>& rows, const Sizes& sizes) {
  std::string last;
  std::printf("\n%-40s %-7s %10s %9s %8s %9s %8s  %s\n", "tool", "lang", "result", "wall s",
              "cpu s", "peak MB", "speedup", "check");
  for (const Row& r : rows) {
    if (r.workload != last) {
      std::printf("-- %s\n", workload_title(r.workload, sizes).c_str());
      last = r.workload;
    }
    if (!r.ran) {
      std::printf("%-40s %-7s %10s %9s %8s %9s %8s  skipped: %s\n", r.tool.c_str(), r.lang.c_str(),
                  "-", "-", "-", "-", "-", r.error.c_str());
      continue;
    }
    char speed[16] = "";
    if (r.speedup) std::snprintf(speed, sizeof speed, "%.2fx", *r.speedup);
    bool ok = r.error.empty() && r.value == expected_value(r, sizes);
    std::printf("%-40s %-7s %10lld %9.3f %8.2f %9.1f %8s  %s\n", r.tool.c_str(), r.lang.c_str(),
                r.value, r.wall_s, r.cpu_s, r.peak_mb, speed,
                ok ? "ok" : ("WRONG " + r.error).c_str());
  }
}

// ---- the chart ----

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

struct Panel {
  std::string workload;
  std::string title;
  double Row::*metric;
  bool log_scale;
  std::string unit;
};

// Horizontal bars, one per row of the workload; returns the panel's height.
int draw_panel(std::ostringstream& svg, const Panel& p, const std::vector<Row>& rows, int top) {
  std::vector<const Row*> bars;
  for (const Row& r : rows)
    if (r.workload == p.workload && r.ran && r.error.empty() && r.*p.metric > 0) bars.push_back(&r);
  const int label_w = 330, bar_w = 420, row_h = 18;
  svg << "<text x='10' y='" << top + 16 << "' font-weight='bold'>" << escape(p.title)
      << "</text>\n";
  if (bars.empty()) return 30;
  double lo = 1e300, hi = 0;
  for (auto* r : bars) lo = std::min(lo, r->*p.metric), hi = std::max(hi, r->*p.metric);
  double base = p.log_scale ? std::pow(10, std::floor(std::log10(lo))) : 0;
  double top_v = p.log_scale ? std::pow(10, std::ceil(std::log10(hi * 1.0001))) : hi * 1.1;
  auto scale = [&](double v) {
    if (p.log_scale)
      return bar_w * (std::log10(v) - std::log10(base)) / (std::log10(top_v) - std::log10(base));
    return bar_w * v / top_v;
  };
  int y = top + 28;
  for (auto* r : bars) {
    double v = r->*p.metric;
    const char* color = r->lang == "C++" ? "#2b6cb0" : "#dd8b1f";
    svg << "<text x='" << label_w - 6 << "' y='" << y + 13 << "' text-anchor='end'>"
        << escape(r->tool) << " (" << r->lang << ")</text>\n";
    svg << "<rect x='" << label_w << "' y='" << y + 2 << "' width='" << std::max(1.0, scale(v))
        << "' height='" << row_h - 4 << "' fill='" << color << "'/>\n";
    char val[48];
    std::snprintf(val, sizeof val, v < 10 ? "%.3g %s" : "%.0f %s", v, p.unit.c_str());
    svg << "<text x='" << label_w + std::max(1.0, scale(v)) + 4 << "' y='" << y + 13 << "'>" << val
        << "</text>\n";
    y += row_h;
  }
  svg << "<text x='" << label_w << "' y='" << y + 12 << "' fill='#666'>"
      << (p.log_scale ? "log scale, " : "linear, ") << "axis from " << base << " to " << top_v
      << " " << escape(p.unit) << "</text>\n";
  return y + 22 - top;
}

}  // namespace

std::string render_svg(const std::vector<Row>& rows, const Sizes& sizes) {
  const Panel panels[] = {
      {"io", workload_title("io", sizes) + ": wall time", &Row::wall_s, true, "s"},
      {"io", "the same: peak memory of the largest process", &Row::peak_mb, true, "MB"},
      {"wait", workload_title("wait", sizes) + ": peak memory", &Row::peak_mb, true, "MB"},
      {"wait", "the same: wall time", &Row::wall_s, true, "s"},
      {"cpu", workload_title("cpu", sizes) + ": speedup over sequential", nullptr, false, "x"},
      {"cpu", "the same: wall time", &Row::wall_s, true, "s"},
      {"mixed", workload_title("mixed", sizes) + ": wall time", &Row::wall_s, true, "s"},
  };
  // Speedup is optional<double>: copy it into a plain field for drawing.
  std::vector<Row> drawn = rows;
  for (Row& r : drawn) r.cpu_s = r.speedup.value_or(0);  // reused as the speedup panel's metric
  std::ostringstream body;
  int y = 40;
  for (Panel p : panels) {
    if (!p.metric) p.metric = &Row::cpu_s;
    y += draw_panel(body, p, p.metric == &Row::cpu_s ? drawn : rows, y) + 10;
  }
  std::ostringstream svg;
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='900' height='" << y + 10
      << "' font-family='sans-serif' font-size='12'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n"
      << "<text x='10' y='22' font-size='16' font-weight='bold'>celeriac-guide: the same work "
         "through every "
         "tool (blue: C++, orange: Python)</text>\n"
      << body.str() << "</svg>\n";
  return svg.str();
}

}  // namespace guide
