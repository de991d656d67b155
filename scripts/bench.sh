#!/usr/bin/env bash
# The benchmark (docs/BENCHMARKS.md): builds the plugins and a release preheat,
# starts its own redis-server, and measures preheat against redis-benchmark,
# a raw pipelined client and a naive client, in one run. Prints the table and
# writes it into docs/BENCHMARKS.md. Not part of the test suite (too slow and
# too noisy for CI); tests/e2e/bench_smoke.rs runs it with tiny sizes.
#
# Sizes (environment; defaults in brackets):
#   BENCH_KEYS [1000000]        keys of the raw client and end-to-end runs
#   BENCH_NAIVE_KEYS [100000]   keys of the naive baseline
#   BENCH_CEILING_N [2000000]   redis-benchmark requests
#   BENCH_PRODUCE_KEYS [1000000] keys of the produce/enumerate cost loops
#   BENCH_RSS_SMALL [100000]    the small run of the memory comparison
#   BENCH_RSS_LARGE [10000000]  the large run of the memory comparison
#   BENCH_STARTUP_KEYS [1000]   keys of each start-up and hot-reload run
#   BENCH_REPEAT [5]            start-up and reload repetitions (median)
#   BENCH_VALUE_SIZE [200]      bytes per value
#   BENCH_ROUNDS [3]            interleaved rounds of the throughput rows (best kept)
#   BENCH_PRODUCE_BATCH [256]   keys per produce call in the produce-cost rows
#   BENCH_ONLY [all]            only these rows, e.g. BENCH_ONLY=2,4,5a (10a-10d: the Redis Cluster rows)
#   BENCH_OUT [docs/BENCHMARKS.md] file to update; "-" prints only
# A quick run (seconds): BENCH_KEYS=20000 BENCH_NAIVE_KEYS=2000 BENCH_CEILING_N=20000 \
#   BENCH_PRODUCE_KEYS=20000 BENCH_RSS_SMALL=2000 BENCH_RSS_LARGE=20000 BENCH_REPEAT=1 BENCH_ROUNDS=1 \
#   BENCH_OUT=- scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PREHEAT_SETUP_POSTGRES=0 source scripts/setup.sh

if ! command -v redis-benchmark >/dev/null 2>&1; then
  echo "bench: installing redis-tools (redis-benchmark)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-tools >/dev/null
fi

build_wasm plugins/Cargo.toml tests/fixtures/Cargo.toml
cargo build --release -p preheat
cargo bench -p preheat --bench bench
