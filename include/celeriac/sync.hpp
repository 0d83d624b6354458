// The sync layer: threads and the primitives to coordinate them, as Python's
// threading and queue modules (Event, Queue, Semaphore, Barrier, Thread).
#pragma once

#include "celeriac/sync/barrier.hpp"
#include "celeriac/sync/errors.hpp"
#include "celeriac/sync/event.hpp"
#include "celeriac/sync/queue.hpp"
#include "celeriac/sync/semaphore.hpp"
#include "celeriac/sync/thread.hpp"
#include "celeriac/sync/thread_name.hpp"
