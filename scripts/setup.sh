#!/usr/bin/env bash
# Installs what building and testing preheat needs, when it is missing:
# the wasm32-wasip2 Rust target, Debian's redis-server, postgresql and chromium,
# and the applications' own frameworks that read back what preheat warmed
# (Rails' ActiveSupport, Laravel's Illuminate, and python3-venv for Django,
# which the tests install from PyPI into a venv under target/).
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

if [ "${PREHEAT_SETUP_MEMCACHED:-1}" = 1 ] && ! command -v memcached >/dev/null 2>&1; then
  echo "preheat setup: installing memcached (Debian package; tests start their own servers)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq memcached >/dev/null
fi

# The dashboard test (tests/e2e/dashboard.rs) drives Debian's headless Chromium
# from Node (tests/browser/, playwright-core from npm, no browser download).
if [ "${PREHEAT_SETUP_BROWSER:-1}" = 1 ] && ! [ -x /usr/bin/chromium ]; then
  echo "preheat setup: installing chromium (Debian package; the dashboard test drives it headless)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi

# The framework readers (tests/readers/, run by tests/e2e/frameworks.rs and
# printed by demo.sh): Rails 6.1's RedisCacheStore (ruby-activesupport over
# ruby-redis) and MemCacheStore (over ruby-dalli), Laravel 8.83's cache stores
# (php-laravel-framework over php-redis, php-memcached, PDO SQLite and PDO
# PostgreSQL), and a Python venv for Django.
# PREHEAT_SETUP_READERS=laravel installs only what the demo needs.
if [ "${PREHEAT_SETUP_READERS:-all}" != 0 ]; then
  missing=()
  if [ "${PREHEAT_SETUP_READERS:-all}" = all ]; then
    command -v ruby >/dev/null 2>&1 || missing+=(ruby)
    ruby -e 'require "active_support"; require "active_support/cache"' >/dev/null 2>&1 || missing+=(ruby-activesupport)
    ruby -e 'require "redis"' >/dev/null 2>&1 || missing+=(ruby-redis)
    ruby -e 'require "dalli"' >/dev/null 2>&1 || missing+=(ruby-dalli)
    php -r 'exit(extension_loaded("memcached") ? 0 : 1);' >/dev/null 2>&1 || missing+=(php-memcached)
    php -r 'exit(extension_loaded("redis") ? 0 : 1);' >/dev/null 2>&1 || missing+=(php-redis)
    php -r 'exit(extension_loaded("pdo_pgsql") ? 0 : 1);' >/dev/null 2>&1 || missing+=(php-pgsql)
    venv_probe=$(mktemp -d)
    python3 -m venv "$venv_probe/v" >/dev/null 2>&1 || missing+=(python3-venv)
    rm -rf "$venv_probe"
  fi
  command -v php >/dev/null 2>&1 || missing+=(php-cli)
  [ -e /usr/share/php/Illuminate/autoload.php ] || missing+=(php-laravel-framework)
  php -r 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);' >/dev/null 2>&1 || missing+=(php-sqlite3)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "preheat setup: installing the framework readers (Debian packages: ${missing[*]})" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

build_wasm() {
  for manifest in "$@"; do
    cargo build --release --target wasm32-wasip2 --manifest-path "$manifest"
  done
}
