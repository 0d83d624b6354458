// when_all / when_any: combine futures into one future, without blocking.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <tuple>
#include <vector>

#include "celeriac/futures/future.hpp"

namespace celeriac {

/// Finishes when every future has finished (with a value, an error or
/// cancellation); its value is the input futures, now all done. Never fails
/// itself: inspect each input.
template <class T>
Future<std::vector<Future<T>>> when_all(std::vector<Future<T>> futures) {
  using Result = std::vector<Future<T>>;
  auto out = futures::detail::make_state<Result>();
  if (futures.empty()) {
    out->try_set_value();
    return Future<Result>(out);
  }
  struct Join {
    Result futures;
    std::atomic<std::size_t> left;
  };
  auto join = std::make_shared<Join>();
  join->futures = std::move(futures);
  join->left.store(join->futures.size(), std::memory_order_relaxed);
  for (auto& f : join->futures) {
    f.add_done_callback([join, out] {
      if (join->left.fetch_sub(1, std::memory_order_acq_rel) == 1)
        out->try_set_value(std::move(join->futures));
    });
  }
  return Future<Result>(out);
}

/// Variadic form: a future of a tuple of the (done) input futures.
template <class... Ts>
Future<std::tuple<Future<Ts>...>> when_all(Future<Ts>... futures) {
  using Result = std::tuple<Future<Ts>...>;
  auto out = futures::detail::make_state<Result>();
  if constexpr (sizeof...(Ts) == 0) {
    out->try_set_value();
  } else {
    struct Join {
      Result futures;
      std::atomic<std::size_t> left{sizeof...(Ts)};
    };
    auto join = std::make_shared<Join>();
    join->futures = Result(futures...);
    auto arm = [&](auto& f) {
      f.add_done_callback([join, out] {
        if (join->left.fetch_sub(1, std::memory_order_acq_rel) == 1)
          out->try_set_value(std::move(join->futures));
      });
    };
    (arm(futures), ...);
  }
  return Future<Result>(out);
}

/// What when_any delivers: which future finished first, and all of them.
template <class T>
struct WhenAnyResult {
  /// Index in the input of the future that finished first.
  std::size_t index;
  /// All the input futures (the first one is done).
  std::vector<Future<T>> futures;
};

/// Finishes as soon as one input future is done. An empty input is an
/// error (InvalidStateError), since nothing could ever finish.
template <class T>
Future<WhenAnyResult<T>> when_any(std::vector<Future<T>> futures) {
  using Result = WhenAnyResult<T>;
  if (futures.empty())
    return make_exceptional_future<Result>(
        std::make_exception_ptr(InvalidStateError("when_any of no futures")));
  auto out = futures::detail::make_state<Result>();
  struct Race {
    std::vector<Future<T>> futures;
    std::atomic<bool> won{false};
  };
  auto race = std::make_shared<Race>();
  race->futures = std::move(futures);
  for (std::size_t i = 0; i < race->futures.size(); ++i) {
    race->futures[i].add_done_callback([race, out, i] {
      if (!race->won.exchange(true, std::memory_order_acq_rel))
        out->try_set_value(Result{i, race->futures});
    });
  }
  return Future<Result>(out);
}

}  // namespace celeriac
