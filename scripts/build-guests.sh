#!/usr/bin/env bash
# Builds the example plugins written in Python and JavaScript into
# WebAssembly components, installing the (pinned) tools when they are missing:
#
#   plugins/python-critical-keys  --componentize-py-->  plugins/target/guests/python_critical_keys.wasm
#   plugins/js-critical-keys      --componentize-js-->  plugins/target/guests/js_critical_keys.wasm
#
# Usage: scripts/build-guests.sh [all|python|js]...   (default: all)
#
# Tools:
#   componentize-py (PyPI), in a virtualenv at target/guest-tools/venv
#   @bytecodealliance/componentize-js and jco (npm), in
#   plugins/js-critical-keys/node_modules, at the versions of its committed
#   package-lock.json
#
# A component is rebuilt only when its sources, the WIT, the lock file or this
# script changed since the last build (PREHEAT_GUESTS_FORCE=1 rebuilds anyway).
# Each .wasm is written next to its final name and renamed into place, so a
# watching `preheat watch` never reads a half-written file. Concurrent runs
# (parallel test processes) wait for each other on a lock file.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

COMPONENTIZE_PY_VERSION=0.25.1
VENV=$ROOT/target/guest-tools/venv
OUT=$ROOT/plugins/target/guests
WIT=$ROOT/wit/0.2

log() { echo "build-guests: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$OUT" "$ROOT/target/guest-tools"
exec 9>"$ROOT/target/guest-tools/build.lock"
flock 9

# up_to_date OUTPUT INPUT...: the output exists and no input is newer.
up_to_date() {
  local output=$1
  shift
  [ "${PREHEAT_GUESTS_FORCE:-0}" = 1 ] && return 1
  [ -f "$output" ] || return 1
  [ -z "$(find "$@" -newer "$output" -print -quit)" ]
}

# install_into TMP FINAL: renames a finished build into place.
install_into() {
  [ -s "$1" ] || die "the build produced no component at $1"
  mv -f "$1" "$2"
}

elapsed_since() { echo "$(($(date +%s%N) / 1000000 - $1))ms"; }
now_ms() { echo "$(($(date +%s%N) / 1000000))"; }

ensure_componentize_py() {
  local want="componentize-py $COMPONENTIZE_PY_VERSION"
  if [ -x "$VENV/bin/componentize-py" ] && [ "$("$VENV/bin/componentize-py" --version 2>/dev/null)" = "$want" ]; then
    return
  fi
  command -v python3 >/dev/null || die "python3 is needed to install componentize-py (apt-get install python3 python3-venv)"
  log "installing componentize-py $COMPONENTIZE_PY_VERSION into $VENV"
  python3 -m venv "$VENV" || die "cannot create a virtualenv at $VENV (apt-get install python3-venv)"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
}

build_python() {
  local src=$ROOT/plugins/python-critical-keys
  local out=$OUT/python_critical_keys.wasm
  # The tool is ensured even when the component is up to date: `plugin new`'s
  # Python scaffold builds with it (target/ may have been cleaned since).
  ensure_componentize_py
  if up_to_date "$out" "$src/critical_keys.py" "$WIT" "$0"; then
    log "python: $out is up to date"
    return
  fi
  local started tmp
  started=$(now_ms)
  tmp=$OUT/.python_critical_keys.$$.wasm
  # VIRTUAL_ENV pins the site-packages componentize-py searches to our venv.
  VIRTUAL_ENV=$VENV PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/componentize-py" \
    --wit-path "$WIT" --world plugin --quiet \
    componentize critical_keys --python-path "$src" --output "$tmp"
  install_into "$tmp" "$out"
  log "python: built $out in $(elapsed_since "$started")"
}

ensure_js_tools() {
  local dir=$ROOT/plugins/js-critical-keys
  command -v node >/dev/null || die "node (20 or newer) and npm are needed to build the JavaScript plugin"
  # npm writes node_modules/.package-lock.json; reinstall when the lock file is newer.
  # `npm install` (which installs the versions in package-lock.json), not `npm ci`:
  # jco-node-fs 0.3.2 lists optional per-platform packages that were never
  # published, which npm install skips but npm ci reports as "Missing: ... from lock file".
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing componentize-js and jco into $dir/node_modules (npm install, from package-lock.json)"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
}

build_js() {
  local dir=$ROOT/plugins/js-critical-keys
  local out=$OUT/js_critical_keys.wasm
  # Ensured even when the component is up to date: the JS scaffold builds with them.
  ensure_js_tools
  if up_to_date "$out" "$dir/critical-keys.js" "$dir/package-lock.json" "$WIT" "$0"; then
    log "js: $out is up to date"
    return
  fi
  local started tmp
  started=$(now_ms)
  tmp=$OUT/.js_critical_keys.$$.wasm
  # --disable http fetch-event: StarlingMonkey would otherwise import
  # wasi:http/types and wasi:http/outgoing-handler, which preheat does not grant.
  (cd "$dir" && node_modules/.bin/componentize-js critical-keys.js \
    --wit "$WIT" --world-name plugin --disable http fetch-event --out "$tmp" >/dev/null)
  install_into "$tmp" "$out"
  log "js: built $out in $(elapsed_since "$started")"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(all)
for target in "${targets[@]}"; do
  case $target in
    all) build_python; build_js ;;
    python) build_python ;;
    js) build_js ;;
    *) die "unknown guest '$target' (expected all, python or js)" ;;
  esac
done
