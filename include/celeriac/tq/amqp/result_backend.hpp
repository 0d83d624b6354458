// Celery's RPC result backend (`rpc://`, celery/backends/rpc.py) on RabbitMQ:
// a worker sends each result state as a message to the calling client's
// reply queue (the task message's reply_to), correlation_id = task id; the
// client consumes its queue and keeps what arrived.
#pragma once

#include <memory>

#include "celeriac/tq/result_backend.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::amqp {

/// The rpc:// backend. It needs a broker URL: `rpc://` alone means the
/// broker of this process's AMQP transport... which the backend cannot know,
/// so write the broker's address as `rpc://user:pass@host:port/vhost`
/// (celeriac's convention) or set the `CELERIAC_RPC_BROKER` environment
/// variable. Results live only in the client's queue: get() of a task this
/// client did not send is nullopt (as in Celery). Thread-safe.
class RpcResultBackend final : public ResultBackend {
 public:
  /// The rpc:// backend on the broker of `url`.
  explicit RpcResultBackend(const Url& url);
  ~RpcResultBackend() override;

  std::string url() const override;
  /// Publishes the meta to the reply queue of the task's client (known from
  /// the task message this process received); false when there is none.
  bool store(const ResultMeta& meta) override;
  std::optional<ResultMeta> get(std::string_view task_id) override;
  std::optional<ResultMeta> wait(std::string_view task_id,
                                 std::chrono::milliseconds timeout) override;
  bool wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) override;
  void forget(std::string_view task_id) override;
  std::size_t cleanup() override { return 0; }
  std::chrono::seconds expires() const override;
  void close() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace celeriac::tq::amqp
