#!/usr/bin/env bash
# Demo: builds the example plugins, creates the demo application database
# (SQLite), and warms the catalog and critical keys into a SQLite cache table
# with the deploy hook, printing the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
PREHEAT_SETUP_REDIS=0 PREHEAT_SETUP_POSTGRES=0 source scripts/setup.sh
build_wasm plugins/Cargo.toml
cargo build --quiet -p preheat
preheat=target/debug/preheat
"$preheat" demo --database sqlite://target/demo/app.db
"$preheat" deploy --config config/demo.toml "$@"
cat <<'TXT'

The warmed values are in target/demo/cache.db, table `cache` (key, value, expiration);
with the sqlite3 CLI (apt-get install sqlite3):
  sqlite3 target/demo/cache.db "SELECT key, length(value), datetime(expiration, 'unixepoch') FROM cache LIMIT 10"
Run history:  target/debug/preheat history --config config/demo.toml
TXT
