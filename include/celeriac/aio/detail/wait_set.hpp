// WaitSet: suspends a task until a set of tasks reaches a condition (first
// done, first failure, all done), optionally with a timeout. The engine of
// gather, wait and TaskGroup.
#pragma once

#include <coroutine>
#include <cstddef>
#include <optional>
#include <vector>

#include "celeriac/aio/event_loop.hpp"

namespace celeriac::aio::detail {

class WaitSet : private Suspension, private TimerNode {
 public:
  enum Mode {
    kFirstCompleted,  // any task done
    kFirstException,  // any task failed with an exception (not cancelled), or all done
    kFirstFailure,    // any task failed or was cancelled, or all done
    kAllCompleted,    // all done
  };
  /// `cancel_children`: when the waiting task is cancelled, cancel every
  /// task of the set and keep waiting until all are done, then throw
  /// CancelledError (gather, TaskGroup). Otherwise just stop waiting (wait).
  WaitSet(std::vector<TaskCore*> cores, Mode mode, bool cancel_children,
          std::optional<Duration> timeout = std::nullopt)
      : cores_(std::move(cores)),
        mode_(mode),
        cancel_children_(cancel_children),
        timeout_(timeout) {}
  WaitSet(WaitSet&&) = delete;
  ~WaitSet() { disarm(); }

  bool await_ready() const noexcept { return satisfied(); }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    nodes_.resize(cores_.size());
    for (std::size_t i = 0; i < cores_.size(); ++i) {
      if (cores_[i]->done()) continue;
      nodes_[i].owner = this;
      nodes_[i].on_done = &on_child_done;
      cores_[i]->add_listener(&nodes_[i]);
    }
    if (timeout_) {
      deadline = (loop().time() + *timeout_).time_since_epoch().count();
      fire = &on_timer;
      loop().add_timer(this);
    }
    return true;
  }
  void await_resume() {
    disarm();
    end();
    if (cancel_seen_) throw CancelledError();
  }
  bool timed_out() const noexcept { return timed_out_; }

 private:
  struct Node : DoneListener {
    WaitSet* owner = nullptr;
  };
  bool satisfied() const noexcept {
    std::size_t done = 0;
    for (TaskCore* c : cores_) {
      if (!c->done()) continue;
      ++done;
      auto o = c->outcome();
      if (mode_ == kFirstCompleted) return true;
      if (mode_ == kFirstException && o == TaskCore::kError) return true;
      if (mode_ == kFirstFailure && o != TaskCore::kValue) return true;
    }
    return done == cores_.size();
  }
  static void on_child_done(DoneListener* l, TaskCore*) noexcept {
    WaitSet* self = static_cast<Node*>(l)->owner;
    if (self->satisfied()) self->wake();
  }
  static void on_timer(TimerNode* t) noexcept {
    auto* self = static_cast<WaitSet*>(t);
    self->timed_out_ = true;
    self->wake();
  }
  static bool on_cancel(Suspension& s) noexcept {
    auto& self = static_cast<WaitSet&>(s);
    if (!self.cancel_children_) {
      self.disarm();
      return true;
    }
    self.cancel_seen_ = true;
    self.mode_ = kAllCompleted;
    if (self.queued()) self.loop().remove_timer(&self);
    for (TaskCore* c : self.cores_) c->cancel();
    if (self.satisfied()) self.wake();
    return false;
  }
  void disarm() noexcept {
    for (auto& n : nodes_) n.unlink();
    if (queued()) loop().remove_timer(this);
  }

  std::vector<TaskCore*> cores_;
  std::vector<Node> nodes_;
  Mode mode_;
  bool cancel_children_;
  bool cancel_seen_ = false;
  bool timed_out_ = false;
  std::optional<Duration> timeout_;
};

}  // namespace celeriac::aio::detail
