// gather: run awaitables concurrently and collect their results in order
// (asyncio.gather), with a return_exceptions form.
#pragma once

#include <exception>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "celeriac/aio/detail/awaitable.hpp"
#include "celeriac/aio/detail/wait_set.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// The outcome of one awaitable in gather(return_exceptions, ...): a value
/// or an exception (CancelledError for a cancelled task).
template <class T>
struct Outcome {
  /// The value, when the awaitable succeeded.
  std::optional<detail::Value<T>> value;
  /// The exception, when it failed.
  std::exception_ptr error;
  /// Whether the awaitable succeeded.
  bool ok() const noexcept { return !error; }
  /// The value, or the error rethrown.
  detail::Value<T>& get() {
    if (error) std::rethrow_exception(error);
    return *value;
  }
};

/// Tag selecting asyncio's gather(..., return_exceptions=True).
struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

namespace detail {

template <class T>
Value<T> value_of(const TaskHandle<T>& h) {
  if constexpr (std::is_void_v<T>) {
    h.result();
    return {};
  } else if constexpr (std::is_copy_constructible_v<T>) {
    return h.result();
  } else {
    return TaskHandle<T>(h).take_result();
  }
}

template <class T>
Outcome<T> outcome_of(const TaskHandle<T>& h) {
  Outcome<T> o;
  try {
    o.value.emplace(value_of(h));
  } catch (...) {
    o.error = std::current_exception();
  }
  return o;
}

/// The first failure among `cores` in completion order is what asyncio
/// reports; we approximate completion order by the first failed in the list
/// that is done (all that are done were seen by the same tick).
inline void rethrow_first_failure(const std::vector<TaskCore*>& cores) {
  for (TaskCore* c : cores) {
    if (!c->done()) continue;
    if (c->outcome() == TaskCore::kError) {
      c->mark_retrieved();
      std::rethrow_exception(c->error());
    }
    if (c->outcome() == TaskCore::kCancelled)
      throw CancelledError("aio::gather: a task was cancelled");
  }
}

template <class T>
Task<std::vector<Value<T>>> gather_handles(std::vector<TaskHandle<T>> hs) {
  std::vector<TaskCore*> cores;
  cores.reserve(hs.size());
  for (auto& h : hs) cores.push_back(h.core());
  co_await WaitSet(cores, WaitSet::kFirstFailure, true);
  rethrow_first_failure(cores);
  std::vector<Value<T>> out;
  out.reserve(hs.size());
  for (auto& h : hs) out.push_back(value_of(h));
  co_return out;
}

template <class T>
Task<std::vector<Outcome<T>>> gather_handles_settled(std::vector<TaskHandle<T>> hs) {
  std::vector<TaskCore*> cores;
  for (auto& h : hs) cores.push_back(h.core());
  co_await WaitSet(cores, WaitSet::kAllCompleted, true);
  std::vector<Outcome<T>> out;
  for (auto& h : hs) out.push_back(outcome_of(h));
  co_return out;
}

template <class... Hs>
Task<std::tuple<Value<typename Hs::value_type>...>> gather_tuple(Hs... hs) {
  std::vector<TaskCore*> cores{hs.core()...};
  co_await WaitSet(cores, WaitSet::kFirstFailure, true);
  rethrow_first_failure(cores);
  co_return std::tuple<Value<typename Hs::value_type>...>(value_of(hs)...);
}

template <class... Hs>
Task<std::tuple<Outcome<typename Hs::value_type>...>> gather_tuple_settled(Hs... hs) {
  std::vector<TaskCore*> cores{hs.core()...};
  co_await WaitSet(cores, WaitSet::kAllCompleted, true);
  co_return std::tuple<Outcome<typename Hs::value_type>...>(outcome_of(hs)...);
}

template <class Range>
auto handles_of(Range&& r) {
  using Elem = std::decay_t<decltype(*std::begin(r))>;
  std::vector<TaskHandle<result_of_t<Elem>>> hs;
  for (auto&& a : r) hs.push_back(to_handle(std::move(a)));
  return hs;
}

template <class Range>
auto gather_range(Range r)
    -> Task<std::vector<Value<result_of_t<std::decay_t<decltype(*std::begin(r))>>>>> {
  co_return co_await gather_handles(handles_of(r));
}

template <class Range>
auto gather_range_settled(Range r)
    -> Task<std::vector<Outcome<result_of_t<std::decay_t<decltype(*std::begin(r))>>>>> {
  co_return co_await gather_handles_settled(handles_of(r));
}

template <class... As>
auto gather_variadic(As... as) -> Task<std::tuple<Value<result_of_t<As>>...>> {
  co_return co_await gather_tuple(to_handle(std::move(as))...);
}

template <class... As>
auto gather_variadic_settled(As... as) -> Task<std::tuple<Outcome<result_of_t<As>>...>> {
  co_return co_await gather_tuple_settled(to_handle(std::move(as))...);
}

template <class R>
concept AwaitableRange = requires(R& r) {
  std::begin(r);
  std::end(r);
};

}  // namespace detail

/// Runs the awaitables of a range (vector of Task<T>, of TaskHandle<T>...)
/// concurrently; returns their results in order (void results as
/// std::monostate). The first failure is rethrown at once (the others keep
/// running, as in asyncio); cancelling the caller cancels them all.
template <detail::AwaitableRange R>
auto gather(R tasks) {
  return detail::gather_range(std::move(tasks));
}

/// As gather(range), but never throws for a child: every result is an
/// Outcome holding a value or an exception (return_exceptions=True).
template <detail::AwaitableRange R>
auto gather(ReturnExceptions, R tasks) {
  return detail::gather_range_settled(std::move(tasks));
}

/// Variadic gather: returns a tuple of results (void as std::monostate).
template <class A, class... As>
requires(!detail::AwaitableRange<A> &&
         !std::is_same_v<std::decay_t<A>, ReturnExceptions>) auto gather(A a, As... as) {
  return detail::gather_variadic(std::move(a), std::move(as)...);
}

/// Variadic gather with return_exceptions: a tuple of Outcomes.
template <class A, class... As>
requires(!detail::AwaitableRange<A>) auto gather(ReturnExceptions, A a, As... as) {
  return detail::gather_variadic_settled(std::move(a), std::move(as)...);
}

}  // namespace celeriac::aio
