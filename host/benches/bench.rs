//! `cargo bench -p preheat --bench bench` (or `scripts/bench.sh`, which also
//! builds the plugins): measures preheat against redis-benchmark, a raw
//! pipelined client and a naive client, prints the table and writes it into
//! docs/BENCHMARKS.md between the `bench:table` markers.
//!
//! Environment: `BENCH_KEYS`, `BENCH_NAIVE_KEYS`, `BENCH_CEILING_N`,
//! `BENCH_PRODUCE_KEYS`, `BENCH_RSS_SMALL`, `BENCH_RSS_LARGE`,
//! `BENCH_STARTUP_KEYS`, `BENCH_REPEAT`, `BENCH_VALUE_SIZE`, `BENCH_ROUNDS`,
//! `BENCH_ONLY`, `BENCH_PRODUCE_BATCH` (see [`suite::Sizes`]); `BENCH_OUT` = the markdown file to update
//! (`-` = print only); `BENCH_SYNTHETIC_WASM` = the plugin to use.

// Shared with the smoke test (tests/e2e/bench_smoke.rs), which uses other parts of it.
#[allow(dead_code)]
mod suite;

use std::path::{Path, PathBuf};

const START: &str = "<!-- bench:table:start -->";
const END: &str = "<!-- bench:table:end -->";

fn main() {
    // `cargo bench` passes `--bench`; anything else (a filter) is not supported.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository root");
    let wasm = std::env::var_os("BENCH_SYNTHETIC_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("plugins/target/wasm32-wasip2/release/synthetic.wasm"));
    if !wasm.exists() {
        eprintln!(
            "bench: {} is missing: build the plugins first (scripts/bench.sh does: cargo build --release --target wasm32-wasip2 --manifest-path plugins/Cargo.toml)",
            wasm.display()
        );
        std::process::exit(2);
    }
    let legacy_wasm = std::env::var_os("BENCH_LEGACY_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("tests/fixtures/target/wasm32-wasip2/release/legacy_v01.wasm"));
    let setup = suite::Setup {
        preheat_bin: PathBuf::from(env!("CARGO_BIN_EXE_preheat")),
        synthetic_wasm: wasm,
        legacy_wasm,
        sizes: suite::Sizes::from_env(),
    };
    eprintln!("bench: sizes {:?}", setup.sizes);
    let results = suite::run(&setup);
    let table = results.markdown();
    println!("{table}");

    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| repo.join("docs/BENCHMARKS.md").display().to_string());
    if out != "-" {
        // `cargo bench` runs this in host/: a relative path means one from the repository root.
        let path = repo.join(&out);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let block = format!("{START}\n{table}{END}");
        let new = match (old.find(START), old.find(END)) {
            (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + END.len()..]),
            _ => format!("{old}\n{block}\n"),
        };
        if let Err(e) = std::fs::write(&path, new) {
            eprintln!("bench: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("bench: table written to {}", path.display());
    }
    if results.rows.iter().any(|r| r.value.is_none()) {
        eprintln!("bench: some measurements failed (see the table)");
        std::process::exit(1);
    }
}
