// Internals of the thread pool: the intrusive task header every heap task
// starts with, and a per-thread cache of fixed-size blocks so that creating a
// task costs no malloc in steady state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace celeriac::exec::detail {

/// What a queue asks of a task it holds.
enum class TaskOp : std::uint8_t {
  kRun,     // run it, then free it
  kCancel,  // free it without running (shutdown with cancel_futures)
  kFail,    // free it without running, failing its future with the given error
};

/// Header of a heap-allocated task. `fn` runs, cancels or fails it and always
/// frees it; `next` links it in the overflow list.
struct Task {
  using Fn = void (*)(Task*, TaskOp, const std::exception_ptr*) noexcept;
  explicit Task(Fn f) noexcept : fn(f) {}
  Fn fn;
  Task* next = nullptr;

  void run_task() noexcept { fn(this, TaskOp::kRun, nullptr); }
  void cancel_task() noexcept { fn(this, TaskOp::kCancel, nullptr); }
  void fail_task(const std::exception_ptr& e) noexcept { fn(this, TaskOp::kFail, &e); }
};

/// Reports an exception that escaped a fire-and-forget callable (nobody else
/// can see it); the pool keeps running.
inline void report_escaped_exception(const char* where) noexcept {
  try {
    throw;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "celeriac: exception escaped a callable posted to %s: %s\n", where,
                 e.what());
  } catch (...) {
    std::fprintf(stderr, "celeriac: unknown exception escaped a callable posted to %s\n", where);
  }
}

// ---- block cache ---------------------------------------------------------

inline constexpr std::size_t kBlockClasses = 3;
inline constexpr std::size_t kBlockSize[kBlockClasses] = {64, 128, 256};
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr std::uint32_t kBlockCacheCap = 0;  // let the sanitizer see every free
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr std::uint32_t kBlockCacheCap = 0;
#else
inline constexpr std::uint32_t kBlockCacheCap = 4096;
#endif
#else
inline constexpr std::uint32_t kBlockCacheCap = 4096;
#endif

/// Free blocks kept by one thread, by size class. Trivially destructible so
/// that access is a plain TLS load; the blocks are returned to the system at
/// thread exit by a guard registered on first use (src/exec/block_cache.cpp).
struct BlockCache {
  void* head[kBlockClasses];
  std::uint32_t count[kBlockClasses];
  bool guarded;
};
inline thread_local constinit BlockCache tl_block_cache{};

/// Registers the thread-exit guard that frees this thread's cached blocks.
void guard_block_cache() noexcept;

constexpr int block_class(std::size_t n) noexcept {
  return n <= 64 ? 0 : n <= 128 ? 1 : n <= 256 ? 2 : -1;
}

/// Memory for an object of `n` bytes (alignment ≤ 16).
inline void* alloc_block(std::size_t n) {
  const int c = block_class(n);
  if (c < 0) return ::operator new(n);
  BlockCache& bc = tl_block_cache;
  if (void* p = bc.head[c]) {
    bc.head[c] = *static_cast<void**>(p);
    --bc.count[c];
    return p;
  }
  return ::operator new(kBlockSize[c]);
}

/// Gives back memory from alloc_block(n); any thread may free any block.
inline void free_block(void* p, std::size_t n) noexcept {
  const int c = block_class(n);
  if (c < 0) {
    ::operator delete(p);
    return;
  }
  BlockCache& bc = tl_block_cache;
  if (bc.count[c] >= kBlockCacheCap) {
    ::operator delete(p);
    return;
  }
  if (!bc.guarded) guard_block_cache();
  *static_cast<void**>(p) = bc.head[c];
  bc.head[c] = p;
  ++bc.count[c];
}

/// Creates a T in a cached block.
template <class T, class... Args>
T* new_block_object(Args&&... args) {
  static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned task type");
  void* p = alloc_block(sizeof(T));
  try {
    return ::new (p) T(std::forward<Args>(args)...);
  } catch (...) {
    free_block(p, sizeof(T));
    throw;
  }
}

template <class T>
void delete_block_object(T* t) noexcept {
  t->~T();
  free_block(t, sizeof(T));
}

/// A fire-and-forget callable as a heap task.
template <class F>
struct PostTask final : Task {
  template <class G>
  explicit PostTask(G&& g) : Task(&invoke), fn(std::forward<G>(g)) {}
  F fn;
  static void invoke(Task* t, TaskOp op, const std::exception_ptr*) noexcept {
    auto* self = static_cast<PostTask*>(t);
    if (op == TaskOp::kRun) {
      try {
        self->fn();
      } catch (...) {
        report_escaped_exception("a ThreadPool");
      }
    }
    delete_block_object(self);
  }
};

}  // namespace celeriac::exec::detail
