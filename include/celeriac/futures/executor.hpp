// The Executor concept: anything that can run a callable later. Algorithms
// and continuations take an executor, not a particular pool.
#pragma once

#include <concepts>
#include <utility>

namespace celeriac {

namespace futures::detail {
struct ExecutorProbe {
  void operator()() const noexcept {}
};
}  // namespace futures::detail

/// An executor runs callables given to `post(fn)` (fire and forget; the
/// executor decides where and when). The thread pool, a strand, the event
/// loop and InlineExecutor are executors.
template <class E>
concept Executor = requires(E& ex, futures::detail::ExecutorProbe fn) {
  ex.post(std::move(fn));
};

}  // namespace celeriac
