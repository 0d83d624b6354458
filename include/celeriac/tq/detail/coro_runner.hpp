// Coroutine tasks: binding JSON args/kwargs to a callable that returns
// celeriac::aio::Task<R>, so I/O-bound tasks run many at once on the async
// pool's event loop (and on a private loop per call in the other pools).
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "celeriac/aio/task.hpp"
#include "celeriac/tq/context.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"

namespace celeriac::tq::detail {

template <class R>
struct IsAioTask : std::false_type {};
template <class T>
struct IsAioTask<aio::Task<T>> : std::true_type {
  using value_type = T;
};

/// The value a task delivers: R, or T for a coroutine returning aio::Task<T>.
template <class R>
struct TaskValue {
  using type = R;
};
template <class T>
struct TaskValue<aio::Task<T>> {
  using type = T;
};

using AsyncRunner = std::function<aio::Task<Json>(Context&, const Json&, const Json&)>;

/// Awaits the coroutine made from `converted` (held in this frame, so a
/// task taking its parameters by reference sees them alive until it ends).
template <bool WithContext, class F, class Tuple>
aio::Task<Json> await_bound(std::shared_ptr<F> fn, Context* ctx, Tuple converted) {
  auto call = [&]() {
    if constexpr (WithContext)
      return std::apply([&](auto&... a) { return (*fn)(*ctx, a...); }, converted);
    else
      return std::apply([&](auto&... a) { return (*fn)(a...); }, converted);
  };
  using T = typename IsAioTask<decltype(call())>::value_type;
  if constexpr (std::is_void_v<T>) {
    co_await call();
    co_return nullptr;
  } else {
    co_return Json(co_await call());
  }
}

template <bool WithContext, class F, class... A, std::size_t... I>
aio::Task<Json> start_bound(const std::shared_ptr<F>& fn, Context& ctx, const std::string& task,
                            const std::vector<std::string>& params,
                            const std::vector<const Json*>& values, std::index_sequence<I...>,
                            std::tuple<A...>*) {
  std::tuple<std::decay_t<A>...> converted{convert_arg<A>(task, params[I], *values[I])...};
  return await_bound<WithContext>(fn, &ctx, std::move(converted));
}

/// The coroutine runner of `fn` (which returns aio::Task<T>). Bad arguments
/// throw TaskError("TypeError") when the runner is called, before any await.
template <class F>
AsyncRunner make_async_runner(std::string name, std::vector<std::string> params, F fn) {
  using Args = TaskArgs<F>;
  constexpr std::size_t n = std::tuple_size_v<Args>;
  constexpr bool with_context = TakesContext<typename FnTraits<std::decay_t<F>>::args>::value;
  if (params.size() != n)
    throw ConfigError("task '" + name + "' has " + std::to_string(n) + " parameter(s) but " +
                      std::to_string(params.size()) + " parameter name(s) were given");
  auto shared = std::make_shared<F>(std::move(fn));
  return [name = std::move(name), params = std::move(params), shared](
             Context& ctx, const Json& args, const Json& kwargs) {
    auto values = bind_arguments(name, params, args, kwargs);
    return start_bound<with_context>(shared, ctx, name, params, values,
                                     std::make_index_sequence<n>{}, static_cast<Args*>(nullptr));
  };
}

/// The blocking runner of a coroutine task: runs it on a private event loop
/// on the calling thread (threads, solo and processes pools).
inline std::function<Json(Context&, const Json&, const Json&)> blocking_runner(AsyncRunner async) {
  return [async = std::move(async)](Context& ctx, const Json& args, const Json& kwargs) {
    return aio::run(async(ctx, args, kwargs));
  };
}

}  // namespace celeriac::tq::detail
