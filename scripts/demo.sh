#!/usr/bin/env bash
# Demo: builds the example plugins, creates the demo application database
# (SQLite), warms the catalog and critical keys into a SQLite cache table in
# Laravel's database-store format with the deploy hook, printing the summary,
# then reads a key back with real Laravel (Debian's php-laravel-framework,
# installed when missing) and prints the command that does it. No server.
set -euo pipefail
cd "$(dirname "$0")/.."
PREHEAT_SETUP_REDIS=0 PREHEAT_SETUP_POSTGRES=0 PREHEAT_SETUP_BROWSER=0 PREHEAT_SETUP_READERS=laravel \
  source scripts/setup.sh
build_wasm plugins/Cargo.toml
cargo build --quiet -p preheat
preheat=target/debug/preheat
"$preheat" demo --database sqlite://target/demo/app.db
"$preheat" deploy --config config/demo.toml "$@"
read_back="php tests/readers/laravel_read.php --store database --db sqlite://target/demo/cache.db --table cache --cache-prefix laravel_cache --key categories/3/product_count --key system.settings"
echo
echo "Read back by Laravel 8.83's own DatabaseStore (Cache::get / Cache::has):"
$read_back
cat <<TXT

The warmed values are in target/demo/cache.db, table \`cache\` (key, value, expiration),
serialized the way Laravel's database cache store writes them. Read any key back with real Laravel:
  $read_back
With the sqlite3 CLI (apt-get install sqlite3):
  sqlite3 target/demo/cache.db "SELECT key, length(value), datetime(expiration, 'unixepoch') FROM cache LIMIT 10"
Run history:  target/debug/preheat history --config config/demo.toml
TXT
