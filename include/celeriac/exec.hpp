// Layer 3, exec: executors. ThreadPool (work stealing; alias
// ThreadPoolExecutor), InlineExecutor, Strand, TaskGroup, parallel_for and
// parallel_reduce, on top of the futures layer.
#pragma once

#include "celeriac/exec/executor.hpp"
#include "celeriac/exec/map_results.hpp"
#include "celeriac/exec/parallel.hpp"
#include "celeriac/exec/strand.hpp"
#include "celeriac/exec/task_group.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/futures.hpp"
