#!/usr/bin/env bash
# Installs what building and testing preheat needs, when it is missing:
# the wasm32-wasip2 Rust target, Debian's redis-server, postgresql and chromium.
# Sourced by demo.sh and test.sh.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "preheat setup: need root to run: $*" >&2; return 1
  fi
}

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "preheat setup: installing the wasm32-wasip2 Rust target" >&2
  rustup target add wasm32-wasip2
fi

if [ "${PREHEAT_SETUP_REDIS:-1}" = 1 ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "preheat setup: installing redis-server (Debian package)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server >/dev/null
fi

if [ "${PREHEAT_SETUP_POSTGRES:-1}" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "preheat setup: installing postgresql (Debian package; tests start their own servers)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

# The dashboard test (tests/e2e/dashboard.rs) drives Debian's headless Chromium
# from Node (tests/browser/, playwright-core from npm, no browser download).
if [ "${PREHEAT_SETUP_BROWSER:-1}" = 1 ] && ! [ -x /usr/bin/chromium ]; then
  echo "preheat setup: installing chromium (Debian package; the dashboard test drives it headless)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi

build_wasm() {
  for manifest in "$@"; do
    cargo build --release --target wasm32-wasip2 --manifest-path "$manifest"
  done
}
