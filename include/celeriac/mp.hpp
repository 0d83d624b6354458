// Layer 4, mp: processes. Process, Pipe/Connection, Queue<T>, SharedMemory,
// SharedArray<T>, and ProcessPool (ProcessPoolExecutor), all forked from a
// fork server so that they are safe in a program that runs threads.
// Call celeriac::mp::init() at the top of main(). Examples: examples/mp/.
#pragma once

#include "celeriac/mp/connection.hpp"
#include "celeriac/mp/errors.hpp"
#include "celeriac/mp/fork_server.hpp"
#include "celeriac/mp/process.hpp"
#include "celeriac/mp/process_pool.hpp"
#include "celeriac/mp/queue.hpp"
#include "celeriac/mp/serialize.hpp"
#include "celeriac/mp/shared_memory.hpp"
