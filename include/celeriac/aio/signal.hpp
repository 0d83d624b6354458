// Signal handlers run on the loop (asyncio's loop.add_signal_handler).
//
// The signals are blocked in the loop's thread and read from a signalfd the
// loop watches, so handlers run as ordinary loop callbacks (they may touch
// any loop object). Caveat (as with any signalfd): a process-directed signal
// goes to a thread that does not block it, so in a multi-threaded program
// block the signals in every thread (e.g. pthread_sigmask in main() before
// starting threads, which they inherit); otherwise a thread that does not
// block SIGTERM may take it with the default action. Children started by
// create_subprocess_exec get an empty mask and default dispositions.
#pragma once

#include <functional>

#include "celeriac/aio/event_loop.hpp"

namespace celeriac::aio {

/// Calls `handler` on `loop`'s thread whenever `sig` arrives (replacing an
/// earlier handler for it). Loop thread only, while the loop runs.
/// std::invalid_argument for SIGKILL, SIGSTOP or a bad number.
void add_signal_handler(EventLoop& loop, int sig, std::function<void()> handler);
/// As above on the running loop.
void add_signal_handler(int sig, std::function<void()> handler);
/// Removes the handler and unblocks the signal; false if none was set.
bool remove_signal_handler(EventLoop& loop, int sig);
bool remove_signal_handler(int sig);

}  // namespace celeriac::aio
