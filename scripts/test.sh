#!/usr/bin/env bash
# The test command (README and .ci/run): set up the machine, install, build, then type-check,
# lint and run every tap test. Ends with one line `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
# Compile on every CPU: node-gyp's make (JOBS) and the BPF objects' (MAKEFLAGS).
export JOBS=max MAKEFLAGS="-j$(nproc)"
installed=$(mktemp)
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || { echo "0 passed, 1 failed"; exit 1; }
fi
# npm ci builds the addon (npm runs `node-gyp rebuild` for a package with a binding.gyp): when it
# just did, `npm run build`'s build:native would only build the same again.
if [ build/Release/sluice_native.node -nt "$installed" ] && [ build/Release/sluice_memory.node -nt "$installed" ]; then
  build() { npm run build:ts && npm run build:bpf; }
else
  build() { npm run build; }
fi
rm -f "$installed"
build || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
echo "setup, install and build: ${SECONDS} s"

# What an earlier run that was killed left behind (its lease's process is gone): removed, so the
# leftover check at the end sees only this run's. Live runs (another test on this machine) stay.
node dist/src/testbed/sweep-main.js || true

passed=0
failed=0
stage() { # name, command...: a stage counts as one test (its time is printed: CI time budget)
  local name=$1 start=$SECONDS; shift
  if "$@"; then passed=$((passed + 1)); else echo "FAILED: $name"; failed=$((failed + 1)); fi
  echo "stage $name: $((SECONDS - start)) s (${SECONDS} s since start)"
}
# Type-check and lint side by side: each is one single-threaded process, and CI has 2 CPUs.
# The type-check also writes the compiled tests (dist/test, `npm run build:test`) that the tap
# stage runs. Its output and status are taken after the lint (its stage time is then only what
# it took beyond the lint).
typecheck_out=$(mktemp)
npm run --silent build:test >"$typecheck_out" 2>&1 &
typecheck_pid=$!
stage lint npm run --silent lint
typecheck_result() {
  local rc=0
  wait "$typecheck_pid" || rc=$?
  cat "$typecheck_out"
  rm -f "$typecheck_out"
  return "$rc"
}
stage typecheck typecheck_result
# Runs an npm script quietly; on failure shows the last 40 lines of its output.
quiet_npm() {
  local out
  out=$(mktemp)
  if npm run --silent "$1" >"$out" 2>&1; then rm -f "$out"; return 0; fi
  tail -40 "$out"
  rm -f "$out"
  return 1
}
# The README's other command, as a newcomer runs it (it installs and builds what is missing, and
# rebuilds): before the tap suite, so no test uses the addon while it is rebuilt. Its output is
# asserted by test/e2e/demo.test.ts; here it must simply work from this clone.
stage "npm run demo" quiet_npm demo
# The container image (test/deploy/image.test.ts runs it): built before the tap suite, whose
# per-file timeout a first build on a fresh machine (two Debian root filesystems) could exceed.
# Cached in /var/cache/sluice-image; a no-op when its inputs are unchanged.
stage "npm run image" quiet_npm image

log=$(mktemp)
tap_start=$SECONDS
# Every test file, compiled (dist/test, from the type-check stage): tap's TypeScript loader would
# transpile each file's imports again in each test process. Files given as arguments run as given.
if [ $# -eq 0 ]; then
  mapfile -t tests < <(find dist/test -name '*.test.js' | LC_ALL=C sort)
  set -- "${tests[@]}"
fi
npx tap --reporter=tap "$@" 2>&1 | tee "$log"
tap_rc=${PIPESTATUS[0]}
# Count each file's top-level tests and assertions (TAP lines at one level of indentation).
tap_pass=$(grep -E '^    ok ' "$log" | grep -cv '# SKIP')
tap_fail=$(grep -cE '^    not ok ' "$log")
# The failing tests by file, repeated here so that the end of the output names them.
awk '/^# Subtest: /{file=substr($0, 12)} /^    not ok /{sub(/^    not ok [0-9]+ - /, ""); print "FAILED: " file ": " $0}' "$log"
# Where the tap stage's time goes: each file's own time (tap's `# time=` on its top-level
# result line), the 15 longest. Files run in parallel (.taprc jobs), so these add up to more
# than the stage's wall time.
echo "slowest test files (s):"
sed -nE 's/^(not )?ok [0-9]+ - (.*) # time=([0-9.]+)ms.*$/\3 \2/p' "$log" |
  sort -rn | head -15 | awk '{printf "  %7.1f  %s\n", $1 / 1000, $2}'
rm -f "$log"
passed=$((passed + tap_pass))
failed=$((failed + tap_fail))
if [ "$tap_rc" -ne 0 ] && [ "$tap_fail" -eq 0 ]; then
  failed=$((failed + 1)) # tap failed without a failing test line (coverage floor, crash)
fi
echo "stage tap: $((SECONDS - tap_start)) s (${SECONDS} s since start)"
stage leftovers bash scripts/check-leftovers.sh
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
