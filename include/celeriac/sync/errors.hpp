// Errors of the sync layer, named like Python's queue and threading errors.
#pragma once

#include "celeriac/error.hpp"

namespace celeriac::sync {

/// A put found the queue full: put_nowait(), or put(item, timeout) when no
/// room appeared in time (Python's queue.Full).
class Full : public Error {
 public:
  using Error::Error;
};

/// A get found the queue empty: get_nowait(), or get(timeout) when no item
/// arrived in time (Python's queue.Empty).
class Empty : public Error {
 public:
  using Error::Error;
};

/// The queue was closed: no more puts, and no more gets once it is drained
/// (Python 3.13's queue.ShutDown).
class QueueClosed : public Error {
 public:
  using Error::Error;
};

/// A Barrier was aborted, reset or timed out while a thread waited on it, or
/// is broken when a thread arrives (Python's threading.BrokenBarrierError).
class BrokenBarrierError : public Error {
 public:
  using Error::Error;
};

}  // namespace celeriac::sync
