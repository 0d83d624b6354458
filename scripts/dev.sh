#!/usr/bin/env bash
# The README's two commands, and a few more for developers.
#   scripts/dev.sh demo           set up, build (release) and run the main demo
#   scripts/dev.sh test           set up, build and run the whole test suite:
#                                 release, AddressSanitizer+UBSan, then the
#                                 fuzz targets (30 s each) and ThreadSanitizer
#                                 on the core layers; prints each stage's time
#   scripts/dev.sh test PRESET..  the suite under the given presets
#                                 (release, debug, asan, tsan, clang, fuzz)
#   scripts/dev.sh soak           the long runs kept out of CI: each fuzz
#                                 target for 10 minutes (FUZZ_SECONDS)
#   scripts/dev.sh bench          build (release) and run every benchmark
#   scripts/dev.sh guide [ARGS]   build (release) and run celeriac-guide: every tool
#                                 on the same workloads, C++ and Python (docs/guide.md)
#   scripts/dev.sh docs           the API reference (Doxygen) in build/release/docs/api/html
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
# ccache (if installed) shares objects between build trees and checkouts.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1

build() {  # build PRESET [TARGET...]
  local preset=$1; shift
  echo "== configure + build: $preset"
  cmake --preset "$preset" >/dev/null
  if [ $# -gt 0 ]; then
    cmake --build --preset "$preset" -j "$jobs" --target "$@"
  else
    cmake --build --preset "$preset" -j "$jobs"
  fi
}

# Stage timings, printed as a table at the end of the run (CI budget).
stage_names=() stage_secs=()
stage() {  # stage NAME COMMAND...: runs COMMAND and records how long it took
  local name=$1; shift
  local start=$SECONDS
  "$@"
  stage_names+=("$name") stage_secs+=($((SECONDS - start)))
}
print_stages() {
  [ ${#stage_names[@]} -gt 0 ] || return 0
  local total=0 i
  echo "== stage times"
  for i in "${!stage_names[@]}"; do
    printf '   %-28s %5d s\n' "${stage_names[$i]}" "${stage_secs[$i]}"
    total=$((total + stage_secs[i]))
  done
  printf '   %-28s %5d s (%d min)\n' total "$total" $((total / 60))
}
trap print_stages EXIT

run_tests() {  # run_tests PRESET
  local preset=$1
  case "$preset" in
    tsan) run_tsan; return ;;
    fuzz) run_fuzz; return ;;
  esac
  stage "build $preset" build "$preset"
  echo "== test: $preset"
  stage "test $preset" ctest --preset "$preset" --progress
}

# ThreadSanitizer on the layers with threads of their own. CI runs the
# targets that have been run clean under TSan: sync, futures, exec, aio and
# mp (every mp suite, the fork server and pool included). `TSAN_ALL=1` adds
# the tq core and the pool conformance suite (the latter run clean: 21
# cases, the four pools); their TSan build (the whole tq library) took 40
# minutes on the two shared cores, too long for CI's hour so far. The Redis/interop suites need servers and a real
# Celery: release and ASan cover them.
tsan_targets=(test_sync test_futures test_exec test_aio_core test_aio_io test_mp_queue test_mp_serialize
              test_mp_pipe test_mp_pool test_mp_process test_mp_orphans test_mp_aio)
[ "${TSAN_ALL:-0}" = 1 ] && tsan_targets+=(test_tq_core test_tq_pool_conformance)
run_tsan() {
  local have=() t targets
  cmake --preset tsan >/dev/null
  targets=$(cmake --build --preset tsan --target help)
  for t in "${tsan_targets[@]}"; do
    grep -q "^$t:" <<<"$targets" && have+=("$t")
  done
  stage "build tsan (${#have[@]} targets)" build tsan "${have[@]}"
  echo "== test: tsan"
  # Only what was built: gtest cases of those executables (no *_NOT_BUILT
  # placeholders, examples, compile checks, install or replay tests).
  stage "test tsan" ctest --preset tsan --progress -L 'sync|futures|exec|aio|mp|tq' -LE 'redis|amqp' \
    -E '_NOT_BUILT$|^examples?\.|^mp\.compile\.|^install\.|^tools\.'
}

# libFuzzer targets (tests/fuzz) with ASan+UBSan, FUZZ_SECONDS each
# (CI: 30), after replaying their corpora and past crashes.
run_fuzz() {
  cmake --preset fuzz -DCELERIAC_FUZZ_SECONDS="${FUZZ_SECONDS:-30}" -DCELERIAC_FUZZ_SEED="${FUZZ_SEED:-1}" >/dev/null
  stage "build fuzz" cmake --build --preset fuzz -j "$jobs"
  echo "== test: fuzz (${FUZZ_SECONDS:-30} s per target)"
  stage "test fuzz" ctest --preset fuzz --progress
}

cmd=${1:-help}; shift || true
case "$cmd" in
  demo)
    scripts/setup.sh
    build release celeriac_demo
    exec build/release/examples/celeriac_demo "$@"
    ;;
  test)
    scripts/setup.sh
    presets=("$@")
    [ ${#presets[@]} -gt 0 ] || presets=(release asan fuzz tsan)
    for preset in "${presets[@]}"; do run_tests "$preset"; done
    ;;
  soak)
    scripts/setup.sh
    FUZZ_SECONDS=${FUZZ_SECONDS:-600} FUZZ_SEED=${FUZZ_SEED:-0} run_fuzz
    ;;
  guide)
    scripts/setup.sh
    build release celeriac-guide
    exec build/release/examples/celeriac-guide "$@"
    ;;
  docs)
    scripts/setup.sh
    cmake --preset release >/dev/null
    cmake --build --preset release --target docs
    echo "== API reference: build/release/docs/api/html/index.html"
    ;;
  bench)
    scripts/setup.sh
    build release
    for b in build/release/bench/*/bench_*; do
      [ -x "$b" ] || continue
      echo "== $b"
      "$b"
    done
    ;;
  *)
    sed -n '2,16p' "$0"
    ;;
esac
