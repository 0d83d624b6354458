// Task definitions: options, call options, and the typed binding of JSON
// args/kwargs to a C++ callable's parameters (by position or by name).
#pragma once

#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "celeriac/aio/task.hpp"
#include "celeriac/tq/context.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"

namespace celeriac::tq {

/// Per-task settings (Celery's task decorator options).
struct TaskOptions {
  /// Exceptions that retry the task automatically (see autoretry_on<E...>()).
  std::function<bool(const std::exception&)> autoretry_for;
  /// Retries allowed; nullopt = unlimited (Celery: None). Default 3.
  std::optional<int> max_retries = 3;
  /// Countdown of retry() without one, and of autoretry without backoff (s).
  double default_retry_delay = 180;
  /// Exponential backoff factor in seconds for autoretry (0 = off; Celery's
  /// retry_backoff=True is 1): countdown = min(backoff_max, factor * 2^retries).
  double retry_backoff = 0;
  /// Cap of the backoff countdown (s).
  double retry_backoff_max = 600;
  /// Full jitter: countdown = random in [0, countdown].
  bool retry_jitter = true;
  /// Ack after the task finished instead of when it starts (nullopt = worker default).
  std::optional<bool> acks_late;
  /// Never store this task's results.
  bool ignore_result = false;
  /// Store STARTED before running (Celery's track_started).
  bool track_started = false;
  /// Default queue for calls ("" = the app's default queue).
  std::string queue;
  /// Per-worker rate limit as Celery writes it ("10/s", "100/m", "1000/h",
  /// a number = per second; "" = none): a limited job waits off the pool.
  std::string rate_limit;
  /// The same, enforced across every worker on the broker (Redis: one
  /// atomic script per start; SQLite: a transaction; memory: this process).
  std::string global_rate_limit;
  /// Hard time limit in seconds (Celery's time_limit; nullopt: the worker's
  /// --time-limit): past it the task's result is stored as TimeLimitExceeded
  /// in every pool (see docs/tq-flow.md). The message's `timelimit`
  /// header wins over it.
  std::optional<double> time_limit;
  /// Soft time limit in seconds (nullopt: the worker's --soft-time-limit):
  /// past it the task is asked to stop with SoftTimeLimitExceeded.
  std::optional<double> soft_time_limit;
  /// Unique task (seconds; 0 = off): while a call with the same name and
  /// arguments is waiting or running (at most this long), another call
  /// returns the first's AsyncResult instead of sending (see unique.hpp).
  double unique_for = 0;
  /// What makes two calls the same for unique_for (default: the canonical
  /// JSON of args and kwargs).
  std::function<std::string(const Json& args, const Json& kwargs)> unique_key;
};

/// An autoretry_for predicate matching any of the exception types E...
template <class... E>
std::function<bool(const std::exception&)> autoretry_on() {
  return [](const std::exception& e) { return ((dynamic_cast<const E*>(&e) != nullptr) || ...); };
}

/// Publisher retry policy (Celery's retry_policy for apply_async): how often
/// to retry publishing when the broker fails.
struct RetryPolicy {
  /// Attempts before giving up.
  int max_retries = 3;
  /// Seconds before the first retry.
  double interval_start = 0;
  /// Seconds added for each further retry.
  double interval_step = 0.2;
  /// Longest wait between retries (s).
  double interval_max = 0.2;

  bool operator==(const RetryPolicy&) const = default;
};

/// Options of apply_async()/send_task().
struct CallOptions {
  std::optional<double> countdown;              ///< seconds from now -> headers.eta
  std::optional<TimePoint> eta;                 ///< absolute earliest run time
  std::optional<double> expires_in;             ///< seconds from now -> headers.expires
  std::optional<TimePoint> expires;             ///< absolute expiry
  std::string queue;                            ///< "" = task's or app's default queue
  std::optional<int> priority;                  ///< 0 (highest) .. 9, Redis meaning
  std::string task_id;                          ///< "" = new UUID4
  std::optional<bool> ignore_result;            ///< default: the task's setting
  OrderedJson headers = OrderedJson::object();  ///< custom headers (Context::headers())
  bool retry = true;                            ///< retry publishing on BrokerError
  RetryPolicy retry_policy;                     ///< how publishing is retried on BrokerError
  std::optional<double> time_limit;             ///< headers.timelimit[0]
  std::optional<double> soft_time_limit;        ///< headers.timelimit[1]
  std::optional<std::string> parent_id;         ///< headers.parent_id
  std::optional<std::string> root_id;           ///< headers.root_id
  std::optional<std::string> shadow;            ///< headers.shadow
  std::optional<double> unique_for;             ///< unique period (s); default: the task's

