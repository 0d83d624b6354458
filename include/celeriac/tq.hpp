// celeriac::tq — the distributed task queue: Celery's model and wire protocol.
#pragma once

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/async_result.hpp"
#include "celeriac/tq/beat.hpp"
#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/context.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/rate_limit.hpp"
#include "celeriac/tq/result_backend.hpp"
#include "celeriac/tq/routes.hpp"
#include "celeriac/tq/task.hpp"
#include "celeriac/tq/unique.hpp"
#include "celeriac/tq/url.hpp"
#include "celeriac/tq/worker.hpp"
