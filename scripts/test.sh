#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and end-to-end tests
# against real redis-servers, real PostgreSQL servers and real WebAssembly
# plugins, then a short fuzz run of the parsers (scripts/fuzz.sh). Installs the
# wasm32-wasip2 target, redis-server, postgresql and cargo-fuzz when they are
# missing. Ends with one line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --all -- --check
for ws in plugins tests/fixtures fuzz; do
  cargo fmt --manifest-path "$ws/Cargo.toml" --all -- --check
done
build_wasm plugins/Cargo.toml tests/fixtures/Cargo.toml
cargo clippy --workspace --all-targets -- -D warnings
for ws in plugins tests/fixtures; do
  cargo clippy --manifest-path "$ws/Cargo.toml" --release --target wasm32-wasip2 -- -D warnings
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The plugins' and fixtures' own unit tests run natively; then the host and SDK.
for ws in plugins tests/fixtures; do
  cargo test --manifest-path "$ws/Cargo.toml" 2>&1 | tee -a "$log"
done
cargo test --workspace 2>&1 | tee -a "$log"
# A short bounded fuzz run of every parser of outside input; a failure stops here.
./scripts/fuzz.sh
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$log"
