#!/usr/bin/env bash
# Builds the npm package `ringsession` into wasm/pkg (git-ignored), from the crate
# ringsession-wasm and the template folder wasm/npm:
#
#   wasm/pkg/package.json, README.md     from wasm/npm (version from the workspace Cargo.toml)
#   wasm/pkg/node/                       wasm-bindgen --target nodejs (CommonJS) + index.mjs (ESM)
#   wasm/pkg/web/                        wasm-bindgen --target web (ES module with `init`)
#
# Installs what it needs when missing: the wasm32-unknown-unknown target (rustup), wasm-bindgen-cli
# at the exact version that Cargo.lock pins (cargo install), and wasm-opt from npm `binaryen`
# (wasm/tools, optional: without it the .wasm is only larger).
#
# Environment: WASM_SIMD=0 builds without simd128 (for engines older than Chrome 91, Firefox 89,
# Safari 16.4, Node 16.4); WASM_OPT=0 skips wasm-opt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TARGET=wasm32-unknown-unknown
PROFILE=wasm
PKG=wasm/pkg
STAGE=target/wasm-bindgen
WASM_SIMD=${WASM_SIMD:-1}
WASM_OPT=${WASM_OPT:-1}

die() {
    echo "wasm/build.sh: $*" >&2
    exit 1
}

# ---- tools ---------------------------------------------------------------------------------------

command -v cargo >/dev/null || die "cargo is missing: install Rust with rustup (https://rustup.rs)"
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "installing the Rust target $TARGET"
    rustup target add "$TARGET" || die "could not install the Rust target $TARGET (rustup target add $TARGET)"
fi

# The CLI must be exactly the version of the wasm-bindgen crate in Cargo.lock, or the generated
# JS and the .wasm disagree.
WB_VERSION=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/[^0-9.]/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$WB_VERSION" ] || die "no wasm-bindgen entry in Cargo.lock (run: cargo generate-lockfile)"
WB_HAVE=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$WB_HAVE" != "$WB_VERSION" ]; then
    echo "installing wasm-bindgen-cli $WB_VERSION (Cargo.lock) over ${WB_HAVE:-none}"
    # No --locked: it can fail on a yanked dependency of the CLI.
    cargo install wasm-bindgen-cli --version "$WB_VERSION" ||
        die "could not install wasm-bindgen-cli $WB_VERSION (cargo install wasm-bindgen-cli --version $WB_VERSION)"
fi

# ---- compile -------------------------------------------------------------------------------------

FLAGS=${RUSTFLAGS:-}
# simd128 lets the core hash eight short keys side by side (getNodeMany).
[ "$WASM_SIMD" = 1 ] && FLAGS="$FLAGS -C target-feature=+simd128"
RUSTFLAGS="$FLAGS" cargo build -p ringsession-wasm --target "$TARGET" --profile "$PROFILE"
WASM=target/$TARGET/$PROFILE/ringsession_wasm.wasm

# ---- bind, optimise, assemble --------------------------------------------------------------------

rm -rf "$STAGE" "$PKG"
for t in nodejs web; do
    wasm-bindgen --target "$t" --out-dir "$STAGE/$t" --out-name ringsession \
        --remove-name-section --remove-producers-section "$WASM"
done
raw=$(wc -c <"$STAGE/web/ringsession_bg.wasm")

opt=""
if [ "$WASM_OPT" = 1 ]; then
    if [ ! -x wasm/tools/node_modules/.bin/wasm-opt ] && command -v npm >/dev/null; then
        echo "installing wasm-opt (npm binaryen) into wasm/tools"
        (cd wasm/tools && npm ci --no-audit --no-fund --loglevel=error) ||
            echo "wasm/build.sh: could not install npm binaryen; going on without wasm-opt" >&2
    fi
    if [ -x wasm/tools/node_modules/.bin/wasm-opt ]; then
        features=(--enable-reference-types --enable-multivalue --enable-bulk-memory
            --enable-mutable-globals --enable-nontrapping-float-to-int --enable-sign-ext)
        [ "$WASM_SIMD" = 1 ] && features+=(--enable-simd)
        for t in nodejs web; do
            wasm/tools/node_modules/.bin/wasm-opt -Oz --strip-producers --strip-target-features "${features[@]}" \
                "$STAGE/$t/ringsession_bg.wasm" -o "$STAGE/$t/ringsession_bg.wasm"
        done
        opt=$(wc -c <"$STAGE/web/ringsession_bg.wasm")
    else
        echo "wasm/build.sh: wasm-opt not available; the .wasm is not size-optimised" >&2
    fi
fi

node wasm/npm/assemble.mjs "$STAGE" "$PKG"

echo "ringsession.wasm: $raw bytes from wasm-bindgen$([ -n "$opt" ] && echo ", $opt bytes after wasm-opt -Oz")"
echo "npm package ready in $PKG"
