# `cmake --install` puts headers, the layer libraries and a package config so
# that find_package(celeriac) + target_link_libraries(app celeriac::celeriac) works.
include(CMakePackageConfigHelpers)

get_property(layer_targets GLOBAL PROPERTY CELERIAC_INSTALL_TARGETS)
get_property(CELERIAC_FIND_DEPENDENCIES GLOBAL PROPERTY CELERIAC_FIND_DEPENDENCIES)
list(REMOVE_DUPLICATES CELERIAC_FIND_DEPENDENCIES)
list(JOIN CELERIAC_FIND_DEPENDENCIES " " CELERIAC_FIND_DEPENDENCIES)
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
