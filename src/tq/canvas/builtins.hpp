// Celery's built-in canvas tasks (celery.map, celery.starmap,
// celery.accumulate, celery.backend_cleanup).
#pragma once

#include <string_view>

#include "celeriac/tq/app.hpp"

namespace celeriac::tq::detail::canvas {

/// The built-in task `name` (registered in `app` on first use), or nullptr
/// when `name` is not one of Celery's built-ins.
const TaskDef* builtin_task(App& app, std::string_view name);

}  // namespace celeriac::tq::detail::canvas
