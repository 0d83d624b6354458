// TaskGroup with asyncio 3.11 semantics: the first failure cancels the
// siblings (and interrupts the body of the group); join() waits for every
// child and reports all errors together in an ExceptionGroup.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "celeriac/aio/detail/awaitable.hpp"
#include "celeriac/aio/detail/waiter.hpp"
#include "celeriac/aio/errors.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// A group of tasks that live and die together (asyncio.TaskGroup).
///
///   co_await with_task_group([&](TaskGroup& g) -> Task<void> {
///     g.spawn(fetch(a));
///     g.spawn(fetch(b));
///     co_return;
///   });
///
/// or by hand: `TaskGroup g; g.spawn(...); co_await g.join();`. When a child
/// fails with an exception (not CancelledError), the other children are
/// cancelled and so is the task that owns the group (unless it is already
/// in join()); join() then throws ExceptionGroup with every error, in the
/// order they happened. If the owning task is cancelled while in join(), the
/// children are cancelled, awaited, and CancelledError is rethrown. Create,
/// use and join the group inside one task, on the loop thread.
class TaskGroup {
 public:
  TaskGroup() : parent_(detail::current_task()) {}
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  /// A group destroyed before join() finished cancels its children.
  ~TaskGroup() {
    while (detail::ListNode* n = children_.pop_front()) {
      Child* c = Child::from_link(n);
      c->listener.unlink();
      c->core->cancel();
      c->core->release();
      delete c;
    }
  }

  /// Starts a child task (Task, TaskHandle or any awaitable). Error after
  /// join() finished or while the group is shutting down.
  template <class A>
  TaskHandle<detail::result_of_t<A>> spawn(A aw, std::string name = {}) {
    if (joined_) throw Error("aio::TaskGroup: spawn() after join() finished");
    if (aborting_) throw Error("aio::TaskGroup: spawn() while the group is shutting down");
    TaskHandle<detail::result_of_t<A>> h;
    if constexpr (detail::IsTask<A>::value) {
      h = EventLoop::current().spawn(std::move(aw), std::move(name));
    } else {
      h = detail::to_handle(std::move(aw));
    }
    auto* c = new Child;
    c->group = this;
    c->core = h.core();
    c->core->add_ref();
    c->listener.on_done = &on_child_done;
    children_.push_back(&c->link);
    ++active_;
    c->core->add_listener(&c->listener);
    return h;
  }
  /// Same as spawn() (asyncio's name).
  template <class A>
  auto create_task(A aw, std::string name = {}) {
    return spawn(std::move(aw), std::move(name));
  }

  /// Waits for every child (asyncio's __aexit__). `body_error` is an
  /// exception that escaped the group's body, if any: it cancels the
  /// children and joins the reported errors.
  Task<void> join(std::exception_ptr body_error = nullptr) {
    joining_ = true;
    bool propagate_cancel = false;
    if (body_error) {
      if (is_cancelled(body_error)) {
        if (!consume_own_cancel()) propagate_cancel = true;
      } else {
        errors_.insert(errors_.begin(), body_error);
      }
      abort();
    }
    while (active_ > 0) {
      try {
        co_await detail::ListWaiter(join_waiters_);
      } catch (const CancelledError&) {
        if (!consume_own_cancel()) propagate_cancel = true;
        abort();
      }
    }
    joined_ = true;
    if (parent_cancel_requested_ && parent_) {
      parent_cancel_requested_ = false;
      parent_->uncancel();
    }
    if (!errors_.empty())
      throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
    if (propagate_cancel) throw CancelledError();
  }

  /// Number of children still running.
  std::size_t size() const noexcept { return active_; }

  /// Called by with_task_group when the body throws CancelledError: true if
  /// it was the group's own cancellation of its owner (then it is swallowed).
  bool consume_own_cancel() noexcept {
    if (own_cancel_pending_) {
      own_cancel_pending_ = false;
      return true;
    }
    return false;
  }

 private:
  struct Child;
  struct Listener : detail::DoneListener {
    Child* owner = nullptr;
  };
  struct Link : detail::ListNode {
    Child* owner = nullptr;
  };
  struct Child {
    Child() {
      listener.owner = this;
      link.owner = this;
    }
    Listener listener;
    Link link;
    TaskGroup* group = nullptr;
    detail::TaskCore* core = nullptr;
    static Child* from_link(detail::ListNode* n) { return static_cast<Link*>(n)->owner; }
    static Child* from_listener(detail::DoneListener* l) {
      return static_cast<Listener*>(l)->owner;
    }
  };

  static bool is_cancelled(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const CancelledError&) {
      return true;
    } catch (...) {
      return false;
    }
  }

  static void on_child_done(detail::DoneListener* l, detail::TaskCore* core) noexcept {
    Child* c = Child::from_listener(l);
    TaskGroup* g = c->group;
    c->link.unlink();
    --g->active_;
    if (core->outcome() == detail::TaskCore::kError) {
      core->mark_retrieved();
      g->errors_.push_back(core->error());
      g->abort();
    }
    core->release();
    delete c;
    if (g->active_ == 0) detail::ListWaiter::wake_all(g->join_waiters_);
  }

  void abort() noexcept {
    if (!aborting_) {
      aborting_ = true;
      if (parent_ && !joining_ && !parent_->done()) {
        parent_->cancel();
        parent_cancel_requested_ = true;
        own_cancel_pending_ = true;
      }
    }
    children_.for_each([](detail::ListNode* n) { Child::from_link(n)->core->cancel(); });
  }

  detail::TaskCore* parent_;
  detail::List children_;
  detail::List join_waiters_;
  std::vector<std::exception_ptr> errors_;
  std::size_t active_ = 0;
  bool joining_ = false;
  bool joined_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
  bool own_cancel_pending_ = false;
};

/// Runs body(group) and then joins the group (asyncio's
/// `async with TaskGroup() as tg:`); exceptions as TaskGroup::join.
template <class F>
Task<void> with_task_group(F body) {
  TaskGroup g;
  std::exception_ptr body_error;
  try {
    co_await body(g);
  } catch (...) {
    body_error = std::current_exception();
  }
  co_await g.join(body_error);
}

}  // namespace celeriac::aio
