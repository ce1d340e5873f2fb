#!/usr/bin/env bash
# `npm run demo`: installs and builds what is missing or stale, quietly (a build's log is shown
# only when it fails), then runs the sandboxed demo (src/demo/demo.ts). Everything it creates is
# removed when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Runs one build step with its output in $log; prints the log and stops when it fails.
quietly() {
  if ! "$@" >"$log" 2>&1; then
    echo "demo: building failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}
# True when $1 is missing or older than any file under the other arguments.
stale() {
  local target=$1
  shift
  [ ! -e "$target" ] || [ -n "$(find "$@" -newer "$target" -type f -print -quit)" ]
}

if stale dist/src/demo/demo.js src tsconfig.json tsconfig.build.json package-lock.json; then quietly npm run build:ts; fi
if stale build/Release/sluice_native.node native binding.gyp || stale build/Release/sluice_memory.node native binding.gyp; then quietly npm run build:native; fi
quietly make -C bpf # make rebuilds only the objects older than their sources
exec node dist/src/demo/demo.js "$@"
