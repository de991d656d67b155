#!/usr/bin/env bash
# Builds app.py into a WebAssembly component: target/__SNAKE__.wasm
#
# Needs python3 (with venv). Installs componentize-py __COMPONENTIZE_PY_VERSION__ into .venv
# when missing; set COMPONENTIZE_PY to use another componentize-py binary.
set -euo pipefail
cd "$(dirname "$0")"

componentize_py=${COMPONENTIZE_PY:-.venv/bin/componentize-py}
if [ -z "${COMPONENTIZE_PY:-}" ] && [ ! -x "$componentize_py" ]; then
  echo "build: installing componentize-py __COMPONENTIZE_PY_VERSION__ into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --disable-pip-version-check --quiet "componentize-py==__COMPONENTIZE_PY_VERSION__"
fi

# Modules pip-installed into .venv are bundled into the component.
if [ -z "${VIRTUAL_ENV:-}" ] && [ -d .venv ]; then export VIRTUAL_ENV=$PWD/.venv; fi
mkdir -p target
# Written beside the final name, then renamed: `preheat watch` never sees half a file.
PYTHONDONTWRITEBYTECODE=1 "$componentize_py" --wit-path wit --world plugin --quiet \
  componentize app --python-path . --output target/.__SNAKE__.wasm.tmp
mv -f target/.__SNAKE__.wasm.tmp target/__SNAKE__.wasm
echo "build: target/__SNAKE__.wasm" >&2
