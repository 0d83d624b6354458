#!/usr/bin/env bash
# The README's two commands, and a few more for developers.
#   scripts/dev.sh demo           set up, build (release) and run the main demo
#   scripts/dev.sh test           set up, build and run the whole test suite:
#                                 release, then AddressSanitizer+UBSan
#   scripts/dev.sh test PRESET..  the suite under the given presets
#                                 (release, debug, asan, tsan, clang)
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

run_tests() {  # run_tests PRESET
  local preset=$1
  build "$preset"
  echo "== test: $preset"
  local start=$SECONDS
  ctest --preset "$preset" --progress
  echo "== test: $preset passed in $((SECONDS - start)) s"
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
    [ ${#presets[@]} -gt 0 ] || presets=(release asan)
    for preset in "${presets[@]}"; do run_tests "$preset"; done
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
    sed -n '2,11p' "$0"
    ;;
esac
