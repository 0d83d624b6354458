// celeriac's exception hierarchy, named like Python's so that the errors a
// Python programmer expects from concurrent.futures, asyncio and Celery have
// the same names here.
#pragma once

#include <stdexcept>
#include <string>

namespace celeriac {

/// Base of every error celeriac throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A blocking call with a timeout ran out of time (Python's TimeoutError).
class TimeoutError : public Error {
 public:
  TimeoutError() : Error("timed out") {}
  using Error::Error;
};

/// The operation or future was cancelled (concurrent.futures.CancelledError).
class CancelledError : public Error {
 public:
  CancelledError() : Error("cancelled") {}
  using Error::Error;
};

/// An operation that is not allowed in the object's current state
/// (concurrent.futures.InvalidStateError), e.g. setting a result twice.
class InvalidStateError : public Error {
 public:
  using Error::Error;
};

/// The executor cannot run work any more: shut down, or a worker died
/// (concurrent.futures.BrokenExecutor).
class BrokenExecutor : public Error {
 public:
  using Error::Error;
};

/// A Promise was destroyed without ever being given a value or an error.
class BrokenPromise : public Error {
 public:
  BrokenPromise() : Error("promise destroyed before it was fulfilled") {}
  using Error::Error;
};

}  // namespace celeriac
