#!/usr/bin/env bash
# Checks (or with --fix, rewrites) C and C++ formatting against the checked-in .clang-format files.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'bpf/*.c' 'bpf/*.h' 'native/*.cc' 'native/*.h' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
[ ${#files[@]} -eq 0 ] && exit 0
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run --Werror "${files[@]}"
fi
