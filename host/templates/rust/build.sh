#!/bin/sh
# Builds {{name}} into out/{{name}}.wasm (written whole, then renamed, so a
# watching `lel-host run out/` swaps it in cleanly).
set -eu
cd "$(dirname "$0")"
command -v cargo >/dev/null 2>&1 || { echo "build.sh: needs Rust: https://rustup.rs" >&2; exit 1; }
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || {
  echo "build.sh: needs the wasm32 target: rustup target add wasm32-unknown-unknown" >&2; exit 1; }
# This project's own target/ (whatever CARGO_TARGET_DIR says elsewhere).
CARGO_TARGET_DIR="$PWD/target" cargo build --quiet --release --target wasm32-unknown-unknown
mkdir -p out
cp target/wasm32-unknown-unknown/release/{{crate_file}}.wasm out/.{{name}}.tmp
mv -f out/.{{name}}.tmp out/{{name}}.wasm
echo "built out/{{name}}.wasm"
