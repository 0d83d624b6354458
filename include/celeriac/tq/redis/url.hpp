// Kept for programs written against the old path: the Redis client now lives in
// celeriac/redis/ (namespace celeriac::redis); see client.hpp.
#pragma once

#include "celeriac/tq/redis/client.hpp"
