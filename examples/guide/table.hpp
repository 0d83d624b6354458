// The guide's table: every row (a workload through one tool, in C++ or in
// Python), what it measured, and the SVG chart drawn from it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "workloads.hpp"

namespace guide {

/// One line of the table.
struct Row {
  std::string workload;      ///< "io", "wait", "cpu", "mixed"
  std::string tool;          ///< what the reader picks, e.g. "ThreadPool(64)"
  std::string lang;          ///< "C++" or "Python"
  std::string id;            ///< the row's name in its program, e.g. "io.pool64"
  bool needs_redis = false;  ///< Celery rows: run only with a redis-server
  // Filled when it ran:
  bool ran = false;
  std::string error;              ///< why it did not run or failed
  long long value = 0;            ///< its answer
  double wall_s = 0;              ///< its work's wall time
  double cpu_s = 0;               ///< user + system time of its whole process tree
  double peak_mb = 0;             ///< largest resident set of its process tree's processes
  std::optional<double> speedup;  ///< sequential wall / this wall (same language)
};

/// The rows of a run, in table order (each C++ row followed by its Python neighbour).
std::vector<Row> all_rows();
/// The answer `row` must give for `sizes`.
long long expected_value(const Row& row, const Sizes& sizes);
/// A title for a workload, e.g. "I/O: 1000 HTTP requests, 20 ms each".
std::string workload_title(const std::string& workload, const Sizes& sizes);
/// Fills speedup from each language's sequential row of the same workload.
void compute_speedups(std::vector<Row>& rows);
/// Prints the table.
void print_table(const std::vector<Row>& rows, const Sizes& sizes);
/// The SVG chart: wall times, memory, speedups (log scales where they span decades).
std::string render_svg(const std::vector<Row>& rows, const Sizes& sizes);

}  // namespace guide
