// resolve(): getaddrinfo on a worker thread, the answer delivered on the loop.
#include "celeriac/aio/dns.hpp"

#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "celeriac/aio/detail/io_resolve.hpp"

namespace celeriac::aio {
namespace {

// Shared by the awaiting task and the worker thread. The worker posts the
// wake-up to the loop only while `loop` is set; the awaiter clears it when it
// goes away (cancelled, or its frame destroyed when the loop closes).
struct Job {
  std::mutex mu;
  EventLoop* loop = nullptr;
  Suspension* waiter = nullptr;  // loop thread only
  bool finished = false;         // loop thread only
  std::vector<SocketAddress> result;
  // A resolver failure as plain data: the GaiError is made on the loop's
  // thread. (An exception_ptr released last by the worker thread is
  // reported by TSan, which cannot see libstdc++'s refcount.)
  int gai_code = 0;
  int gai_errno = 0;
  std::string gai_message;
  std::exception_ptr error;  // anything else (e.g. bad_alloc)
};

class ResolveAwaiter : public Suspension {
 public:
  ResolveAwaiter(std::string host, std::uint16_t port, int family, int socktype)
      : host_(std::move(host)), port_(port), family_(family), socktype_(socktype) {}
  ~ResolveAwaiter() { detach(); }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    job_ = std::make_shared<Job>();
    job_->loop = &loop();
    job_->waiter = this;
    loop().hold_clock();  // another thread will wake us: no virtual time jumps
    holds_clock_ = true;
    std::thread([job = job_, host = host_, port = port_, family = family_,
                 socktype = socktype_]() mutable {
      try {
        job->result = detail::resolve_blocking(host, port, family, socktype);
      } catch (const GaiError& e) {
        job->gai_code = e.gai_code();
        job->gai_errno = e.errno_value();
        job->gai_message = e.what();
      } catch (...) {
        job->error = std::current_exception();
      }
      std::lock_guard lock(job->mu);
      if (job->loop) {
        job->loop->call_soon_threadsafe([job] {
          job->finished = true;
          if (job->waiter) job->waiter->wake();
        });
      }
    }).detach();
    return true;
  }
  std::vector<SocketAddress> await_resume() {
    end();  // throws CancelledError (detach() already ran through on_cancel)
    release_clock();
    auto job = std::move(job_);
    if (job->gai_code != 0) throw GaiError(job->gai_code, job->gai_errno, job->gai_message);
    if (job->error) std::rethrow_exception(job->error);
    return std::move(job->result);
  }

 private:
  static bool on_cancel(Suspension& s) noexcept {
    static_cast<ResolveAwaiter&>(s).detach();
    return true;
  }
  void release_clock() noexcept {
    if (holds_clock_) {
      holds_clock_ = false;
      loop().release_clock();
    }
  }
  void detach() noexcept {
    release_clock();
    if (!job_) return;
    job_->waiter = nullptr;
    if (!job_->finished) {
      std::lock_guard lock(job_->mu);
      job_->loop = nullptr;
    }
  }
  std::string host_;
  std::uint16_t port_;
  int family_, socktype_;
  std::shared_ptr<Job> job_;
  bool holds_clock_ = false;
};

}  // namespace

Task<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port, int family,
                                         int socktype) {
  // Numeric addresses need no resolver.
  try {
    SocketAddress a = SocketAddress::parse(host, port);
    if (family == AF_UNSPEC || family == a.native_family()) co_return std::vector{a};
  } catch (const std::invalid_argument&) {
  }
  co_return co_await ResolveAwaiter(std::move(host), port, family, socktype);
}

}  // namespace celeriac::aio
