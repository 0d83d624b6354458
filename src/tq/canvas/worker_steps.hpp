// What the worker does for a message's embed (callbacks, errbacks, chain,
// chord) at each lifecycle transition, as celery/app/trace.py and
// celery/backends/{base,redis}.py do (../shared/CELERY-FEATURES.md §1).
#pragma once

#include <string>

#include "celeriac/tq/app.hpp"

namespace celeriac::tq::detail::canvas {

/// "" when the embed of `m` is well-formed, else what is wrong with it.
std::string check_embed(const TaskMessage& m);

/// Before a success is stored: publishes the callbacks and the next chain
/// step; returns the result's `children` ([[[id, null], null], ...]).
/// Throws when publishing failed.
Json on_success(App& app, const TaskMessage& m, const Json& result);

/// After `m`'s ready state was stored: its chord part return (and, when it
/// completes the chord, the body published or failed with ChordError).
void on_ready(App& app, const TaskMessage& m, State state, const Json& result);

/// After a FAILURE (or REVOKED) was stored for `m`: the same failure stored
/// under every remaining chain step (with their chord part returns) and
/// the errbacks sent with (failed_task_id,). `failure` is the meta stored.
void on_failure(App& app, const TaskMessage& m, const ResultMeta& failure, bool call_errbacks);

/// A message dead-lettered for a bad embed or an unknown task: its chord
/// part and its chain's remaining steps get `failure` (no errbacks), so
/// nothing waiting on the workflow hangs.
void on_rejected(App& app, const TaskMessage& m, const ResultMeta& failure);

/// `meta` with `result` and (when an array) `children` set.
ResultMeta with_children(ResultMeta meta, const Json& result, const Json& children);

}  // namespace celeriac::tq::detail::canvas
