// The thread behind AsyncResult (one per App): completes pending results
// when their metas become ready (see src/tq/async_result.cpp).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq {
class App;
}

namespace celeriac::tq::detail {

class ResultWatcher {
 public:
  explicit ResultWatcher(App& app);
  ~ResultWatcher();
  ResultWatcher(const ResultWatcher&) = delete;
  ResultWatcher& operator=(const ResultWatcher&) = delete;

  /// Calls `on_ready` (on the watcher's thread) once the meta of `id` is
  /// ready; forgets it as soon as `abandoned()` is true.
  void add(const std::string& id, std::function<void(const ResultMeta&)> on_ready,
           std::function<bool()> abandoned);

 private:
  struct Entry {
    std::string id;
    std::function<void(const ResultMeta&)> on_ready;
    std::function<bool()> abandoned;
  };
  void loop();

  App& app_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> fresh_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace celeriac::tq::detail
