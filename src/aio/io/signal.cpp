// add_signal_handler: signalfd + a daemon task per loop reading it.
#include "celeriac/aio/signal.hpp"

#include <map>
#include <memory>

#include "celeriac/aio/detail/io_signal.hpp"
#include "celeriac/aio/detail/io_wait.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {
namespace {

struct Registry {
  detail::SignalFd sfd;
  FdWatch watch;
  std::map<int, std::function<void()>> handlers;
};

// One registry per loop; loops live on their own threads, so thread_local.
thread_local std::map<EventLoop*, std::shared_ptr<Registry>> registries;

Task<void> read_signals(EventLoop* loop, std::shared_ptr<Registry> reg) {
  struct Forget {
    EventLoop* loop;
    Registry* reg;
    ~Forget() {
      auto it = registries.find(loop);
      if (it != registries.end() && it->second.get() == reg) registries.erase(it);
      for (auto& [sig, fn] : reg->handlers) reg->sfd.remove(sig);
      reg->watch.close();
    }
  } forget{loop, reg.get()};
  for (;;) {
    for (int sig : reg->sfd.read_pending()) {
      auto it = reg->handlers.find(sig);
      if (it != reg->handlers.end()) {
        auto fn = it->second;  // the handler may remove itself
        try {
          fn();
        } catch (const std::exception& e) {
          loop->warn(std::string("signal handler for signal ") + std::to_string(sig) +
                     " raised: " + e.what());
        }
      }
    }
    if (!co_await detail::ReadyOrClosed(reg->watch.readable())) break;
  }
}

}  // namespace

void add_signal_handler(EventLoop& loop, int sig, std::function<void()> handler) {
  if (!loop.in_loop_thread())
    throw InvalidStateError("add_signal_handler: call it on the running loop's thread");
  if (!handler) throw std::invalid_argument("add_signal_handler: empty handler");
  auto& reg = registries[&loop];
  if (!reg) reg = std::make_shared<Registry>();
  reg->sfd.add(sig);
  if (!reg->watch.valid()) {
    reg->watch = FdWatch(loop, reg->sfd.fd());
    reg->watch.set_daemon(true);  // waiting for signals must not stop virtual time
    // No handle kept in the registry: the task holds the registry, and a
    // handle in it would be a cycle keeping both alive (ASan: leak).
    loop.spawn(read_signals(&loop, reg), "signal handlers");
  }
  reg->handlers[sig] = std::move(handler);
}

void add_signal_handler(int sig, std::function<void()> handler) {
  add_signal_handler(EventLoop::current(), sig, std::move(handler));
}

bool remove_signal_handler(EventLoop& loop, int sig) {
  auto it = registries.find(&loop);
  if (it == registries.end()) return false;
  auto reg = it->second;
  if (reg->handlers.erase(sig) == 0) return false;
  reg->sfd.remove(sig);
  if (reg->handlers.empty()) {
    reg->watch.close();  // the reader task ends and forgets the registry
    registries.erase(it);
  }
  return true;
}

bool remove_signal_handler(int sig) { return remove_signal_handler(EventLoop::current(), sig); }

}  // namespace celeriac::aio
