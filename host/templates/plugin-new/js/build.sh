#!/usr/bin/env bash
# Builds plugin.js into a WebAssembly component: target/__SNAKE__.wasm
#
# Needs node (20 or newer) and npm. Installs componentize-js and jco (pinned
# in package.json) into node_modules when missing; set COMPONENTIZE_JS to use
# another componentize-js binary.
set -euo pipefail
cd "$(dirname "$0")"

componentize_js=${COMPONENTIZE_JS:-node_modules/.bin/componentize-js}
if [ -z "${COMPONENTIZE_JS:-}" ] && [ ! -x "$componentize_js" ]; then
  echo "build: installing componentize-js and jco into node_modules" >&2
  npm install --no-audit --no-fund --loglevel=error
fi

mkdir -p target
# --disable http fetch-event: otherwise the component imports wasi:http,
# which preheat does not grant. Written beside the final name, then renamed:
# `preheat watch` never sees half a file.
"$componentize_js" plugin.js --wit wit --world-name plugin \
  --disable http fetch-event --out target/.__SNAKE__.wasm.tmp >/dev/null
mv -f target/.__SNAKE__.wasm.tmp target/__SNAKE__.wasm
echo "build: target/__SNAKE__.wasm" >&2
