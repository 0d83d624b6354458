// Writes task results in batches without a thread of its own: the thread
// that finds the writer idle stores everything queued (one store_many()
// round trip per batch) while threads finishing meanwhile queue theirs and
// go on. Tasks finishing together share a round trip; a lone task pays no
// hand-off. An acknowledgement that must follow its result (acks_late)
// travels with it and is sent once the result is stored.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::detail {

class ResultWriter {
 public:
  ResultWriter(ResultBackend& backend, Broker& broker) : backend_(backend), broker_(broker) {}

  /// Stores `meta`, then acks `ack_after` (when given). Returns before the
  /// store when another thread is writing (it writes this one too).
  void write(ResultMeta meta, std::optional<Delivery> ack_after = std::nullopt) {
    submit(std::move(meta), std::move(ack_after), false);
  }
  /// Stores `meta` and returns only once it is stored (or failed for good):
  /// for a state that must be visible before the next step (RETRY before the
  /// retry message is published).
  void write_now(ResultMeta meta) { submit(std::move(meta), std::nullopt, true); }

 private:
  struct Pending {
    ResultMeta meta;
    std::optional<Delivery> ack_after;
  };
  void submit(ResultMeta meta, std::optional<Delivery> ack_after, bool wait);
  void store_batch(std::vector<Pending>& batch);

  ResultBackend& backend_;
  Broker& broker_;
  std::mutex mu_;
  std::condition_variable written_cv_;
  std::vector<Pending> queue_;
  std::uint64_t queued_seq_ = 0;   // items ever queued
  std::uint64_t written_seq_ = 0;  // items ever written (in queue order)
  bool writing_ = false;
};

}  // namespace celeriac::tq::detail
