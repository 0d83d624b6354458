// The guide's workloads, shared by the C++ rows and the table: what each
// measures, its size, and the answer a correct run must produce.
#pragma once

#include <cstdint>
#include <string>

namespace guide {

/// Sizes of one run (--quick shrinks them so CI runs every row in seconds).
struct Sizes {
  int requests = 1000;        ///< I/O-bound: HTTP requests, each answered after delay_ms
  int waits = 10000;          ///< concurrent waits of delay_ms each
  int delay_ms = 20;          ///< the server's (and the waits') delay
  int chunks = 64;            ///< CPU-bound: the range is counted in this many chunks
  long long limit = 2000000;  ///< CPU-bound: count the primes below this
  int mixed_fetches = 64;     ///< mixed: responses fetched, each naming a chunk to count
};

/// Sizes for --quick.
Sizes quick_sizes();

/// What a row is asked to do (passed to the row's own process).
struct RowArgs {
  std::string row;         ///< e.g. "io.aio"
  std::uint16_t port = 0;  ///< the guide's HTTP server on 127.0.0.1
  Sizes sizes;
  std::string broker_dir;  ///< a temporary directory for the SQLite broker
};

/// What a row reports: the result to check and the wall time of its work.
struct RowResult {
  long long value = 0;
  double wall_s = 0;
};

/// Primes in [lo, hi) by trial division (the CPU-bound unit of work).
long long count_primes(long long lo, long long hi);
/// Primes in chunk `index` of `chunks` equal parts of [0, limit).
long long count_chunk(long long limit, int chunks, int index);
/// The number of primes below `limit` by a sieve: the independent check.
long long expected_primes(long long limit);

/// One blocking HTTP GET /<id> to 127.0.0.1:port; returns 1 when the answer
/// is "200" with body <id>, else 0.
int fetch_blocking(int port, int id);

/// Runs the C++ row named in `args` in this process. Throws for an unknown row.
RowResult run_cpp_row(const RowArgs& args);

}  // namespace guide
