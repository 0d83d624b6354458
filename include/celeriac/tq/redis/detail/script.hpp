// Kept for programs written against the old path: now celeriac/redis/script.hpp.
#pragma once

#include "celeriac/tq/redis/client.hpp"
