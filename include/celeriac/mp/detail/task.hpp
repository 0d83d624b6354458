// How a callable and its arguments are named so that a child process runs the
// same code: the child is a fork of the fork server, itself a fork of this
// program, so the address of a function (and of the invoker instantiated for
// its argument types) means the same thing there.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "celeriac/mp/serialize.hpp"

namespace celeriac::mp::detail {

/// Runs a task in the child: decodes the arguments, calls, packs the result.
using InvokeFn = void (*)(std::uint64_t fn_word, std::string_view args, msgpack::sbuffer& out);
/// Describes the callable for error messages ("crash_task", "main::{lambda()#1}").
using DescribeFn = std::string (*)(std::uint64_t fn_word);

template <class F>
inline constexpr bool is_function_pointer_v =
    std::is_pointer_v<F>&& std::is_function_v<std::remove_pointer_t<F>>;

/// Callables that resolve identically in a child: function pointers and
/// captureless lambdas (empty, default-constructible class types).
template <class F>
inline constexpr bool is_sendable_callable_v = is_function_pointer_v<F> ||
                                               (std::is_class_v<F> && std::is_empty_v<F> &&
                                                std::is_default_constructible_v<F> &&
                                                std::is_trivially_copyable_v<F>);

template <class F>
std::uint64_t fn_word(const F& f) {
  if constexpr (is_function_pointer_v<F>) {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(f));
  } else {
    return 0;
  }
}

template <class F>
F fn_from_word(std::uint64_t w) {
  if constexpr (is_function_pointer_v<F>) {
    return reinterpret_cast<F>(static_cast<std::uintptr_t>(w));
  } else {
    return F{};
  }
}

/// Demangled name of a type, or the symbol at an address.
std::string demangle(const char* mangled);
std::string symbol_name(std::uint64_t address);

template <class F>
std::string describe(std::uint64_t w) {
  if constexpr (is_function_pointer_v<F>) {
    return symbol_name(w);
  } else {
    return demangle(typeid(F).name());
  }
}

/// Checks at compile time everything about a (callable, arguments) pair that
/// can be checked; yields the result type.
template <class F, class... A>
constexpr bool check_task() {
  static_assert(is_sendable_callable_v<F>,
                "celeriac::mp: the callable cannot be sent to another process. Pass a function "
                "pointer or a captureless lambda, and give the values it needs as arguments "
                "(a capturing lambda or std::function holds state that does not exist in the "
                "child).");
  static_assert(std::is_invocable_v<F&, A&&...>,
                "celeriac::mp: the callable cannot be called with these arguments (the child "
                "calls it with the decoded values as rvalues).");
  static_assert((Serializable<A> && ...),
                "celeriac::mp: an argument type is not serializable. Use standard types, "
                "MSGPACK_DEFINE in your struct, or specialize celeriac::mp::serializable<T> "
                "(see celeriac/mp/serialize.hpp); pass large arrays as mp::SharedArray<T>.");
  using R = std::invoke_result_t<F&, A&&...>;
  static_assert(
      std::is_void_v<R> || Serializable<std::decay_t<R>>,
      "celeriac::mp: the result type is not serializable (see celeriac/mp/serialize.hpp).");
  static_assert(!std::is_reference_v<R> || std::is_void_v<R>,
                "celeriac::mp: a task must return a value, not a reference.");
  return true;
}

template <class F, class... A>
void invoke_task(std::uint64_t w, std::string_view args, msgpack::sbuffer& out) {
  F f = fn_from_word<F>(w);
  auto tuple = unpack<std::tuple<A...>>(args);
  using R = std::invoke_result_t<F&, A&&...>;
  if constexpr (std::is_void_v<R>) {
    std::apply(f, std::move(tuple));
    msgpack::pack(out, msgpack::type::nil_t());
  } else {
    R r = std::apply(f, std::move(tuple));
    msgpack::pack(out, r);
  }
}

/// map(): one task runs `fn` on each element of a chunk.
template <class F, class A>
void invoke_chunk(std::uint64_t w, std::string_view args, msgpack::sbuffer& out) {
  F f = fn_from_word<F>(w);
  auto tuple = unpack<std::tuple<std::vector<A>>>(args);
  auto& items = std::get<0>(tuple);
  using R = std::decay_t<std::invoke_result_t<F&, A&&>>;
  std::vector<R> results;
  results.reserve(items.size());
  for (auto& item : items) results.push_back(f(std::move(item)));
  msgpack::pack(out, results);
}

/// A task ready to be sent: who runs it, and its packed arguments.
struct TaskCall {
  InvokeFn invoke = nullptr;
  DescribeFn describe = nullptr;
  std::uint64_t fn = 0;
  msgpack::sbuffer args{64};  // msgpack tuple (kept as packed: no copy)
  std::vector<int> fds;       // descriptors the arguments carry (owned)
  std::string_view packed_args() const noexcept { return {args.data(), args.size()}; }
};

template <class F, class... Args>
TaskCall make_call(InvokeFn invoke, const F& f, const Args&... args) {
  TaskCall call;
  call.invoke = invoke;
  call.describe = &describe<F>;
  call.fn = fn_word(f);
  {
    FdScope scope(&call.fds, nullptr);
    try {
      msgpack::pack(call.args, std::forward_as_tuple(args...));
    } catch (...) {
      close_fds(call.fds);
      throw;
    }
  }
  return call;
}

}  // namespace celeriac::mp::detail
