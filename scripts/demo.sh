#!/usr/bin/env bash
# Demo: builds the example plugins and warms config/demo.toml into the embedded
# memory backend (no server needed), printing the deploy summary.
set -euo pipefail
cd "$(dirname "$0")/.."
PREHEAT_SETUP_REDIS=0 PREHEAT_SETUP_POSTGRES=0 source scripts/setup.sh
build_wasm plugins/Cargo.toml
cargo run --quiet -p preheat -- deploy --config config/demo.toml "$@"
