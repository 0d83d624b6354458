// The default executor of aio::to_thread(): the exec layer's ThreadPool.
#include <algorithm>
#include <thread>

#include "celeriac/aio/future_await.hpp"

namespace celeriac::aio::detail {

exec::ThreadPool& default_executor() {
  static exec::ThreadPool pool(
      std::min<std::size_t>(32, std::max(1u, std::thread::hardware_concurrency()) + 4));
  return pool;
}

}  // namespace celeriac::aio::detail
