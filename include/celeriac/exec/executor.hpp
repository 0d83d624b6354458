// The Executor concept (from the futures layer) and InlineExecutor.
#pragma once

#include <functional>
#include <type_traits>
#include <utility>

#include "celeriac/futures/executor.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::exec {

/// Anything with post(callable): ThreadPool, Strand, InlineExecutor, the
/// event loop.
using celeriac::Executor;

/// Runs what it is given at once, on the calling thread. Useful for tests,
/// for continuations that are cheap, and to run parallel algorithms serially.
class InlineExecutor {
 public:
  /// Calls `fn()` now; its exception propagates to the caller.
  template <class F>
  void post(F&& fn) {
    std::invoke(std::forward<F>(fn));
  }
  /// Calls `fn(args...)` now and returns a finished Future holding its
  /// result or exception.
  template <class F, class... Args>
  auto submit(F&& fn, Args&&... args) {
    using R = std::invoke_result_t<F, Args...>;
    auto state = futures::detail::make_state<R>();
    state->set_running_or_notify_cancel();
    futures::detail::fulfil(*state, std::forward<F>(fn), std::forward<Args>(args)...);
    return Future<R>(std::move(state));
  }
};

static_assert(Executor<InlineExecutor>);

}  // namespace celeriac::exec
