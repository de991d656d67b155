#!/usr/bin/env bash
# A short, bounded fuzz run of every parser of outside input (fuzz/fuzz_targets/,
# README.md "Fuzzing"): each target for FUZZ_SECONDS (default 20) from its
# committed seeds in fuzz/corpus/<target>/, on stable Rust (cargo-fuzz with
# `-s none`: libFuzzer and coverage only, no sanitizer, which needs nightly).
# Installs cargo-fuzz when missing. New inputs go to a scratch corpus that is
# thrown away; a crash, a failed assertion, a timeout or running out of memory
# fails the script, with the input kept in fuzz/artifacts/<target>/.
# FUZZ_TARGETS="glob cron" runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "preheat fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# --dev: the profile in fuzz/Cargo.toml (parsers optimised, debug assertions);
# -s none: no sanitizer, so no -Z flag and no nightly.
# The fuzz crate is linted as it is built: clippy-driver compiles the fuzz
# workspace's own crate (preheat itself is linted by test.sh), warnings denied.
export RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
dir=(--fuzz-dir fuzz)
build=(--dev -s none)
seconds=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-$(cargo fuzz list "${dir[@]}")}
cargo fuzz build "${dir[@]}" "${build[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $targets; do
  case $target in
    cron) max_len=256 ;;
    *) max_len=4096 ;;
  esac
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  # The scratch corpus comes first: libFuzzer adds new inputs to the first directory only.
  if ! cargo fuzz run "${dir[@]}" "${build[@]}" "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "preheat fuzz: target $target failed; the input is in fuzz/artifacts/$target/ (README.md \"Fuzzing\" says how to replay it)" >&2
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "preheat fuzz: $target: ${execs:-?} inputs in ${seconds}s, no failure"
done
