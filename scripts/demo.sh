#!/usr/bin/env bash
# `npm run demo`: installs and builds what is missing, then runs the sandboxed demo
# (src/demo/demo.ts). Everything it creates is removed when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build >/dev/null
exec node dist/src/demo/demo.js
