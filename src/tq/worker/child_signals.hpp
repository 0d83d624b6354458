// Signals to the processes pool's children by task id (soft time limit,
// revoke --terminate). The worker cannot see which child runs which task
// (mp hides it), so each child writes "pid runs task id" into a small table
// shared by every process forked after the table was made: the worker makes
// it before it starts the fork server. A child's SIGUSR1 handler (Celery's
// soft-timeout signal) only sets the task's Cancellation flag: C++ cannot
// throw from a signal handler, so the task sees SoftTimeLimitExceeded at its
// next Context::check_cancelled(), and its stop token stops soon after.
#pragma once

#include <memory>
#include <string>

#include "celeriac/tq/context.hpp"

namespace celeriac::tq::detail {

/// Makes the shared table (once; before mp::init() so children share it).
void init_child_table();

/// In a child: this process now runs `task_id`, with `cancel` set by the
/// soft-limit signal. Unblocks SIGUSR1 and SIGTERM for the task.
void child_task_started(const std::string& task_id, std::shared_ptr<Cancellation> cancel);
/// In a child: the task of child_task_started() is over.
void child_task_done();

/// In the worker: sends `signal` to the child running `task_id` (SIGUSR1
/// carries the task's sequence number, so a late one cannot hit the next
/// task). False when no child runs it (or the table is missing).
bool signal_child(const std::string& task_id, int signal);

}  // namespace celeriac::tq::detail
