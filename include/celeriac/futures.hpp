// Layer 2, futures: Future/Promise, continuations, when_all/when_any,
// wait/as_completed.
#pragma once

#include "celeriac/error.hpp"
#include "celeriac/futures/executor.hpp"
#include "celeriac/futures/future.hpp"
#include "celeriac/futures/promise.hpp"
#include "celeriac/futures/wait.hpp"
#include "celeriac/futures/when.hpp"
