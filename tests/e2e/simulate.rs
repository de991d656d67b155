//! `preheat simulate`: generate a seasonal trace, replay it under every
//! warming strategy, and read the report as JSON and as a table.

use crate::support::*;
use serde_json::Value;

const REPLAY: [&str; 6] = ["--capacity", "1000", "--budget", "200", "--ttl", "4h"];

#[test]
fn on_a_generated_seasonal_trace_predictive_beats_static_and_reactive() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    let trace = trace.to_str().unwrap();
    let out = preheat_plain(&[
        "simulate",
        "--generate",
        trace,
        "--keys",
        "2000",
        "--days",
        "4",
        "--requests-per-day",
        "40000",
        "--capacity",
        "1000",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("events (2000 keys, 4 days) to"), "{stderr}");
    let text = std::fs::read_to_string(trace).unwrap();
    assert!(text.starts_with("ts_ms,key,hit,latency_ms\n"), "{}", &text[..100]);

    let mut args = vec!["simulate", "--trace", trace, "--json"];
    args.extend(REPLAY);
    let out = preheat_plain(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"].as_u64(), Some(text.lines().count() as u64 - 1));
    assert_eq!(report["keys"], 2000);
    assert_eq!(
        (report["intervals"].as_u64(), report["measured_intervals"].as_u64()),
        (Some(96), Some(72))
    );
    assert_eq!(report["config"]["budget"], 200);
    assert_eq!(report["config"]["ttl_ms"], 4 * 3_600_000);
    let strategies = report["strategies"].as_array().unwrap();
    let names: Vec<&str> = strategies.iter().map(|s| s["strategy"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "none",
            "static",
            "reactive",
            "seasonal-day",
            "seasonal-week",
            "predictive",
            "oracle"
        ]
    );
    assert_eq!(report["config"]["season_ms"], 7 * 86_400_000u64);
    let requests = strategies[0]["requests"].as_u64().unwrap();
    for s in strategies {
        assert_eq!(s["requests"].as_u64(), Some(requests), "{s}");
        let (hits, warmed, used, wasted) = (
            s["hits"].as_u64().unwrap(),
            s["keys_warmed"].as_u64().unwrap(),
            s["warms_used"].as_u64().unwrap(),
            s["warms_wasted"].as_u64().unwrap(),
        );
        assert!(hits <= requests && used + wasted <= warmed && warmed <= 72 * 200, "{s}");
        assert!((s["hit_rate"].as_f64().unwrap() - hits as f64 / requests as f64).abs() < 1e-12);
    }
    let rate = |name: &str| {
        strategies.iter().find(|s| s["strategy"] == name).unwrap()["hit_rate"]
            .as_f64()
            .unwrap()
    };
    assert!(
        rate("predictive") > rate("static") && rate("predictive") > rate("reactive"),
        "{}",
        serde_json::to_string_pretty(strategies).unwrap()
    );
    assert!(rate("oracle") > rate("predictive") && rate("none") < rate("static"));
    let share = report["predictive_share_of_oracle_uplift"].as_f64().unwrap();
    let expected = (rate("predictive") - rate("none")) / (rate("oracle") - rate("none"));
    assert!(
        (share - expected).abs() < 1e-12 && share > 0.0 && share < 1.0,
        "{share}"
    );

    let mut args = vec!["simulate", "--trace", trace];
    args.extend(REPLAY);
    let out = preheat_plain(&args);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for name in names {
        assert!(table.lines().any(|l| l.starts_with(name)), "{table}");
    }
    assert!(
        table.contains(&format!(
            "predictive share of the oracle's uplift over none: {:.1}%",
            100.0 * share
        )),
        "{table}"
    );
}

#[test]
fn a_malformed_trace_is_reported_with_its_line_and_generator_flags_need_generate() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.csv");
    std::fs::write(&trace, "ts_ms,key,hit\n1000,a,1\n2000,b,yes\n").unwrap();
    let out = preheat_plain(&["simulate", "--trace", trace.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.csv: line 3: hit must be 0 or 1, got \"yes\""),
        "{stderr}"
    );

    let out = preheat_plain(&["simulate", "--trace", trace.to_str().unwrap(), "--keys", "10"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'--trace <FILE>' cannot be used with '--keys <KEYS>'"));

    let out = preheat_plain(&["simulate", "--generate", "x.csv", "--regime", "hourly"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown regime \"hourly\"; the regimes are: families, meals, flash, drift, weekly, zipf, mix"),
        "{stderr}"
    );
    let out = preheat_plain(&["simulate", "--trace", trace.to_str().unwrap(), "--season", "36h"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the season (129600000 ms) must be a whole number of days (1d, 1w)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_regime_shapes_the_generated_trace_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("weekly.jsonl");
    // Weekly sets over a small base: set 0 is hot on Monday 2024-01-01 from 08:00 to 10:00 only.
    let out = preheat_plain(&[
        "simulate",
        "--generate",
        trace.to_str().unwrap(),
        "--regime",
        "weekly",
        "--keys",
        "500",
        "--days",
        "2",
        "--requests-per-day",
        "20000",
        "--weekly-keys",
        "50",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&trace).unwrap();
    let newsletter: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["key"].as_str().unwrap().starts_with("newsletter0:"))
        .collect();
    assert!(newsletter.len() > 500, "{}", newsletter.len());
    let t0 = 1_704_067_200_000u64;
    for e in &newsletter {
        let ts = e["ts_ms"].as_u64().unwrap();
        assert!((t0 + 8 * 3_600_000..t0 + 10 * 3_600_000).contains(&ts), "{e}");
        let index: usize = e["key"].as_str().unwrap()["newsletter0:".len()..].parse().unwrap();
        assert!(index < 50, "{e}");
    }
}
