#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and end-to-end tests
# against real redis-servers and real WebAssembly plugins. Installs the
# wasm32-wasip2 target and redis-server when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

cargo fmt --all -- --check
for ws in plugins tests/fixtures; do
  cargo fmt --manifest-path "$ws/Cargo.toml" --all -- --check
done
build_wasm plugins/Cargo.toml tests/fixtures/Cargo.toml
cargo clippy --workspace --all-targets -- -D warnings
for ws in plugins tests/fixtures; do
  cargo clippy --manifest-path "$ws/Cargo.toml" --release --target wasm32-wasip2 -- -D warnings
done
cargo test --workspace
# The plugins' and fixtures' own unit tests run natively.
for ws in plugins tests/fixtures; do
  cargo test --manifest-path "$ws/Cargo.toml"
done
