#!/usr/bin/env bash
# The Node benchmark (make bench-js): wasm HashRing vs npm hashring@3.2.0. Needs wasm/pkg
# (make build-wasm); installs the pinned npm packages of benches/js when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v node >/dev/null || { echo "benches/js/run.sh: node is missing (install Node.js >= 18)" >&2; exit 1; }
[ -f ../../wasm/pkg/node/ringsession.js ] || { echo "benches/js/run.sh: wasm/pkg is missing: run make build-wasm" >&2; exit 1; }
if [ ! -d node_modules/hashring ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
node bench.mjs
