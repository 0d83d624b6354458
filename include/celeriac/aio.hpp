// celeriac::aio — asyncio for C++: event loop, coroutine tasks, timeouts,
// combinators, sync primitives and queues, bridges to futures and executors,
// and (when present) streams, UDP, DNS, subprocesses and signals.
#pragma once

#include "celeriac/aio/barrier.hpp"
#include "celeriac/aio/condition.hpp"
#include "celeriac/aio/errors.hpp"
#include "celeriac/aio/event.hpp"
#include "celeriac/aio/event_loop.hpp"
#include "celeriac/aio/fd_watch.hpp"
#include "celeriac/aio/future_await.hpp"
#include "celeriac/aio/gather.hpp"
#include "celeriac/aio/lock.hpp"
#include "celeriac/aio/queue.hpp"
#include "celeriac/aio/semaphore.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/task_group.hpp"
#include "celeriac/aio/timeout.hpp"
#include "celeriac/aio/wait.hpp"

// The I/O half of the layer, included as its headers land.
#if __has_include("celeriac/aio/streams.hpp")
#include "celeriac/aio/streams.hpp"
#endif
#if __has_include("celeriac/aio/server.hpp")
#include "celeriac/aio/server.hpp"
#endif
#if __has_include("celeriac/aio/udp.hpp")
#include "celeriac/aio/udp.hpp"
#endif
#if __has_include("celeriac/aio/dns.hpp")
#include "celeriac/aio/dns.hpp"
#endif
#if __has_include("celeriac/aio/subprocess.hpp")
#include "celeriac/aio/subprocess.hpp"
#endif
#if __has_include("celeriac/aio/signal.hpp")
#include "celeriac/aio/signal.hpp"
#endif
#if __has_include("celeriac/aio/socket.hpp")
#include "celeriac/aio/socket.hpp"
#endif
