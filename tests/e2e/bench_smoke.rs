//! The benchmark suite (`host/benches`, docs/BENCHMARKS.md) with tiny sizes, so
//! its machinery cannot rot: every row must come back with a number. Timings
//! are not asserted (a debug build on a busy machine proves nothing).

#[path = "../../host/benches/suite/mod.rs"]
#[allow(dead_code)]
mod suite;

use crate::support;

#[test]
fn the_benchmark_produces_every_row_of_its_table() {
    let setup = suite::Setup {
        preheat_bin: env!("CARGO_BIN_EXE_preheat").into(),
        synthetic_wasm: support::plugin("synthetic"),
        legacy_wasm: support::fixture("legacy_v01"),
        sizes: suite::Sizes::smoke(),
    };
    let results = suite::run(&setup);
    let table = results.markdown();
    let ids: Vec<&str> = results.rows.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            "1", "1b", "2", "3", "4", "5a", "5b", "5c", "5f", "5g", "5d", "5e", "6a", "6b", "7a", "7b", "8a", "8b",
            "9a", "9b", "10a", "10b", "10c", "10d", "11a", "11b"
        ],
        "{table}"
    );
    for row in &results.rows {
        let value = row
            .value
            .unwrap_or_else(|| panic!("row {} has no figure: {}\n{table}", row.id, row.note));
        assert!(value.is_finite() && value > 0.0, "row {}: {value}\n{table}", row.id);
        assert!(table.contains(&format!("| {} | {}", row.id, row.what)), "{table}");
    }
    assert!(results.targets.iter().all(|t| t.met.is_some()), "{table}");
}
