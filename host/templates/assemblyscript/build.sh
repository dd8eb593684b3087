#!/bin/sh
# Builds {{name}}.ts into out/{{name}}.wasm with AssemblyScript (installed
# into node_modules by `npm ci` from package-lock.json on the first build),
# through the lel-transform.mjs adapter (written whole, then renamed, so a
# watching `lel-host run out/` swaps it in cleanly).
set -eu
cd "$(dirname "$0")"
command -v npm >/dev/null 2>&1 || { echo "build.sh: needs Node.js and npm: apt-get install nodejs npm" >&2; exit 1; }
[ -x node_modules/.bin/asc ] || npm ci --silent --no-audit --no-fund
mkdir -p out
node_modules/.bin/asc {{name}}.ts --transform ./lel-transform.mjs \
  --runtime stub -O3 --noAssert --use abort= -o out/.{{name}}.tmp
mv -f out/.{{name}}.tmp out/{{name}}.wasm
echo "built out/{{name}}.wasm"
