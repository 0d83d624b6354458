// Intrusive building blocks of the event loop: units of work in the run
// queue, doubly linked waiter lists, and the thread's loop context.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <typeinfo>
#include <utility>

namespace celeriac::aio {

class EventLoop;

namespace detail {

class TaskCore;

/// What the loop asks of a unit of work.
enum class WorkOp : std::uint8_t {
  kRun,       // run it (and free it if it owns itself)
  kDrop,      // the loop is closing: free it without running
  kDescribe,  // write a human-readable name into *out (debug warnings)
};

/// One unit of work in a run queue. Intrusive: whoever owns the memory
/// (a callback allocation, a suspended coroutine frame) embeds the node.
struct Work {
  using Fn = void (*)(Work*, WorkOp, std::string* out) noexcept;
  Work* next = nullptr;
  Fn fn = nullptr;
};

/// Single-threaded FIFO of Work nodes; never allocates.
class WorkQueue {
 public:
  WorkQueue() = default;
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  void push(Work* w) noexcept {
    w->next = nullptr;
    *tail_ = w;
    tail_ = &w->next;
  }
  Work* pop() noexcept {
    Work* w = head_;
    if (w) {
      head_ = w->next;
      if (!head_) tail_ = &head_;
    }
    return w;
  }

 private:
  Work* head_ = nullptr;
  Work** tail_ = &head_;
};

/// Reports an exception escaping a loop callback (defined in event_loop.cpp);
/// `type_name` is the callback's typeid name.
void report_callback_exception(std::exception_ptr e, const char* type_name) noexcept;
/// The readable name of a type from its typeid name (debug messages).
std::string demangled(const char* type_name);

/// A heap-allocated callback that frees itself after running.
template <class F>
struct CallbackWork final : Work {
  explicit CallbackWork(F&& f) : fn_(std::move(f)) { fn = &call; }
  explicit CallbackWork(const F& f) : fn_(f) { fn = &call; }
  static void call(Work* w, WorkOp op, std::string* out) noexcept {
    auto* self = static_cast<CallbackWork*>(w);
    switch (op) {
      case WorkOp::kRun:
        try {
          self->fn_();
        } catch (...) {
          report_callback_exception(std::current_exception(), typeid(F).name());
        }
        delete self;
        break;
      case WorkOp::kDrop:
        delete self;
        break;
      case WorkOp::kDescribe:
        *out = "callback " + demangled(typeid(F).name());
        break;
    }
  }
  F fn_;
};

/// Node of an intrusive circular doubly linked list (unlinked: prev == null).
struct ListNode {
  ListNode* prev = nullptr;
  ListNode* next = nullptr;
  bool linked() const noexcept { return prev != nullptr; }
  void unlink() noexcept {
    if (!prev) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

/// Intrusive FIFO list of ListNodes with a sentinel; not movable.
class List {
 public:
  List() noexcept { head_.prev = head_.next = &head_; }
  List(const List&) = delete;
  List& operator=(const List&) = delete;

  bool empty() const noexcept { return head_.next == &head_; }
  void push_back(ListNode* n) noexcept {
    n->prev = head_.prev;
    n->next = &head_;
    head_.prev->next = n;
    head_.prev = n;
  }
  void push_front(ListNode* n) noexcept {
    n->next = head_.next;
    n->prev = &head_;
    head_.next->prev = n;
    head_.next = n;
  }
  ListNode* front() const noexcept { return empty() ? nullptr : head_.next; }
  ListNode* pop_front() noexcept {
    ListNode* n = front();
    if (n) n->unlink();
    return n;
  }
  /// Calls f(node) for each node; f may unlink the node it is given.
  template <class F>
  void for_each(F&& f) {
    ListNode* n = head_.next;
    while (n != &head_) {
      ListNode* next = n->next;
      f(n);
      n = next;
    }
  }
  std::size_t size() const noexcept {
    std::size_t k = 0;
    for (ListNode* n = head_.next; n != &head_; n = n->next) ++k;
    return k;
  }

 private:
  ListNode head_;
};

/// What the current thread is running: its loop (while the loop runs) and
/// the task whose coroutine is executing (null in plain callbacks).
struct Context {
  EventLoop* loop = nullptr;
  TaskCore* task = nullptr;
};
inline constinit thread_local Context tls_context{};

}  // namespace detail
}  // namespace celeriac::aio
