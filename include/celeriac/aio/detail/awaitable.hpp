// Traits over awaitables, and turning any awaitable into a task.
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

#include "celeriac/aio/task.hpp"

namespace celeriac::aio::detail {

template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { std::forward<A>(a).operator co_await(); }) {
    return std::forward<A>(a).operator co_await();
  } else if constexpr (requires { operator co_await(std::forward<A>(a)); }) {
    return operator co_await(std::forward<A>(a));
  } else {
    return std::forward<A>(a);
  }
}

/// What `co_await a` yields.
template <class A>
using await_result_t = decltype(get_awaiter(std::declval<A>()).await_resume());

template <class A>
struct IsTask : std::false_type {};
template <class T>
struct IsTask<Task<T>> : std::true_type {};
template <class A>
struct IsTaskHandle : std::false_type {};
template <class T>
struct IsTaskHandle<TaskHandle<T>> : std::true_type {};

template <class A>
Task<await_result_t<A>> as_task(A a) {
  co_return co_await std::move(a);
}

/// The value type a combinator reports for an awaitable.
template <class A>
struct ResultOf {
  using type = await_result_t<A>;
};
template <class T>
struct ResultOf<Task<T>> {
  using type = T;
};
template <class T>
struct ResultOf<TaskHandle<T>> {
  using type = T;
};
template <class A>
using result_of_t = typename ResultOf<std::decay_t<A>>::type;

/// A task running `a` on the current loop: a TaskHandle as is, a Task
/// spawned, any other awaitable wrapped in a task and spawned.
template <class A>
TaskHandle<result_of_t<A>> to_handle(A&& a) {
  using D = std::decay_t<A>;
  if constexpr (IsTaskHandle<D>::value) {
    return std::forward<A>(a);
  } else if constexpr (IsTask<D>::value) {
    return spawn(std::forward<A>(a));
  } else {
    return spawn(as_task(D(std::forward<A>(a))));
  }
}

/// T, with void as std::monostate (for tuples and vectors of results).
template <class T>
using Value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

}  // namespace celeriac::aio::detail
