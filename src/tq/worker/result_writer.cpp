#include "result_writer.hpp"

#include <thread>

#include <spdlog/spdlog.h>

namespace celeriac::tq::detail {

void ResultWriter::submit(ResultMeta meta, std::optional<Delivery> ack_after, bool wait) {
  std::unique_lock lock(mu_);
  queue_.push_back(Pending{std::move(meta), std::move(ack_after)});
  const std::uint64_t mine = ++queued_seq_;
  if (writing_) {
    if (!wait) return;
    written_cv_.wait(lock, [&] { return written_seq_ >= mine; });
    return;
  }
  writing_ = true;
  while (!queue_.empty()) {
    std::vector<Pending> batch;
    batch.swap(queue_);
    const std::uint64_t upto = queued_seq_;
    lock.unlock();
    store_batch(batch);
    lock.lock();
    written_seq_ = upto;
    written_cv_.notify_all();
  }
  writing_ = false;
}

void ResultWriter::store_batch(std::vector<Pending>& batch) {
  std::vector<ResultMeta> metas;
  metas.reserve(batch.size());
  for (auto& p : batch) metas.push_back(std::move(p.meta));
  for (int attempt = 0;; ++attempt) {
    try {
      backend_.store_many(metas);
      break;
    } catch (const std::exception& e) {
      if (attempt >= 5) {
        for (const auto& m : metas)
          spdlog::error("cannot store result of {} ({}): {}", m.task_id, to_string(m.status),
                        e.what());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
    }
  }
  for (auto& p : batch) {
    if (!p.ack_after) continue;
    try {
      broker_.ack(*p.ack_after);
    } catch (const std::exception& e) {
      spdlog::error("ack of {} failed: {}", p.ack_after->tag, e.what());
    }
  }
}

}  // namespace celeriac::tq::detail
