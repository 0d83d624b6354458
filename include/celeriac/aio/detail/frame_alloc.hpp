// Recycling allocator for coroutine frames: a thread-local free list per
// 32-byte size class, so creating and finishing a task costs no malloc in the
// steady state. Blocks freed on another thread join that thread's lists.
// Under AddressSanitizer it forwards to operator new/delete so that
// use-after-free of a frame is still caught.
#pragma once

#include <cstddef>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define CELERIAC_AIO_NO_FRAME_POOL 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CELERIAC_AIO_NO_FRAME_POOL 1
#endif
#endif

namespace celeriac::aio::detail {

class FramePool {
 public:
  static constexpr std::size_t kGranule = 16;
  static constexpr std::size_t kClasses = 64;      // blocks up to 1 KiB are pooled
  static constexpr std::size_t kMaxCached = 4096;  // blocks kept per class

  void* allocate(std::size_t n) {
    std::size_t c = (n + kGranule - 1) / kGranule;
    if (c < kClasses) {
      if (Block* b = free_[c]) {
        free_[c] = b->next;
        --count_[c];
        return b;
      }
      return ::operator new(c* kGranule);
    }
    return ::operator new(n);
  }

  void deallocate(void* p, std::size_t n) noexcept {
    std::size_t c = (n + kGranule - 1) / kGranule;
    if (c < kClasses && count_[c] < kMaxCached && !dead_) {
      auto* b = static_cast<Block*>(p);
      b->next = free_[c];
      free_[c] = b;
      ++count_[c];
      return;
    }
    ::operator delete(p);
  }

  ~FramePool() {
    dead_ = true;
    for (std::size_t c = 0; c < kClasses; ++c) {
      while (Block* b = free_[c]) {
        free_[c] = b->next;
        ::operator delete(b);
      }
    }
  }

 private:
  struct Block {
    Block* next;
  };
  Block* free_[kClasses] = {};
  std::size_t count_[kClasses] = {};
  bool dead_ = false;
};

inline FramePool& frame_pool() noexcept {
  thread_local FramePool pool;
  return pool;
}

inline void* frame_allocate(std::size_t n) {
#ifdef CELERIAC_AIO_NO_FRAME_POOL
  return ::operator new(n);
#else
  return frame_pool().allocate(n);
#endif
}

inline void frame_deallocate(void* p, std::size_t n) noexcept {
#ifdef CELERIAC_AIO_NO_FRAME_POOL
  (void)n;
  ::operator delete(p);
#else
  frame_pool().deallocate(p, n);
#endif
}

}  // namespace celeriac::aio::detail
