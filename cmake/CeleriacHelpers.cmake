# Helpers shared by every layer's CMakeLists.txt.

# celeriac_add_layer(<layer> [SOURCES ...] [DEPS <layer> ...] [LIBS <target> ...])
# Defines celeriac_<layer> (static when it has sources, header-only otherwise),
# exported to users as celeriac::<layer>.
function(celeriac_add_layer layer)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  set(target celeriac_${layer})
  if(ARG_SOURCES)
    add_library(${target} STATIC ${ARG_SOURCES})
    set(scope PUBLIC)
    target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:celeriac_warnings>)
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON
                                               OUTPUT_NAME celeriac_${layer})
  else()
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
  endif()
  target_include_directories(${target} ${scope} $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
                                                $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_compile_features(${target} ${scope} cxx_std_20)
  target_link_libraries(${target} ${scope} Threads::Threads)
  foreach(dep IN LISTS ARG_DEPS)
    target_link_libraries(${target} ${scope} celeriac_${dep})
  endforeach()
  if(ARG_LIBS)
    target_link_libraries(${target} ${scope} ${ARG_LIBS})
  endif()
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${layer})
  add_library(celeriac::${layer} ALIAS ${target})
  set_property(GLOBAL APPEND PROPERTY CELERIAC_INSTALL_TARGETS ${target})
endfunction()

# celeriac_add_test(<name> SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT s] [SERIAL])
# One GoogleTest executable; each TEST() becomes a ctest case.
function(celeriac_add_test name)
  cmake_parse_arguments(ARG "SERIAL" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main celeriac_warnings)
  target_compile_definitions(${name} PRIVATE CELERIAC_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             CELERIAC_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set(props TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
  if(ARG_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120 PROPERTIES ${props})
endfunction()

# celeriac_add_bench(<name> SOURCES ... [LIBS ...]): a benchmark program (never a test).
function(celeriac_add_bench name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} celeriac_warnings)
  target_compile_definitions(${name} PRIVATE CELERIAC_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
endfunction()

# celeriac_find_dependency(<Package> [args...]): find_package now, and again in
# the installed celeriacConfig.cmake so users of a layer that links it publicly
# get it too.
macro(celeriac_find_dependency package)
  find_package(${package} ${ARGN} REQUIRED)
  set_property(GLOBAL APPEND PROPERTY CELERIAC_FIND_DEPENDENCIES ${package})
endmacro()
