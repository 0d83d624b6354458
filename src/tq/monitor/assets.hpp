// The dashboard's static files, compiled into the binary by
// cmake/embed_assets.cmake from src/tq/monitor/assets/.
#pragma once

#include <cstddef>
#include <vector>

namespace celeriac::tq::detail {

/// One embedded file.
struct Asset {
  const char* path;          ///< URL path, e.g. "/app.js"
  const char* content_type;  ///< MIME type
  const char* data;          ///< bytes
  std::size_t size;          ///< byte count
};

/// Every embedded file.
const std::vector<Asset>& dashboard_assets();

}  // namespace celeriac::tq::detail
