# `cmake --install` puts headers, the layer libraries and a package config so
# that find_package(celeriac) + target_link_libraries(app celeriac::celeriac) works.
include(CMakePackageConfigHelpers)

get_property(layer_targets GLOBAL PROPERTY CELERIAC_INSTALL_TARGETS)
get_property(CELERIAC_FIND_DEPENDENCIES GLOBAL PROPERTY CELERIAC_FIND_DEPENDENCIES)
list(REMOVE_DUPLICATES CELERIAC_FIND_DEPENDENCIES)
list(JOIN CELERIAC_FIND_DEPENDENCIES " " CELERIAC_FIND_DEPENDENCIES)

# Imported targets that pkg-config made (PkgConfig::<PREFIX>, e.g. hiredis for
# the task queue) stay in the exported link interface of a static layer even
# when linked privately, so a consumer must be able to recreate them: record
# "<PREFIX>=<module>" pairs for celeriacConfig.cmake to find again.
set(CELERIAC_PKG_CONFIG_MODULES)
foreach(target IN LISTS layer_targets)
  get_target_property(libs ${target} LINK_LIBRARIES)
  if(NOT libs)
    continue()
  endif()
  string(REGEX MATCHALL "PkgConfig::[A-Za-z0-9_]+" imported "${libs}")
  foreach(name IN LISTS imported)
    string(REPLACE "PkgConfig::" "" prefix "${name}")
    if(NOT ${prefix}_MODULE_NAME)
      message(FATAL_ERROR "${target} links ${name}, but no pkg-config module is recorded for it "
                          "(pkg_check_modules with one module sets ${prefix}_MODULE_NAME)")
    endif()
    list(APPEND CELERIAC_PKG_CONFIG_MODULES "${prefix}=${${prefix}_MODULE_NAME}")
  endforeach()
endforeach()
list(REMOVE_DUPLICATES CELERIAC_PKG_CONFIG_MODULES)
list(JOIN CELERIAC_PKG_CONFIG_MODULES " " CELERIAC_PKG_CONFIG_MODULES)
install(TARGETS celeriac ${layer_targets} EXPORT celeriacTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/celeriac DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT celeriacTargets NAMESPACE celeriac:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/celeriac)

configure_package_config_file(cmake/celeriacConfig.cmake.in
  ${PROJECT_BINARY_DIR}/celeriacConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/celeriac)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/celeriacConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/celeriacConfig.cmake ${PROJECT_BINARY_DIR}/celeriacConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/celeriac)
