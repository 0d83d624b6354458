# cmake -P script run by the install.consumer test (see CMakeLists.txt here).
# Inputs: BUILD_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM,
# CXX_COMPILER, CXX_FLAGS, BUILD_TYPE.
cmake_minimum_required(VERSION 3.25)

set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/consumer-build")
file(REMOVE_RECURSE "${WORK_DIR}")

# Runs a command; fails the test with its output if it fails.
function(run step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (${rc}):\n${ARGN}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

run("cmake --install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
file(GLOB_RECURSE config "${prefix}/*/celeriacConfig.cmake")
if(NOT config)
  message(FATAL_ERROR "cmake --install put no celeriacConfig.cmake under ${prefix}")
endif()

set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${consumer_build}" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
    "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
run("configuring the consumer" "${CMAKE_COMMAND}" ${configure_args})

# The package must come from the fresh prefix, not from the source or build tree.
file(STRINGS "${consumer_build}/CMakeCache.txt" found_dir REGEX "^celeriac_DIR:")
string(FIND "${found_dir}" "${prefix}/" at)
if(NOT at GREATER -1)
  message(FATAL_ERROR "the consumer found celeriac outside ${prefix}: ${found_dir}")
endif()

run("building the consumer" "${CMAKE_COMMAND}" --build "${consumer_build}")
run("running the consumer" "${consumer_build}/consumer")
if(NOT run_output MATCHES "celeriac consumer: sum of 1\\.\\.100 = 5050\nceleriac consumer: squares 1 4 9\n")
  message(FATAL_ERROR "unexpected consumer output:\n${run_output}")
endif()
message(STATUS "installed celeriac works: ${run_output}")
