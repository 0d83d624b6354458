// Errors of the aio layer, named like asyncio's.
#pragma once

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "celeriac/error.hpp"

namespace celeriac::aio {

/// Several errors at once (Python's ExceptionGroup), e.g. from a TaskGroup
/// whose children failed. exceptions() holds them in the order they happened.
class ExceptionGroup : public Error {
 public:
  /// Several errors at once (a TaskGroup's children), in the order they happened.
  ExceptionGroup(const std::string& message, std::vector<std::exception_ptr> errors)
      : Error(describe(message, errors)), errors_(std::move(errors)) {}
  /// The errors, in the order they happened.
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return errors_; }

 private:
  static std::string describe(const std::string& message,
                              const std::vector<std::exception_ptr>& errors) {
    std::string s = message + " (" + std::to_string(errors.size()) + " sub-exception" +
                    (errors.size() == 1 ? "" : "s") + ")";
    for (const auto& e : errors) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        s += "; ";
        s += ex.what();
      } catch (...) {
        s += "; unknown exception";
      }
    }
    return s;
  }
  std::vector<std::exception_ptr> errors_;
};

/// get_nowait() on an empty queue (asyncio.QueueEmpty).
class QueueEmpty : public Error {
 public:
  QueueEmpty() : Error("aio queue is empty") {}
  using Error::Error;
};

/// put_nowait() on a full queue (asyncio.QueueFull).
class QueueFull : public Error {
 public:
  QueueFull() : Error("aio queue is full") {}
  using Error::Error;
};

/// put() or get() on a queue that was shut down (asyncio.QueueShutDown).
class QueueShutDown : public Error {
 public:
  QueueShutDown() : Error("aio queue was shut down") {}
  using Error::Error;
};

/// A Barrier was aborted or reset while (or before) waiting
/// (asyncio.BrokenBarrierError).
class BrokenBarrierError : public Error {
 public:
  BrokenBarrierError() : Error("aio barrier is broken") {}
  using Error::Error;
};

}  // namespace celeriac::aio
