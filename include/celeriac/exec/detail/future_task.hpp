// A task and the shared state of its future in one allocation.
#pragma once

#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "celeriac/exec/detail/task.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::exec::detail {

/// Marks a future running before its call; false when it was cancelled (or,
/// which an executor's own future never is, already done), so the call must
/// be skipped.
inline bool start_running(futures::detail::StateBase& state) noexcept {
  try {
    return state.set_running_or_notify_cancel();
  } catch (const InvalidStateError&) {
    return false;
  }
}

/// The future's state, the queue's task header and the callable, in one
/// block. References: one for the queue (dropped after running, cancelling or
/// failing), one for the Future handed to the caller.
template <class R, class F>
class FutureTask final : public futures::detail::SharedState<R>, public Task {
 public:
  template <class G>
  explicit FutureTask(G&& g) : Task(&invoke), fn_(std::forward<G>(g)) {}

  static FutureTask* create(F&& f) {
    if constexpr (block_class(sizeof(FutureTask)) >= 0 &&
                  alignof(FutureTask) <= alignof(std::max_align_t)) {
      return new_block_object<FutureTask>(std::move(f));
    } else {
      return new FutureTask(std::move(f));
    }
  }

 protected:
  void destroy() noexcept override {
    if constexpr (block_class(sizeof(FutureTask)) >= 0 &&
                  alignof(FutureTask) <= alignof(std::max_align_t)) {
      delete_block_object(this);
    } else {
      delete this;
    }
  }

 private:
  static void invoke(Task* t, TaskOp op, const std::exception_ptr* e) noexcept {
    auto* self = static_cast<FutureTask*>(t);
    switch (op) {
      case TaskOp::kRun: {
        if (start_running(*self)) futures::detail::fulfil(*self, std::move(self->fn_));
        break;
      }
      case TaskOp::kCancel:
        self->cancel();
        break;
      case TaskOp::kFail:
        self->try_set_exception(*e);
        break;
    }
    self->release();
  }

  F fn_;
};

}  // namespace celeriac::exec::detail
