// MapResults<R>: the lazy, ordered result range of ThreadPool::map.
#pragma once

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "celeriac/error.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::exec {

/// The results of ThreadPool::map, in input order. An input range: iterate it
/// once. Each step blocks until that element's call is done, then yields its
/// value or rethrows its exception (TimeoutError past the map's deadline).
/// Destroying it cancels the calls that have not started.
template <class R>
class MapResults {
 public:
  /// One task's results: a chunk of consecutive items.
  using Chunk = std::vector<R>;
  /// The clock of the deadline.
  using Clock = std::chrono::steady_clock;

  /// The results of `chunks`, with an optional deadline for all of them.
  MapResults(std::vector<Future<Chunk>> chunks, std::optional<Clock::time_point> deadline)
      : chunks_(std::move(chunks)), deadline_(deadline) {}
  /// Takes over the pending results.
  MapResults(MapResults&&) noexcept = default;
  /// Takes over the pending results (cancelling this one's).
  MapResults& operator=(MapResults&&) noexcept = default;
  MapResults(const MapResults&) = delete;
  MapResults& operator=(const MapResults&) = delete;
  ~MapResults() { cancel_rest(); }

  /// Cancels every call that has not started (as leaving Python's map
  /// generator early does).
  void cancel_rest() noexcept {
    for (std::size_t i = next_chunk_; i < chunks_.size(); ++i)
      if (chunks_[i].valid()) chunks_[i].cancel();
  }

  /// The next result, or nullopt at the end.
  std::optional<R> next() {
    while (!current_ || pos_ == current_->size()) {
      if (next_chunk_ == chunks_.size()) return std::nullopt;
      Future<Chunk> f = std::move(chunks_[next_chunk_]);
      ++next_chunk_;
      pos_ = 0;
      current_.reset();
      if (deadline_) {
        current_.emplace(std::move(f).result(*deadline_ - Clock::now()));
      } else {
        current_.emplace(std::move(f).result());
      }
    }
    return std::move((*current_)[pos_++]);
  }

  /// Input iterator over the results, in input order (blocks for each).
  class iterator {
   public:
    /// Input iterator.
    using iterator_category = std::input_iterator_tag;
    /// Distance type.
    using difference_type = std::ptrdiff_t;
    /// A result.
    using value_type = R;
    iterator() = default;
    /// Iterator at the first result of `m` (null: the end).
    explicit iterator(MapResults* m) : m_(m) { advance(); }
    /// The current result (rethrows its call's exception).
    R& operator*() const { return *value_; }
    /// Pointer access to the current result.
    R* operator->() const { return &*value_; }
    /// Moves to the next result (blocks for it; TimeoutError past the deadline).
    iterator& operator++() {
      advance();
      return *this;
    }
    /// Post-increment (as ++it).
    void operator++(int) { advance(); }
    /// True after the last result.
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return !it.value_; }

   private:
    void advance() { value_ = m_->next(); }
    MapResults* m_ = nullptr;
    mutable std::optional<R> value_;
  };

  /// Blocks for the first result.
  iterator begin() { return iterator(this); }
  /// The end sentinel.
  std::default_sentinel_t end() const noexcept { return {}; }

  /// Collects every remaining result.
  std::vector<R> to_vector() {
    std::vector<R> out;
    while (auto v = next()) out.push_back(std::move(*v));
    return out;
  }

 private:
  std::vector<Future<Chunk>> chunks_;
  std::optional<Clock::time_point> deadline_;
  std::size_t next_chunk_ = 0;
  std::optional<Chunk> current_;
  std::size_t pos_ = 0;
};

namespace detail {

template <class Pool, class F, class Range>
auto submit_map(Pool& pool, F&& fn, Range&& items, std::size_t chunksize,
                std::optional<std::chrono::steady_clock::time_point> deadline) {
  using Item = std::ranges::range_value_t<Range>;
  using Fn = std::decay_t<F>;
  using R = std::invoke_result_t<const Fn&, Item&>;
  static_assert(!std::is_void_v<R>, "map() needs a function that returns a value");
  if (chunksize == 0) throw std::invalid_argument("ThreadPool::map: chunksize must be >= 1");
  auto shared_fn = std::make_shared<const Fn>(std::forward<F>(fn));
  std::vector<Future<std::vector<R>>> chunks;
  if constexpr (std::ranges::sized_range<Range>)
    chunks.reserve((std::ranges::size(items) + chunksize - 1) / chunksize);
  auto submit_chunk = [&](std::vector<Item>&& chunk) {
    chunks.push_back(pool.submit([shared_fn, chunk = std::move(chunk)]() mutable {
      std::vector<R> out;
      out.reserve(chunk.size());
      for (auto& x : chunk) out.push_back(std::invoke(*shared_fn, x));
      return out;
    }));
  };
  try {
    std::vector<Item> chunk;
    for (auto&& x : items) {
      chunk.push_back(std::forward<decltype(x)>(x));
      if (chunk.size() == chunksize) {
        submit_chunk(std::move(chunk));
        chunk = {};
      }
    }
    if (!chunk.empty()) submit_chunk(std::move(chunk));
  } catch (...) {
    for (auto& c : chunks) c.cancel();
    throw;
  }
  return MapResults<R>(std::move(chunks), deadline);
}

}  // namespace detail
}  // namespace celeriac::exec
