# The guide's ctest: runs `celeriac-guide --quick` and checks that every row
# is there with a correct answer (the prime count, the number of responses).
# Timings are printed, never checked.
#   cmake -DGUIDE=path/to/celeriac-guide -DSVG=out.svg -P check_guide.cmake
set(cpp_rows io.sequential io.threads io.pool8 io.pool64 io.aio io.procpool io.tq_threads io.tq_async
    wait.threads wait.pool64 wait.aio
    cpu.sequential cpu.threads cpu.pool cpu.procpool cpu.aio_to_thread cpu.tq_processes
    mixed.aio_pool)
set(python_rows io.sequential io.threads io.pool8 io.pool64 io.asyncio io.procpool
    wait.threads wait.pool64 wait.asyncio
    cpu.sequential cpu.threads cpu.pool cpu.procpool cpu.mp_pool cpu.asyncio_to_thread
    mixed.asyncio_threads mixed.asyncio_procs)
set(celery_rows io.celery_threads cpu.celery_prefork)

execute_process(COMMAND ${GUIDE} --quick --svg ${SVG} OUTPUT_VARIABLE out ERROR_VARIABLE err
                RESULT_VARIABLE rc)
message("${out}${err}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "celeriac-guide --quick failed (${rc})")
endif()

set(expected)
foreach(row IN LISTS cpp_rows)
  list(APPEND expected "${row} +C\\+\\+")
endforeach()
if(EXISTS /usr/bin/python3)
  foreach(row IN LISTS python_rows)
    list(APPEND expected "${row} +Python")
  endforeach()
  execute_process(COMMAND /usr/bin/python3 -c "import celery" RESULT_VARIABLE no_celery OUTPUT_QUIET ERROR_QUIET)
  if(no_celery EQUAL 0 AND EXISTS /usr/bin/redis-server)
    foreach(row IN LISTS celery_rows)
      list(APPEND expected "${row} +Python")
    endforeach()
  endif()
endif()
foreach(pattern IN LISTS expected)
  if(NOT out MATCHES "\\] ${pattern} [^\n]* s  ok\n")
    message(FATAL_ERROR "row '${pattern}' is missing or its answer is wrong")
  endif()
endforeach()
list(LENGTH expected n)
if(NOT out MATCHES "all ${n} rows that ran are correct")
  message(FATAL_ERROR "expected exactly ${n} rows to run, all correct")
endif()
file(READ ${SVG} svg)
if(NOT svg MATCHES "^<svg " OR NOT svg MATCHES "</svg>\n$")
  message(FATAL_ERROR "${SVG} is not an SVG document")
endif()
message(STATUS "all ${n} rows present and correct")
