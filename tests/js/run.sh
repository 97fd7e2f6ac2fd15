#!/usr/bin/env bash
# The JavaScript tests (make test-js, after make build-wasm): Node's own test runner on
#   vectors.test.mjs  every tests/vectors/*.json file against the Node build
#   api.test.mjs      argument forms, errors, awkward keys
#   pack.test.mjs     npm pack + install into a scratch project: require() and import()
#   browser.test.mjs  the web build in headless Chromium, replaying the vectors
#   demo.test.mjs     the demo's /ring page in Chromium: browser and server pick the same shard
# Installs what it needs when missing: the pinned npm packages of tests/js (playwright-core, used
# only as a DevTools protocol client; no browser download) and Debian's chromium (apt-get).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

die() {
    echo "tests/js/run.sh: $*" >&2
    exit 1
}

command -v node >/dev/null || die "node is missing: install Node.js >= 18"
command -v npm >/dev/null || die "npm is missing: install npm"
[ -f ../../wasm/pkg/node/ringsession.js ] && [ -f ../../wasm/pkg/web/ringsession.js ] ||
    die "wasm/pkg is missing: run make build-wasm (make test-js does)"

if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
    echo "tests/js/run.sh: $CHROMIUM is missing; installing Debian's chromium"
    if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=missing; fi
    command -v apt-get >/dev/null && [ "$SUDO" != missing ] ||
        die "cannot install chromium here (needs apt-get and root): install it, or set CHROMIUM=/path/to/chromium"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium ||
        die "apt-get install chromium failed: install it, or set CHROMIUM=/path/to/chromium"
    [ -x "$CHROMIUM" ] || die "chromium was installed but $CHROMIUM is not there: set CHROMIUM"
fi
export CHROMIUM

node --test --test-reporter=spec \
    vectors.test.mjs api.test.mjs pack.test.mjs browser.test.mjs demo.test.mjs
