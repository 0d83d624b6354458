// A pool whose concurrency changes while the worker runs (Celery's
// `control pool_grow` / `pool_shrink`): it wraps the -P pool's own
// implementation and adds more of it when grown, so threads and processes
// keep their behaviour (time limits, child replacement) unchanged.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "celeriac/tq/detail/execution_pool.hpp"

namespace celeriac::tq::detail {

/// An execution pool that can grow and shrink.
class ResizablePool : public ExecutionPool {
 public:
  /// Adds `n` slots (threads: threads; processes: child processes). Throws
  /// ConfigError naming the pool when it cannot change (solo, async).
  virtual void grow(std::size_t n) = 0;
  /// Removes `n` slots, keeping at least one; running bodies finish first.
  /// Throws ConfigError when the pool cannot change.
  virtual void shrink(std::size_t n) = 0;
};

/// The -P pool `kind` (see make_execution_pool), resizable when it is
/// "threads" or "processes"; solo and async refuse to grow or shrink.
std::unique_ptr<ResizablePool> make_resizable_pool(std::string_view kind, JobRunner& runner,
                                                   const PoolSettings& settings);

}  // namespace celeriac::tq::detail
