#!/bin/sh
# Builds {{name}}.zig into out/{{name}}.wasm with Zig {{zig_version}} for
# wasm32-freestanding (written whole, then renamed, so a watching
# `lel-host run out/` swaps it in cleanly). Zig: $ZIG, else `zig`, else the
# PyPI package `ziglang` (python3 -m ziglang), else the copy lel-host's
# setup installed in {{tools}}/ziglang; the first that is {{zig_version}}.
set -eu
cd "$(dirname "$0")"
want={{zig_version}}
zig=""
try() { v=$("$@" version 2>/dev/null || true); [ "$v" = "$want" ]; }
if [ -n "${ZIG:-}" ] && try "$ZIG"; then zig="$ZIG"
elif command -v zig >/dev/null 2>&1 && try zig; then zig=zig
elif try python3 -m ziglang; then zig="python3 -m ziglang"
elif (PYTHONPATH="{{tools}}/ziglang"; export PYTHONPATH; try python3 -m ziglang); then
  PYTHONPATH="{{tools}}/ziglang"; export PYTHONPATH; zig="python3 -m ziglang"
else
  echo "build.sh: needs Zig $want: python3 -m pip install ziglang==$want (or set ZIG=/path/to/zig)" >&2
  exit 1
fi
mkdir -p out
$zig build-exe -target wasm32-freestanding -O ReleaseFast -fno-entry -fstrip -rdynamic \
  --dep lel -Mroot={{name}}.zig -Mlel=lel.zig -femit-bin=out/.{{name}}.tmp
mv -f out/.{{name}}.tmp out/{{name}}.wasm
echo "built out/{{name}}.wasm"