  /// Field by field (beat stores equal options once).
  bool operator==(const CallOptions&) const = default;
};

/// A registered task, type-erased: what the worker runs.
struct TaskDef {
  /// The registered name.
  std::string name;
  std::vector<std::string> params;  ///< parameter names, for kwargs
  /// Retries, acks, queue and result settings.
  TaskOptions options;
  /// Converts args/kwargs, calls the function, converts the result. Throws
  /// TaskError("TypeError", ...) for bad arguments, or what the task throws.
  std::function<Json(Context&, const Json& args, const Json& kwargs)> run;
  /// Coroutine tasks only (the function returns aio::Task<T>): the same as a
  /// coroutine, which the async pool awaits on its loop; `run` then runs it
  /// on a private loop. Null for plain tasks.
  std::function<aio::Task<Json>(Context&, const Json& args, const Json& kwargs)> run_async;
};

namespace detail {

std::string json_type_name(const Json& j);

template <class T>
std::string cpp_type_name() {
  using U = std::decay_t<T>;
  if constexpr (std::is_same_v<U, bool>)
    return "bool";
  else if constexpr (std::is_integral_v<U>)
    return "int";
  else if constexpr (std::is_floating_point_v<U>)
    return "float";
  else if constexpr (std::is_same_v<U, std::string>)
    return "str";
  else if constexpr (std::is_same_v<U, Json>)
    return "any";
  else
    return "a value convertible from JSON";
}

template <class T>
std::decay_t<T> convert_arg(const std::string& task, const std::string& param, const Json& j) {
  using U = std::decay_t<T>;
  auto fail = [&]() -> TaskError {
    return type_error(task + "() argument '" + param + "' must be " + cpp_type_name<U>() +
                      ", got " + json_type_name(j) + " " + dumps(j));
  };
  if constexpr (std::is_same_v<U, Json>) {
    return j;
  } else if constexpr (std::is_same_v<U, bool>) {
    if (!j.is_boolean()) throw fail();
    return j.get<bool>();
  } else if constexpr (std::is_integral_v<U>) {
    if (j.is_number_integer() || j.is_number_unsigned()) {
      if (j.is_number_unsigned()
              ? j.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<U>::max())
              : (j.get<std::int64_t>() < static_cast<std::int64_t>(std::numeric_limits<U>::min()) ||
                 (j.get<std::int64_t>() > 0 &&
                  static_cast<std::uint64_t>(j.get<std::int64_t>()) >
                      static_cast<std::uint64_t>(std::numeric_limits<U>::max()))))
        throw type_error(task + "() argument '" + param + "' is out of range: " + dumps(j));
      return j.get<U>();
    }
    if (j.is_number_float() && std::isfinite(j.get<double>()) &&
        std::floor(j.get<double>()) == j.get<double>()) {
      // Python accepts 3.0 for an int; the range check keeps the cast defined.
      double d = j.get<double>();
      if (d < static_cast<double>(std::numeric_limits<U>::min()) ||
          d >= std::ldexp(1.0, std::numeric_limits<U>::digits))
        throw type_error(task + "() argument '" + param + "' is out of range: " + dumps(j));
      return static_cast<U>(d);
    }
    throw fail();
  } else if constexpr (std::is_floating_point_v<U>) {
    if (!j.is_number()) throw fail();
    return j.get<U>();
  } else if constexpr (std::is_same_v<U, std::string>) {
    if (!j.is_string()) throw fail();
    return j.get<std::string>();
  } else {
    try {
      return j.get<U>();
    } catch (const nlohmann::json::exception& e) {
      throw type_error(task + "() argument '" + param + "' has the wrong shape: " + e.what() +
                       " (got " + dumps(j) + ")");
    }
  }
}

/// Resolves positional + keyword arguments to one JSON value per parameter,
/// with Python's TypeError messages.
std::vector<const Json*> bind_arguments(const std::string& task,
                                        const std::vector<std::string>& params, const Json& args,
                                        const Json& kwargs);

/// @cond INTERNAL (Doxygen cannot follow this recursive specialization)
template <class T>
struct FnTraits : FnTraits<decltype(&T::operator())> {};
template <class R, class... A>
struct FnTraits<R (*)(A...)> {
  using result = R;
  using args = std::tuple<A...>;
};
template <class R, class... A>
struct FnTraits<R(A...)> : FnTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct FnTraits<R (C::*)(A...) const> : FnTraits<R (*)(A...)> {};
template <class C, class R, class... A>
struct FnTraits<R (C::*)(A...)> : FnTraits<R (*)(A...)> {};
/// @endcond

template <class Tuple>
struct TakesContext : std::false_type {};
template <class First, class... Rest>
struct TakesContext<std::tuple<First, Rest...>> : std::is_same<First, Context&> {};

template <class Tuple>
struct DropFirst;
template <class First, class... Rest>
struct DropFirst<std::tuple<First, Rest...>> {
  using type = std::tuple<Rest...>;
};
template <>
struct DropFirst<std::tuple<>> {  // zero-parameter tasks (std::conditional_t names both branches)
  using type = std::tuple<>;
};

/// The typed task's parameter list (without a leading Context&).
template <class F>
using TaskArgs =
    std::conditional_t<TakesContext<typename FnTraits<std::decay_t<F>>::args>::value,
                       typename DropFirst<typename FnTraits<std::decay_t<F>>::args>::type,
                       typename FnTraits<std::decay_t<F>>::args>;

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

/// The bound JSON values converted to the parameter types `Args`
/// (TypeError naming the parameter on a mismatch).
template <class Args, std::size_t... I>
auto convert_all(const std::string& task, const std::vector<std::string>& params,
                 const std::vector<const Json*>& values, std::index_sequence<I...>) {
  return std::tuple<std::decay_t<std::tuple_element_t<I, Args>>...>{
      convert_arg<std::tuple_element_t<I, Args>>(task, params[I], *values[I])...};
}

/// Calls fn with (ctx, when it takes one, then) the converted arguments:
/// moved into a plain call, passed as lvalues to a coroutine (whose frame
/// outlives this call, so they live in the caller's frame).
template <bool Move, class F, class Tuple>
decltype(auto) call_with(F& fn, Context& ctx, Tuple& args) {
  auto invoke = [&](auto&&... a) -> decltype(auto) {
    if constexpr (TakesContext<typename FnTraits<std::decay_t<F>>::args>::value)
      return fn(ctx, std::forward<decltype(a)>(a)...);
    else
      return fn(std::forward<decltype(a)>(a)...);
  };
  if constexpr (Move)
    return std::apply(invoke, std::move(args));
  else
    return std::apply(invoke, args);
}

/// Awaits the coroutine made from `converted` (held in this frame, so a task
/// taking its parameters by reference sees them alive until it ends).
template <class F, class Tuple>
aio::Task<Json> await_converted(std::shared_ptr<F> fn, Context* ctx, Tuple converted) {
  using T = typename IsAioTask<decltype(call_with<false>(*fn, *ctx, converted))>::value_type;
  if constexpr (std::is_void_v<T>) {
    co_await call_with<false>(*fn, *ctx, converted);
    co_return nullptr;
  } else {
    co_return Json(co_await call_with<false>(*fn, *ctx, converted));
  }
}

/// Runs `task` to completion on a private event loop (aio::run).
Json run_blocking(aio::Task<Json> task);

/// Fills def.run from `fn` — and def.run_async too when fn is a coroutine
/// (returns aio::Task<T>); def.run then runs it on a private loop. Bad
/// arguments throw TaskError("TypeError") when the runner is called, before
/// any await. Throws ConfigError when def.params does not match fn.
template <class F>
void bind_task(TaskDef& def, F fn) {
  using Args = TaskArgs<F>;
  constexpr std::size_t n = std::tuple_size_v<Args>;
  if (def.params.size() != n)
    throw ConfigError("task '" + def.name + "' has " + std::to_string(n) + " parameter(s) but " +
                      std::to_string(def.params.size()) + " parameter name(s) were given");
  auto shared = std::make_shared<F>(std::move(fn));
  auto convert = [name = def.name, params = def.params](const Json& args, const Json& kwargs) {
    auto values = bind_arguments(name, params, args, kwargs);
    return convert_all<Args>(name, params, values, std::make_index_sequence<n>{});
  };
  if constexpr (IsAioTask<typename FnTraits<std::decay_t<F>>::result>::value) {
    def.run_async = [shared, convert](Context& ctx, const Json& args, const Json& kwargs) {
      return await_converted(shared, &ctx, convert(args, kwargs));
    };
    def.run = [run_async = def.run_async](Context& ctx, const Json& args, const Json& kwargs) {
      return run_blocking(run_async(ctx, args, kwargs));
    };
  } else {
    def.run = [shared, convert](Context& ctx, const Json& args, const Json& kwargs) -> Json {
      auto converted = convert(args, kwargs);
      if constexpr (std::is_void_v<decltype(call_with<true>(*shared, ctx, converted))>) {
        call_with<true>(*shared, ctx, converted);
        return nullptr;
      } else {
        return Json(call_with<true>(*shared, ctx, converted));
      }
    };
  }
}

}  // namespace detail

/// The Celery-style error for any C++ exception a task threw: TaskError keeps
/// its own type; std::invalid_argument/domain_error/length_error/range_error
/// -> ValueError, std::out_of_range -> IndexError, std::overflow_error ->
/// OverflowError, std::bad_alloc -> MemoryError, nlohmann type errors ->
/// TypeError, celeriac::TimeoutError -> TimeoutError, std::system_error ->
/// OSError, anything else -> RuntimeError (all exc_module "builtins").
TaskError to_task_error(std::exception_ptr e);

}  // namespace celeriac::tq
