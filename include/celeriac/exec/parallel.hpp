// parallel_for and parallel_reduce: data parallelism with adaptive splitting
// (recursive halving; a piece that was stolen is split further, because
// stealing means other workers are hungry).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <exception>
#include <iterator>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include "celeriac/exec/executor.hpp"
#include "celeriac/exec/task_group.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::exec {

namespace detail {

inline int initial_split_depth(const ThreadPool& pool) {
  // About 8 pieces per worker before any stealing.
  return std::bit_width(pool.max_workers()) + 3;
}

template <class I, class F>
void parallel_for_rec(ThreadPool& pool, I lo, I hi, std::size_t grain, int depth, const F& fn) {
  TaskGroup group(pool);
  while (static_cast<std::size_t>(hi - lo) > grain && depth > 0) {
    const I mid = lo + (hi - lo) / 2;
    const int spawner = pool.worker_index();
    const int d = depth - 1;
    group.run([&pool, mid, hi, grain, d, &fn, spawner] {
      parallel_for_rec(pool, mid, hi, grain, pool.worker_index() != spawner ? d + 2 : d, fn);
    });
    hi = mid;
    depth = d;
  }
  for (I i = lo; i < hi; ++i) fn(i);
  group.wait();
}

template <class It, class T, class Map, class Reduce>
T parallel_reduce_rec(ThreadPool& pool, It first, std::size_t lo, std::size_t hi, std::size_t grain,
                      int depth, const T& identity, const Map& map, const Reduce& reduce) {
  if (hi - lo <= grain || depth <= 0) {
    T acc = identity;
    for (std::size_t i = lo; i < hi; ++i) acc = reduce(std::move(acc), map(first[i]));
    return acc;
  }
  const std::size_t mid = lo + (hi - lo) / 2;
  const int spawner = pool.worker_index();
  std::optional<T> right;
  TaskGroup group(pool);
  group.run([&, spawner] {
    right.emplace(parallel_reduce_rec(pool, first, mid, hi, grain,
                                      pool.worker_index() != spawner ? depth + 1 : depth - 1,
                                      identity, map, reduce));
  });
  T left = parallel_reduce_rec(pool, first, lo, mid, grain, depth - 1, identity, map, reduce);
  group.wait();
  return reduce(std::move(left), std::move(*right));
}

/// Runs `fn` on `pool` and waits: inline when already on one of its workers.
template <class F>
decltype(auto) run_on_pool(ThreadPool& pool, F&& fn) {
  if (pool.running_in_this_thread()) return std::forward<F>(fn)();
  return pool.submit(std::forward<F>(fn)).result();
}

}  // namespace detail

/// Calls fn(i) for every i in [first, last), in parallel on `pool`, and
/// returns when all calls are done. Pieces are never smaller than `grain`
/// indices (0: chosen adaptively). The first exception a call throws is
/// rethrown here; calls not started by then are skipped.
template <std::integral I, class F>
void parallel_for(ThreadPool& pool, I first, I last, F&& fn, std::size_t grain = 0) {
  if (!(first < last)) return;
  const int depth = detail::initial_split_depth(pool);
  detail::run_on_pool(pool, [&] {
    detail::parallel_for_rec(pool, first, last, std::max<std::size_t>(grain, 1), depth, fn);
  });
}

/// As above on any executor: the range is cut into pieces of `grain`
/// indices (0: 64 pieces at most) posted to `executor`; blocks until done.
template <Executor E, std::integral I, class F>
requires(!std::same_as<E, ThreadPool>) void parallel_for(E& executor, I first, I last, F&& fn,
                                                         std::size_t grain = 0) {
  if (!(first < last)) return;
  const auto n = static_cast<std::size_t>(last - first);
  if (grain == 0) grain = std::max<std::size_t>(1, (n + 63) / 64);
  const std::size_t pieces = (n + grain - 1) / grain;
  struct Shared {
    std::atomic<std::size_t> left;
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    futures::detail::StatePtr<void> done = futures::detail::make_state<void>();
  };
  auto shared = std::make_shared<Shared>();
  shared->left.store(pieces, std::memory_order_relaxed);
  Future<void> done(shared->done);
  auto finish_piece = [](Shared& s) {
    if (s.left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (s.error) {
        s.done->try_set_exception(s.error);
      } else {
        s.done->try_set_value();
      }
    }
  };
  std::size_t posted = 0;
  try {
    for (; posted < pieces; ++posted) {
      const I lo = static_cast<I>(first + static_cast<I>(posted * grain));
      const I hi = static_cast<I>(std::min<std::size_t>(n, (posted + 1) * grain) + first);
      executor.post([shared, lo, hi, &fn, finish_piece] {
        if (!shared->failed.load(std::memory_order_acquire)) {
          try {
            for (I i = lo; i < hi; ++i) fn(i);
          } catch (...) {
            if (!shared->failed.exchange(true, std::memory_order_acq_rel))
              shared->error = std::current_exception();
          }
        }
        finish_piece(*shared);
      });
    }
  } catch (...) {
    // The executor refused a piece: account for the ones never posted, wait
    // for the others (they reference fn), then report the refusal.
    shared->failed.store(true, std::memory_order_release);
    auto e = std::current_exception();
    for (std::size_t i = posted; i < pieces; ++i) {
      if (shared->left.fetch_sub(1, std::memory_order_acq_rel) == 1) shared->done->try_set_value();
    }
    done.wait();
    std::rethrow_exception(e);
  }
  done.result();
}

/// Calls fn(element) for every element of a random-access range, in parallel.
template <class Pool, std::ranges::random_access_range Range, class F>
requires std::ranges::sized_range<Range>
void parallel_for_each(Pool& pool, Range&& range, F&& fn, std::size_t grain = 0) {
  auto first = std::ranges::begin(range);
  parallel_for(
      pool, std::size_t{0}, static_cast<std::size_t>(std::ranges::size(range)),
      [&](std::size_t i) { fn(first[i]); }, grain);
}

/// Folds map(x) over every element x of a random-access range with
/// `reduce`, in parallel on `pool`: each piece starts from `identity`, and
/// pieces are combined in order (reduce must be associative; it need not be
/// commutative). Pieces are never smaller than `grain` elements (0:
/// adaptive). The first exception is rethrown here.
template <std::ranges::random_access_range Range, class T, class Map, class Reduce>
requires std::ranges::sized_range<Range> T parallel_reduce(ThreadPool& pool, Range&& range,
                                                           T identity, Map map, Reduce reduce,
                                                           std::size_t grain = 0) {
  const auto n = static_cast<std::size_t>(std::ranges::size(range));
  if (n == 0) return identity;
  auto first = std::ranges::begin(range);
  const int depth = detail::initial_split_depth(pool);
  const std::size_t g = std::max<std::size_t>(grain, 1);
  return detail::run_on_pool(pool, [&]() -> T {
    return detail::parallel_reduce_rec(pool, first, 0, n, g, depth, identity, map, reduce);
  });
}

}  // namespace celeriac::exec
