// What the task-queue benchmarks share: timing, number formatting, the no-op
// tasks both languages run (tests/tq/python/celeriac_test_tasks.py), and the
// worker options every celeriac side uses.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "celeriac/tq.hpp"

namespace celeriac::tq::bench {

/// Seconds elapsed since `t0`.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// printf-style formatting of one number.
inline std::string fmtd(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// "tasks.noop" (ignore_result) and "tasks.noop_result", as Python's side names them.
inline void register_noops(App& app) {
  TaskOptions no_result;
  no_result.ignore_result = true;
  app.task(
      "tasks.noop", {}, [] {}, no_result);
  app.task("tasks.noop_result", {}, [] {});
}

/// The celeriac worker of every benchmark: threads pool, 2 slots, a deep prefetch.
inline WorkerOptions worker_options() {
  WorkerOptions o;
  o.hostname = "bench@celeriac";
  o.concurrency = 2;
  o.prefetch_multiplier = 64;
  o.poll_interval = std::chrono::milliseconds(100);
  return o;
}

}  // namespace celeriac::tq::bench
