#!/usr/bin/env bash
# Runs the `celeriac` program: help everywhere, the verbs on a fresh SQLite
# database, and bad arguments (each must fail with a clear message).
# Usage: cli_test.sh path/to/celeriac
set -uo pipefail
bin=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export CELERIAC_BROKER_URL="sqlite:///$work/tq.db"
failures=0

# expect CODE PATTERN -- ARGS...: exit code CODE and PATTERN in stdout+stderr.
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$("$bin" "$@" 2>&1)
  rc=$?
  if [ "$rc" != "$code" ] || ! grep -qF -- "$pattern" <<<"$out"; then
    echo "FAIL: celeriac $* -> exit $rc (want $code), output:"
    echo "$out" | sed 's/^/    /'
    echo "  (wanted to see: $pattern)"
    failures=$((failures + 1))
  else
    echo "ok: celeriac $*"
  fi
}

# Help everywhere.
expect 0 "call" -- --help
for verb in call result purge inspect status dead-letters; do
  expect 0 "Usage" -- "$verb" --help
done
# No worker verb in the generic program.
expect 2 "your app's binary" -- worker -c 4
expect 2 "your app's binary" -- worker
# No verb at all.
expect 106 "A subcommand is required" --

# A task sent without a worker: its id, it waits in the queue, purge drops it.
id=$("$bin" call tasks.add '[2, 3]' --no-wait)
if ! [[ "$id" =~ ^[0-9a-f-]{36}$ ]]; then
  echo "FAIL: call --no-wait printed '$id', not a task id"
  failures=$((failures + 1))
fi
expect 0 "queue 'celery': 1 message(s) waiting" -- status
expect 0 "PENDING" -- result "$id" --no-wait
expect 3 "timed out" -- result "$id" --timeout 0.2
expect 3 "timed out" -- call tasks.add '[1, 1]' --timeout 0.2
expect 0 "purged 2 message(s) from queue 'celery'" -- purge
expect 0 "queue 'celery': 0 message(s) waiting" -- status
expect 0 "queue 'other': 0 message(s) waiting" -- status -Q other
expect 0 "0 dead letter(s)" -- dead-letters
"$bin" call tasks.x --no-wait --queue q2 --priority 3 --countdown 5 --expires 60 >/dev/null
expect 0 "queue 'q2': 1 message(s) waiting" -- status -Q q2

# Bad arguments.
expect 2 "ARGS is not valid JSON" -- call tasks.add '[1,' --no-wait
expect 2 "ARGS must be a JSON array" -- call tasks.add '{"x": 1}' --no-wait
expect 2 "KWARGS must be a JSON object" -- call tasks.add '[]' '[1]' --no-wait
expect 105 "priority" -- call tasks.add '[]' --priority 12 --no-wait
expect 106 "name is required" -- call
expect 105 "method" -- inspect frobnicate
expect 2 "ftp://nowhere" -- --broker ftp://nowhere status
expect 1 "No nodes replied" -- inspect ping  # SQLite has remote control; no worker runs here
expect 2 "unknown log level 'loud'" -- --loglevel loud status

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
