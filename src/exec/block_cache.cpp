// Thread-exit clean-up of the per-thread task block cache.
#include "celeriac/exec/detail/task.hpp"

namespace celeriac::exec::detail {

namespace {
struct BlockCacheGuard {
  ~BlockCacheGuard() {
    BlockCache& bc = tl_block_cache;
    for (std::size_t c = 0; c < kBlockClasses; ++c) {
      while (void* p = bc.head[c]) {
        bc.head[c] = *static_cast<void**>(p);
        ::operator delete(p);
      }
      bc.count[c] = 0;
    }
    // Blocks freed by destructors of other thread_locals after this point go
    // straight back to the system.
    bc.guarded = true;
    for (auto& n : bc.count) n = kBlockCacheCap;
  }
};
}  // namespace

void guard_block_cache() noexcept {
  static thread_local BlockCacheGuard guard;
  (void)&guard;
  tl_block_cache.guarded = true;
}

}  // namespace celeriac::exec::detail
