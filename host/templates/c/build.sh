#!/bin/sh
# Builds {{name}}.c into out/{{name}}.wasm with clang and lld, for wasm32,
# without libc (written whole, then renamed, so a watching
# `lel-host run out/` swaps it in cleanly).
set -eu
cd "$(dirname "$0")"
command -v clang >/dev/null 2>&1 || { echo "build.sh: needs clang: apt-get install clang lld" >&2; exit 1; }
command -v wasm-ld >/dev/null 2>&1 || { echo "build.sh: needs wasm-ld: apt-get install lld" >&2; exit 1; }
mkdir -p out
clang --target=wasm32 -O2 -std=c11 -Wall -Wextra \
  -ffreestanding -nostdlib -ffp-contract=off -mbulk-memory -mnontrapping-fptoint \
  -Wl,--no-entry -Wl,--strip-all -I . -o out/.{{name}}.tmp {{name}}.c
mv -f out/.{{name}}.tmp out/{{name}}.wasm
echo "built out/{{name}}.wasm"
