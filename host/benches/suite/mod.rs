//! The benchmark suite behind `cargo bench --bench bench` (and `scripts/bench.sh`):
//! it starts its own redis-server, measures preheat against the ceilings and
//! baselines of this machine, and renders one markdown table.
//!
//! Shared with the e2e smoke test (`tests/e2e/bench_smoke.rs`), which runs it
//! with tiny [`Sizes`] so the machinery cannot rot; nothing here asserts a
//! timing. Every measurement yields a [`Row`]; one that fails keeps its row,
//! with no value and the error in its note.

pub mod cluster;
pub mod memcached;
pub mod native;

use preheat::backend::{Backend, MemoryBackend};
use preheat::exec::{Producer, RunOptions, Warmer};
use preheat::runtime::{HostServices, KeySpec, LoadedPlugin, PluginLimits, Priority, RunContext, Runtime};
use preheat::support::Cancel;
use preheat::Config;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Pipelines in flight and keys per pipeline for the raw client baseline:
/// preheat's defaults (`concurrency = 8`, `batch_size = 256`).
const RAW_IN_FLIGHT: usize = 8;
const RAW_PIPELINE: u64 = 256;
/// Keys per `produce` call in the produce-cost measurement: preheat's default
/// batch size, or `BENCH_PRODUCE_BATCH`.
fn produce_batch() -> usize {
    std::env::var("BENCH_PRODUCE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(256)
}

/// A figure and its note, or why it could not be measured.
type Measured = Result<(f64, String), String>;

/// How much work each measurement does.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Requests for `redis-benchmark` (`BENCH_CEILING_N`).
    pub ceiling_requests: u64,
    /// Keys for the raw client baseline and the end-to-end runs (`BENCH_KEYS`).
    pub keys: u64,
    /// Keys for the naive baseline (`BENCH_NAIVE_KEYS`).
    pub naive_keys: u64,
    /// Keys produced in the produce-cost measurement (`BENCH_PRODUCE_KEYS`).
    pub produce_keys: u64,
    /// The small and the large run of the memory measurement (`BENCH_RSS_SMALL`, `BENCH_RSS_LARGE`).
    pub rss_small: u64,
    pub rss_large: u64,
    /// Keys per start-up and hot-reload run (`BENCH_STARTUP_KEYS`).
    pub startup_keys: u64,
    /// Repetitions of the start-up and hot-reload measurements; the median is reported (`BENCH_REPEAT`).
    pub repeat: usize,
    /// Bytes per value (`BENCH_VALUE_SIZE`).
    pub value_size: usize,
    /// Interleaved rounds of the throughput rows (1, 1b, 2, 4, 5a); the best is reported (`BENCH_ROUNDS`).
    pub rounds: usize,
    /// Only these rows (`BENCH_ONLY=4,5a`: ids from the table); all when `None`.
    pub only: Option<Vec<String>>,
}

impl Sizes {
    /// The full benchmark, with `BENCH_*` environment overrides.
    pub fn from_env() -> Sizes {
        let var = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .replace(['_', ','], "")
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
                Err(_) => default,
            }
        };
        Sizes {
            ceiling_requests: var("BENCH_CEILING_N", 2_000_000),
            keys: var("BENCH_KEYS", 1_000_000),
            naive_keys: var("BENCH_NAIVE_KEYS", 100_000),
            produce_keys: var("BENCH_PRODUCE_KEYS", 1_000_000),
            rss_small: var("BENCH_RSS_SMALL", 100_000),
            rss_large: var("BENCH_RSS_LARGE", 10_000_000),
            startup_keys: var("BENCH_STARTUP_KEYS", 1_000),
            repeat: var("BENCH_REPEAT", 5).max(1) as usize,
            value_size: var("BENCH_VALUE_SIZE", 200) as usize,
            rounds: var("BENCH_ROUNDS", 3).max(1) as usize,
            only: std::env::var("BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|id| id.trim().to_string()).collect()),
        }
    }

    /// Tiny sizes: every row in a few seconds (the smoke test).
    pub fn smoke() -> Sizes {
        Sizes {
            ceiling_requests: 2_000,
            keys: 2_000,
            naive_keys: 500,
            produce_keys: 2_000,
            rss_small: 1_000,
            rss_large: 4_000,
            startup_keys: 100,
            repeat: 1,
            value_size: 200,
            rounds: 1,
            only: None,
        }
    }
}

/// What to measure with.
pub struct Setup {
    /// The `preheat` binary (a release build for real figures).
    pub preheat_bin: PathBuf,
    /// `synthetic.wasm`, built from plugins/synthetic.
    pub synthetic_wasm: PathBuf,
    /// `legacy_v01.wasm`, built from tests/fixtures/legacy-v01: a plugin of
    /// interface 0.1, the baseline of the 0.2 boundary (row 5g).
    pub legacy_wasm: PathBuf,
    pub sizes: Sizes,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Short id (`1`, `5b`, …) the targets refer to.
    pub id: &'static str,
    pub what: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub note: String,
}

/// One target of issue 7, checked against the rows.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: &'static str,
    pub measured: Option<f64>,
    pub unit: &'static str,
    pub met: Option<bool>,
}

/// Everything one run measured.
pub struct Results {
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub machine: String,
    pub sizes: Sizes,
}

impl Results {
    /// The tables, as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Machine: {}", self.machine);
        let s = &self.sizes;
        let _ = writeln!(
            out,
            "\nSizes: {} keys × {} B (BENCH_KEYS, BENCH_VALUE_SIZE), naive {} keys, ceiling {} requests, produce {} keys, RSS {} vs {} keys, start-up and reload: median of {} runs of {} keys; throughput rows: best of {} interleaved rounds.\n",
            group(s.keys as f64),
            s.value_size,
            group(s.naive_keys as f64),
            group(s.ceiling_requests as f64),
            group(s.produce_keys as f64),
            group(s.rss_small as f64),
            group(s.rss_large as f64),
            s.repeat,
            group(s.startup_keys as f64),
            s.rounds
        );
        let _ = writeln!(out, "| # | Measurement | Result | Notes |");
        let _ = writeln!(out, "|---|---|---:|---|");
        for r in &self.rows {
            let value = match r.value {
                Some(v) => format!("{} {}", number(v), r.unit),
                None => "—".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.id,
                r.what,
                value,
                r.note.replace('|', "\\|")
            );
        }
        let _ = writeln!(out, "\n| Target | Measured | Met |");
        let _ = writeln!(out, "|---|---:|---|");
        for t in &self.targets {
            let measured = t
                .measured
                .map_or("—".to_string(), |v| format!("{} {}", number(v), t.unit));
            let met = match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(out, "| {} | {} | {} |", t.what, measured.trim_end(), met);
        }
        out
    }
}

/// `1234567.8` → `1,234,568`; small numbers keep two decimals.
fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        group(v)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// Runs every measurement and checks the targets.
pub fn run(setup: &Setup) -> Results {
    let s = &setup.sizes;
    let redis = RedisServer::start();
    let work = tempfile::tempdir().expect("a temporary directory");
    let cache = work.path().join("component-cache");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut rows = Vec::new();
    let wanted = |id: &str| s.only.as_ref().is_none_or(|only| only.iter().any(|o| o == id));
    fn skipped<T>() -> Result<T, String> {
        Err("not selected by BENCH_ONLY".to_string())
    }

    // Compile once so the timed runs load from the cache, as every run after the first does.
    let _ = rt.block_on(in_process_run(
        &run_config(
            &redis.backend_toml(),
            &cache,
            work.path(),
            &setup.synthetic_wasm,
            10,
            s.value_size,
        ),
        work.path(),
        false,
        10,
    ));
    redis.flush();
    let e2e = |native: bool| {
        let toml = run_config(
            &redis.backend_toml(),
            &cache,
            work.path(),
            &setup.synthetic_wasm,
            s.keys,
            s.value_size,
        );
        let result = rt.block_on(in_process_run(&toml, work.path(), native, s.keys));
        redis.flush();
        result
    };
    // The throughput rows run in interleaved rounds and keep each one's best, so a
    // burst of load from elsewhere on the machine does not decide a comparison.
    let mut samples: BTreeMap<&str, Vec<Measured>> = BTreeMap::new();
    for _ in 0..s.rounds {
        if wanted("1") {
            let r = ceiling(&redis, s.ceiling_requests, s.value_size).map(|v| (v, String::new()));
            samples.entry("1").or_default().push(r);
            redis.flush();
        }
        if wanted("1b") {
            let r = server_ceiling(&redis, s.ceiling_requests, s.value_size).map(|v| (v, String::new()));
            samples.entry("1b").or_default().push(r);
            redis.flush();
        }
        if wanted("2") {
            let r = rt
                .block_on(raw_client(&redis, s.keys, s.value_size))
                .map(|v| (v, String::new()));
            samples.entry("2").or_default().push(r);
            redis.flush();
        }
        if wanted("4") {
            samples.entry("4").or_default().push(e2e(false));
        }
        if wanted("5a") {
            samples.entry("5a").or_default().push(e2e(true));
        }
    }
    let mut best = |id: &str| samples.remove(id).map_or_else(skipped, best_of);

    if wanted("1") {
        push(
            &mut rows,
            "1",
            format!(
                "Ceiling: `redis-benchmark -t set -P 64 -c 8 -d {} -n {}` (one key, overwritten)",
                s.value_size, s.ceiling_requests
            ),
            "SET/s",
            best("1"),
        );
    }
    if wanted("1b") {
        push(
            &mut rows,
            "1b",
            format!(
                "Server ceiling for this workload: `redis-benchmark -P 64 -c 8 -r 100000000 SET <new key> <{} B> NX EX 3600`",
                s.value_size
            ),
            "SET/s",
            best("1b"),
        );
    }
    if wanted("2") {
        push(
            &mut rows,
            "2",
            format!(
                "Raw client: `redis` crate, pipelined `SET NX EX`, {RAW_IN_FLIGHT} pipelines × {RAW_PIPELINE} keys in flight"
            ),
            "keys/s",
            best("2"),
        );
    }
    if wanted("3") {
        push(
            &mut rows,
            "3",
            "Naive: one awaited `SET` per key".to_string(),
            "keys/s",
            rt.block_on(naive(&redis, s.naive_keys, s.value_size))
                .map(|v| (v, String::new())),
        );
        redis.flush();
    }
    let wasm_run = if wanted("4") { best("4") } else { skipped() };
    let native_run = if wanted("5a") { best("5a") } else { skipped() };
    let ratios = |keys_per_s: f64, rows: &[Row]| {
        let of = |id: &str| rows.iter().find(|r| r.id == id).and_then(|r| r.value);
        let mut parts = Vec::new();
        for (id, name) in [
            ("1", "ceiling"),
            ("1b", "server ceiling"),
            ("2", "raw client"),
            ("3", "naive"),
        ] {
            if let Some(base) = of(id) {
                parts.push(format!("{:.2} × {name}", keys_per_s / base));
            }
        }
        parts.join(", ")
    };
    if wanted("4") {
        let result = wasm_run
            .as_ref()
            .map(|(v, note)| (*v, format!("{}; {note}", ratios(*v, &rows))))
            .map_err(Clone::clone);
        push(
            &mut rows,
            "4",
            format!(
                "preheat end-to-end: `synthetic` WASM plugin → Redis, `if-missing`, {} keys × {} B",
                group(s.keys as f64),
                s.value_size
            ),
            "keys/s",
            result,
        );
    }
    if wanted("5a") {
        let result = native_run
            .as_ref()
            .map(|(n, note)| {
                let vs_wasm = match &wasm_run {
                    Ok((w, _)) => format!("{:.2} × the WASM run; ", n / w),
                    Err(_) => String::new(),
                };
                (*n, format!("{vs_wasm}{}; {note}", ratios(*n, &rows)))
            })
            .map_err(Clone::clone);
        push(
            &mut rows,
            "5a",
            "Same run, native Rust producer behind the same executor (no WASM)".to_string(),
            "keys/s",
            result,
        );
    }
    for (id, metered) in [("5b", true), ("5c", false)] {
        if !wanted(id) {
            continue;
        }
        push(
            &mut rows,
            id,
            format!(
                "`produce` cost, WASM, fuel + epoch {}: batches of {}",
                if metered { "on" } else { "off" },
                produce_batch()
            ),
            "ns/key",
            rt.block_on(produce_cost(
                &setup.synthetic_wasm,
                &cache,
                metered,
                s.produce_keys,
                s.value_size,
            ))
            .map(|(v, how)| {
                (
                    v,
                    format!("host + guest: lowering the keys, the guest's work, lifting the values; {how}"),
                )
            }),
        );
    }
    if wanted("5f") {
        push(
            &mut rows,
            "5f",
            format!(
                "`produce` cost, WASM, fuel + epoch on, `value_size = 0`: the boundary without the plugin's value work, batches of {}",
                produce_batch()
            ),
            "ns/key",
            rt.block_on(produce_cost(&setup.synthetic_wasm, &cache, true, s.produce_keys, 0)),
        );
    }
    if wanted("5g") {
        let packed = rows.iter().find(|r| r.id == "5f").and_then(|r| r.value);
        push(
            &mut rows,
            "5g",
            format!(
                "`produce` cost of an interface 0.1 plugin (fixture `legacy-v01`, the same per-key work), fuel + epoch on, `value_size = 0`: 0.1's boundary, one list entry per key each way, batches of {}",
                produce_batch()
            ),
            "ns/key",
            rt.block_on(produce_cost(&setup.legacy_wasm, &cache, true, s.produce_keys, 0)).map(|(v, how)| {
                let ratio = packed.map_or(String::new(), |p| format!("{:.2} × the 0.2 boundary (5f); ", v / p));
                (v, format!("{ratio}{how}"))
            }),
        );
    }
    if wanted("5d") {
        push(
            &mut rows,
            "5d",
            format!("`produce` cost, native producer: batches of {}", produce_batch()),
            "ns/key",
            rt.block_on(native_produce_cost(s.produce_keys, s.value_size)),
        );
    }
    if wanted("5e") {
        enumerate_cost(&rt, &setup.synthetic_wasm, &cache, s.produce_keys, &mut rows);
    }

    let rss = |keys| peak_rss(setup, &redis, &cache, work.path(), keys);
    let small = if wanted("6a") { rss(s.rss_small) } else { skipped() };
    let large = if wanted("6b") { rss(s.rss_large) } else { skipped() };
    let curve = match (&small, &large) {
        (Ok((a, _)), Ok((b, _))) => format!("{:.2} × the {}-key run", b / a, group(s.rss_small as f64)),
        _ => String::new(),
    };
    if wanted("6a") {
        push(
            &mut rows,
            "6a",
            format!("Peak RSS of `preheat run`, {} keys (Redis)", group(s.rss_small as f64)),
            "MB",
            small.map(|(mb, rate)| (mb, format!("{} keys/s", group(rate)))),
        );
    }
    if wanted("6b") {
        push(
            &mut rows,
            "6b",
            format!("Peak RSS of `preheat run`, {} keys (Redis)", group(s.rss_large as f64)),
            "MB",
            large.map(|(mb, rate)| (mb, format!("{curve}; {} keys/s", group(rate)))),
        );
    }
    for (id, cached) in [("7a", true), ("7b", false)] {
        if !wanted(id) {
            continue;
        }
        push(
            &mut rows,
            id,
            format!(
                "Start-up: `preheat deploy` process start → first key in Redis, {} the compile cache",
                if cached { "with" } else { "without" }
            ),
            "ms",
            startup(setup, &redis, work.path(), cached),
        );
    }
    let (same, new) = split(if wanted("8a") || wanted("8b") {
        hot_reload(setup, &redis, work.path())
    } else {
        skipped()
    });
    if wanted("8a") {
        push(
            &mut rows,
            "8a",
            "Hot reload: `.wasm` rewritten (same bytes) → `plugin reloaded` logged, debounce (100 ms) included".into(),
            "ms",
            same,
        );
    }
    if wanted("8b") {
        push(
            &mut rows,
            "8b",
            "Hot reload: new `.wasm` (compiled, not in the cache) → `plugin reloaded` logged, debounce included".into(),
            "ms",
            new,
        );
    }

    let (status, warm_key) = split(if wanted("9a") || wanted("9b") {
        serve_requests(setup, &redis, work.path())
    } else {
        skipped()
    });
    let ratio = match (&status, &warm_key) {
        (Ok((s, _)), Ok((w, _))) => format!("{:.1} × a status request; ", w / s),
        _ => String::new(),
    };
    if wanted("9a") {
        push(
            &mut rows,
            "9a",
            "`preheat serve`: `GET /cache/warming/status`, one request at a time".into(),
            "ms",
            status,
        );
    }
    if wanted("9b") {
        push(
            &mut rows,
            "9b",
            "`preheat serve`: `POST /cache/warming/warm-key`, one key (a recorded run: lock, job history, plugin call, Redis write)".into(),
            "ms",
            warm_key.map(|(ms, note)| (ms, format!("{ratio}{note}"))),
        );
    }

    if ["10a", "10b", "10c", "10d"].iter().any(|id| wanted(id)) {
        cluster_rows(setup, &rt, &cache, work.path(), &mut rows);
    }
    if wanted("11a") || wanted("11b") {
        memcached_rows(&rt, setup, &cache, work.path(), &wanted, &mut rows);
    }

    let value = |id: &str| rows.iter().find(|r| r.id == id).and_then(|r| r.value);
    let ratio = |a: &str, b: &str| Some(value(a)? / value(b)?);
    let target = |what, measured: Option<f64>, unit, ok: fn(f64) -> bool| Target {
        what,
        measured,
        unit,
        met: measured.map(ok),
    };
    let targets = vec![
        target("end-to-end ≥ 0.9 × raw client", ratio("4", "2"), "×", |v| v >= 0.9),
        target(
            "end-to-end ≥ 0.55 × redis-benchmark ceiling",
            ratio("4", "1"),
            "×",
            |v| v >= 0.55,
        ),
        target("end-to-end ≥ 30 × naive", ratio("4", "3"), "×", |v| v >= 30.0),
        target(
            "WASM end-to-end ≥ 0.95 × the native producer (4 vs 5a)",
            ratio("4", "5a"),
            "×",
            |v| v >= 0.95,
        ),
        target("boundary (5f) ≤ 100 ns per key", value("5f"), "ns", |v| v <= 100.0),
        target("host + WASM `produce` ≤ 0.5 µs per key", value("5b"), "ns", |v| {
            v <= 500.0
        }),
        target("peak RSS of the large run ≤ 150 MB", value("6b"), "MB", |v| {
            v <= 150.0
        }),
        target(
            "start to first write ≤ 50 ms with the compile cache",
            value("7a"),
            "ms",
            |v| v <= 50.0,
        ),
        target("`warm-key` ≤ 4 × a status request", ratio("9b", "9a"), "×", |v| {
            v <= 4.0
        }),
    ];
    drop(redis);
    Results {
        rows,
        targets,
        machine: machine(),
        sizes: s.clone(),
    }
}

/// Rows 11a and 11b: a raw client and preheat adding the same keys to one
/// memcached server, in interleaved rounds; the best round of each (by keys/s).
fn memcached_rows(
    rt: &tokio::runtime::Runtime,
    setup: &Setup,
    cache: &Path,
    dir: &Path,
    wanted: &dyn Fn(&str) -> bool,
    rows: &mut Vec<Row>,
) {
    let s = &setup.sizes;
    let server = memcached::MemcachedServer::start();
    let (mut raw, mut ours) = (Vec::new(), Vec::new());
    if let Ok(server) = &server {
        let backend = format!("kind = \"memcached\"\nservers = [\"{}\"]", server.address());
        let toml = run_config(&backend, cache, dir, &setup.synthetic_wasm, s.keys, s.value_size);
        for _ in 0..s.rounds {
            if wanted("11a") {
                raw.push(rt.block_on(memcached::raw_client(server, s.keys, s.value_size)));
                server.flush();
            }
            if wanted("11b") {
                ours.push(rt.block_on(in_process_run_with_cpu(&toml, dir, false, s.keys)).map(
                    |(keys_per_s, cpu_ns_per_key, _)| memcached::Figures {
                        keys_per_s,
                        cpu_ns_per_key,
                    },
                ));
                server.flush();
            }
        }
    }
    let best = |samples: Vec<Result<memcached::Figures, String>>| -> Result<memcached::Figures, String> {
        let first_error = samples.iter().find_map(|r| r.as_ref().err().cloned());
        samples
            .into_iter()
            .flatten()
            .max_by(|a, b| a.keys_per_s.total_cmp(&b.keys_per_s))
            .ok_or_else(|| first_error.unwrap_or_else(|| "no sample".into()))
    };
    let (raw, ours) = match &server {
        Ok(_) => (best(raw), best(ours)),
        Err(e) => (Err(e.clone()), Err(e.clone())),
    };
    let cpu = |f: &memcached::Figures| {
        format!(
            "client CPU {:.2} µs/key (getrusage user + sys)",
            f.cpu_ns_per_key / 1000.0
        )
    };
    if wanted("11a") {
        push(
            rows,
            "11a",
            "Raw memcached client: pipelined meta `ms <key> 200 T3600 ME` (add), 8 connections × 256 keys in flight, 1 memcached server".into(),
            "keys/s",
            raw.as_ref().map(|f| (f.keys_per_s, cpu(f))).map_err(Clone::clone),
        );
    }
    if wanted("11b") {
        let result = ours.map(|f| {
            let vs = match &raw {
                Ok(r) => format!(
                    "{:.2} × the raw client's keys/s, {:.2} × its CPU per key; ",
                    f.keys_per_s / r.keys_per_s,
                    f.cpu_ns_per_key / r.cpu_ns_per_key
                ),
                Err(_) => String::new(),
            };
            (f.keys_per_s, format!("{vs}{}", cpu(&f)))
        });
        push(
            rows,
            "11b",
            format!(
                "preheat end-to-end: `synthetic` WASM plugin → 1 memcached server, `if-missing`, {} keys × {} B",
                group(s.keys as f64),
                s.value_size
            ),
            "keys/s",
            result,
        );
    }
}

/// Rows 10a–10d: a three-master Redis Cluster, the raw cluster client and
/// preheat, in interleaved rounds (the best of each kept), against rows 2
/// and 4 (one server).
fn cluster_rows(setup: &Setup, rt: &tokio::runtime::Runtime, cache: &Path, dir: &Path, rows: &mut Vec<Row>) {
    let s = &setup.sizes;
    let bench = cluster::Bench::start();
    let rounds = (0..s.rounds)
        .map(|_| bench.round(rt, cache, dir, &setup.synthetic_wasm, s.keys, s.value_size))
        .collect();
    let cluster::Round { raw, preheat } = cluster::best(rounds);
    drop(bench);
    let one_server = |id: &str, rate: f64| {
        rows.iter()
            .find(|r| r.id == id)
            .and_then(|r| r.value)
            .map_or(String::new(), |base| {
                format!("{:.2} × one server (row {id}); ", rate / base)
            })
    };
    let masters = cluster::MASTERS;
    let raw_rate = raw
        .as_ref()
        .map(|(rate, _, note)| (*rate, format!("{}{note}", one_server("2", *rate))));
    let preheat_rate = preheat.as_ref().map(|(rate, _, note)| {
        let vs_raw = raw.as_ref().map_or(String::new(), |(r, _, _)| {
            format!("{:.2} × the raw cluster client; ", rate / r)
        });
        (*rate, format!("{vs_raw}{}{note}", one_server("4", *rate)))
    });
    push(
        rows,
        "10a",
        format!("Redis Cluster ({masters} masters), raw client: `redis` crate `ClusterConnection`, `SET NX EX` per key, {RAW_IN_FLIGHT} × {RAW_PIPELINE} in flight"),
        "keys/s",
        raw_rate.map_err(Clone::clone),
    );
    push(
        rows,
        "10b",
        format!(
            "Redis Cluster ({masters} masters), preheat end-to-end: `synthetic` WASM plugin → `kind = \"redis-cluster\"`, `if-missing`, {} keys × {} B",
            group(s.keys as f64),
            s.value_size
        ),
        "keys/s",
        preheat_rate.map_err(Clone::clone),
    );
    push(
        rows,
        "10c",
        "Redis Cluster: CPU time per key of the raw cluster client (process user + sys, `getrusage`)".into(),
        "µs",
        raw.as_ref()
            .map(|(_, cpu, _)| (cpu / 1000.0, String::new()))
            .map_err(Clone::clone),
    );
    let cpu_ratio = match (&preheat, &raw) {
        (Ok((_, p, _)), Ok((_, r, _))) => format!(
            "{:.2} × the raw cluster client's; the plugin's `produce` included",
            p / r
        ),
        _ => String::new(),
    };
    push(
        rows,
        "10d",
        "Redis Cluster: CPU time per key of preheat (process user + sys, `getrusage`)".into(),
        "µs",
        preheat.map(|(_, cpu, _)| (cpu / 1000.0, cpu_ratio)),
    );
}

/// The best (highest) of several throughput samples, noting them all.
fn best_of(samples: Vec<Measured>) -> Measured {
    let all: Vec<String> = samples
        .iter()
        .map(|r| r.as_ref().map_or("failed".to_string(), |(v, _)| number(*v)))
        .collect();
    let n = samples.len();
    let first_error = samples.iter().find_map(|r| r.as_ref().err().cloned());
    let best = samples
        .into_iter()
        .flatten()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .ok_or_else(|| first_error.unwrap_or_else(|| "no sample".into()))?;
    let note = match (n, best.1.is_empty()) {
        (1, _) => best.1,
        (_, true) => format!("best of {n}: {}", all.join(", ")),
        (_, false) => format!("{}; best of {n}: {}", best.1, all.join(", ")),
    };
    Ok((best.0, note))
}

/// Records one measurement (and says how it went on stderr).
fn push(rows: &mut Vec<Row>, id: &'static str, what: String, unit: &'static str, result: Measured) {
    let (value, note) = match result {
        Ok((v, note)) => {
            eprintln!("bench: {id} {what}: {} {unit}", number(v));
            (Some(v), note)
        }
        Err(e) => {
            eprintln!("bench: {id} {what} failed: {e}");
            (None, format!("failed: {e}"))
        }
    };
    rows.push(Row {
        id,
        what,
        value,
        unit,
        note,
    });
}

/// CPU model, core count, kernel, redis version.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let redis = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .and_then(|v| v.split_whitespace().find(|w| w.starts_with("v=")).map(str::to_string))
        .unwrap_or_default();
    format!(
        "{cores} cores ({model}), Linux {}, redis-server {}",
        kernel.trim(),
        redis.trim_start_matches("v=")
    )
}

/// The median of some samples.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

// ---------------------------------------------------------------- redis-server

/// A redis-server of our own on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (install it: apt-get install redis-server)");
        let server = RedisServer { child, port, _dir: dir };
        let started = Instant::now();
        while server.query::<String>(&redis::cmd("PING")).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "redis-server on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `[backend]` lines for this server.
    pub fn backend_toml(&self) -> String {
        format!("kind = \"redis\"\nurl = \"{}\"", self.url())
    }

    fn conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        cmd.query(&mut self.conn()?)
    }

    /// Deletes every key, so each measurement writes into an empty server.
    pub fn flush(&self) {
        self.query::<()>(redis::cmd("FLUSHALL").arg("SYNC"))
            .expect("FLUSHALL on the benchmark redis");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- 1–3: ceiling and baselines

/// `redis-benchmark … -q`: SET requests per second.
fn ceiling(redis: &RedisServer, requests: u64, value_size: usize) -> Result<f64, String> {
    redis_benchmark(
        redis,
        &["-t", "set", "-P", "64", "-c", "8", "-d", &value_size.to_string()],
        requests,
    )
}

/// `redis-benchmark` writing distinct keys (random in 10^8) with `SET NX EX`:
/// what the server itself can take of this workload, without any client library.
fn server_ceiling(redis: &RedisServer, requests: u64, value_size: usize) -> Result<f64, String> {
    let value = "x".repeat(value_size);
    let args = [
        "-P",
        "64",
        "-c",
        "8",
        "-r",
        "100000000",
        "SET",
        "bench:__rand_int__",
        &value,
        "NX",
        "EX",
        "3600",
    ];
    redis_benchmark(redis, &args, requests)
}

/// Runs `redis-benchmark -q` and returns its requests per second.
fn redis_benchmark(redis: &RedisServer, args: &[&str], requests: u64) -> Result<f64, String> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &redis.port.to_string(),
            "-q",
            "-n",
            &requests.to_string(),
        ])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run redis-benchmark ({e}); it ships with Debian's redis-tools"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress lines end in '\r'; the result is the last "<command>: N requests per second".
    text.split(['\r', '\n'])
        .filter_map(|l| l.split_once(" requests per second")?.0.rsplit(": ").next())
        .filter_map(|n| n.trim().parse::<f64>().ok())
        .next_back()
        .ok_or_else(|| format!("unexpected redis-benchmark output: {text:?}"))
}

async fn connect(redis: &RedisServer) -> Result<redis::aio::MultiplexedConnection, String> {
    redis::Client::open(redis.url())
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())
}

fn key(i: u64) -> String {
    format!("synthetic:{i}")
}

/// Pipelined `SET key value NX EX 3600`, several pipelines in flight on one
/// multiplexed connection, values built like the synthetic plugin's.
async fn raw_client(redis: &RedisServer, keys: u64, value_size: usize) -> Result<f64, String> {
    let conn = connect(redis).await?;
    let started = Instant::now();
    let clients = vec![conn; RAW_IN_FLIGHT];
    raw_writes(clients, keys, move |mut conn, range| async move {
        let mut pipe = redis::Pipeline::with_capacity(RAW_PIPELINE as usize);
        for i in range {
            pipe.add_command(raw_set(i, value_size));
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(|e| e.to_string())?;
        let written = replies.iter().filter(|v| matches!(v, redis::Value::Okay)).count() as u64;
        Ok((conn, written))
    })
    .await?;
    Ok(keys as f64 / started.elapsed().as_secs_f64())
}

/// `SET key value NX EX 3600` for key `i`, its value built like the synthetic plugin's.
fn raw_set(i: u64, value_size: usize) -> redis::Cmd {
    let (key, value) = (key(i), native::value(i, value_size));
    let mut cmd = redis::Cmd::with_capacity(6, key.len() + value.len() + 64);
    cmd.arg("SET").arg(key).arg(value).arg("NX").arg("EX").arg(3600);
    cmd
}

/// The raw clients' loop: keys `0..keys` handed out [`RAW_PIPELINE`] at a
/// time to one task per client, each sending its range with `send`, which
/// gives the client back with how many keys it wrote. Fails unless every key
/// was written.
async fn raw_writes<C, F, Fut>(clients: Vec<C>, keys: u64, send: F) -> Result<(), String>
where
    C: Send + 'static,
    F: Fn(C, std::ops::Range<u64>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(C, u64), String>> + Send,
{
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (next, send) = (next.clone(), send.clone());
            tokio::spawn(async move {
                let mut written = 0u64;
                loop {
                    let start = next.fetch_add(RAW_PIPELINE, Ordering::Relaxed);
                    if start >= keys {
                        return Ok::<u64, String>(written);
                    }
                    let (back, n) = send(client, start..keys.min(start + RAW_PIPELINE)).await?;
                    (client, written) = (back, written + n);
                }
            })
        })
        .collect();
    let mut written = 0;
    for t in tasks {
        written += t.await.map_err(|e| e.to_string())??;
    }
    if written != keys {
        return Err(format!("wrote {written} of {keys} keys"));
    }
    Ok(())
}

/// One `SET key value`, awaited, per key: what a hand-written warmer does.
async fn naive(redis: &RedisServer, keys: u64, value_size: usize) -> Result<f64, String> {
    let mut conn = connect(redis).await?;
    let started = Instant::now();
    for i in 0..keys {
        redis::cmd("SET")
            .arg(key(i))
            .arg(native::value(i, value_size))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(keys as f64 / started.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------- 4–5: preheat

/// A config running the synthetic plugin against the benchmark redis.
fn run_config(backend: &str, cache: &Path, state: &Path, wasm: &Path, keys: u64, value_size: usize) -> String {
    format!(
        r#"[run]
cache_dir = {cache:?}

[backend]
{backend}

[jobs]
state_dir = {state:?}

[[plugins]]
name = "synthetic"
path = {wasm:?}
key_prefixes = ["synthetic:"]
write_policy = "if-missing"

[plugins.settings]
keys = "{keys}"
value_size = "{value_size}"
"#,
        cache = cache.display().to_string(),
        state = state.join("state").display().to_string(),
        wasm = wasm.display().to_string(),
    )
}

/// One run through the library (`Warmer::execute`), timed from the call
/// (plugin load from the compile cache included) to the report: keys/s.
/// The note says how long `produce` calls took (p50/p99 per batch).
async fn in_process_run(toml: &str, dir: &Path, native: bool, keys: u64) -> Measured {
    in_process_run_with_cpu(toml, dir, native, keys)
        .await
        .map(|(rate, _, note)| (rate, note))
}

/// [`in_process_run`], also giving the process's CPU time (user + sys) per key in ns.
async fn in_process_run_with_cpu(
    toml: &str,
    dir: &Path,
    native: bool,
    keys: u64,
) -> Result<(f64, f64, String), String> {
    let config = Config::parse(toml, &dir.join("preheat.toml")).map_err(|e| format!("{e:#}"))?;
    let warmer = Warmer::new(config).map_err(|e| format!("{e:#}"))?;
    // Connected before the clock starts, as a long-lived process has it.
    warmer.backend().await.map_err(|e| format!("{e:#}"))?;
    if native {
        warmer.install_producer(Arc::new(native::NativeSynthetic::new("synthetic")));
    }
    let cpu = process_cpu_ns();
    let started = Instant::now();
    let report = warmer.execute(RunOptions::default()).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu_per_key = process_cpu_ns().saturating_sub(cpu) as f64 / keys as f64;
    if report.totals.written != keys {
        return Err(format!(
            "wrote {} of {keys} keys: {:?} {:?}",
            report.totals.written, report.totals, report.errors
        ));
    }
    let calls = report.plugins.first().map_or(String::new(), |p| {
        format!(
            "`produce` per batch p50 {} µs, p99 {} µs",
            p.produce_p50_us.unwrap_or(0),
            p.produce_p99_us.unwrap_or(0)
        )
    });
    Ok((keys as f64 / secs, cpu_per_key, calls))
}

/// CPU time of this process so far, every thread, user + sys
/// (`getrusage(RUSAGE_SELF)`), in ns.
pub(crate) fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

fn limits() -> PluginLimits {
    PluginLimits {
        fuel_per_call: 1_000_000_000,
        timeout: Duration::from_secs(10),
        memory_limit: 64 << 20,
    }
}

fn services() -> Arc<HostServices> {
    Arc::new(HostServices {
        plugin: "synthetic".into(),
        backend: Backend::Memory(Arc::new(MemoryBackend::new(1 << 20))),
        format: preheat::format::Format::Raw,
        key_prefixes: vec!["synthetic:".into()],
        max_value_bytes: 4 << 20,
        sources: BTreeMap::new(),
    })
}

fn context(value_size: usize) -> RunContext {
    RunContext {
        run_id: "bench".into(),
        strategy: "bench".into(),
        settings: vec![("value_size".into(), value_size.to_string())],
        shard: None,
    }
}

/// Batches of key specs, as the enumerator hands them to workers.
fn batches(value_size: usize) -> (RunContext, Vec<Vec<KeySpec>>) {
    let specs = (0..16 * produce_batch() as u64)
        .map(|i| KeySpec {
            key: key(i),
            priority: Priority::Normal,
            ttl_seconds: None,
            tags: Vec::new(),
            arg: None,
        })
        .collect::<Vec<_>>();
    let batches = specs.chunks(produce_batch()).map(<[KeySpec]>::to_vec).collect();
    (context(value_size), batches)
}

/// Time per key of `produce` calls on batches, through `LoadedPlugin::produce`
/// (instance checkout, fuel and deadline set-up, the call, result checks).
async fn produce_cost(wasm: &Path, cache: &Path, metered: bool, keys: u64, value_size: usize) -> Measured {
    let runtime = if metered {
        Runtime::new(cache.to_path_buf())
    } else {
        Runtime::new_unmetered(cache.to_path_buf())
    }
    .map_err(|e| format!("{e:#}"))?;
    let plugin = LoadedPlugin::load(&runtime, wasm, limits(), services()).map_err(|e| format!("{e:#}"))?;
    measure_produce(&plugin, keys, value_size).await
}

async fn native_produce_cost(keys: u64, value_size: usize) -> Measured {
    measure_produce(&native::NativeSynthetic::new("synthetic"), keys, value_size).await
}

async fn measure_produce(producer: &dyn Producer, keys: u64, value_size: usize) -> Measured {
    let (ctx, batches) = batches(value_size);
    let cancel = Cancel::default();
    for batch in &batches {
        producer
            .produce(&ctx, batch, &cancel)
            .await
            .map_err(|e| e.to_string())?;
    }
    let calls = (keys as usize).div_ceil(produce_batch()).max(1);
    let clock = CpuClock::start();
    for batch in batches.iter().cycle().take(calls) {
        let (results, _) = producer
            .produce(&ctx, batch, &cancel)
            .await
            .map_err(|e| e.to_string())?;
        if results.iter().any(Result::is_err) {
            return Err("produce failed a key".into());
        }
    }
    Ok(clock.per((calls * produce_batch()) as u64))
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, ns) and wall
/// time. The cost loops run on one thread without waiting, so CPU time is their
/// cost even when other processes compete for the cores; wall time is the fallback.
struct CpuClock {
    cpu: Option<u64>,
    wall: Instant,
}

impl CpuClock {
    fn now() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn start() -> CpuClock {
        CpuClock {
            cpu: CpuClock::now(),
            wall: Instant::now(),
        }
    }

    /// Nanoseconds per item since the start. The kernel updates a thread's CPU
    /// time at scheduler ticks, so short measurements use wall time.
    fn per(&self, items: u64) -> (f64, String) {
        let elapsed = self.wall.elapsed();
        let wall = elapsed.as_nanos() as f64 / items as f64;
        match (self.cpu, CpuClock::now()) {
            (Some(a), Some(b)) if b > a && elapsed >= Duration::from_millis(100) => (
                (b - a) as f64 / items as f64,
                format!("thread CPU time; wall {wall:.0} ns/key"),
            ),
            _ => (wall, "wall time".to_string()),
        }
    }
}

/// Time per key of `enumerate` (pages of 1000), WASM with fuel + epoch on.
fn enumerate_cost(rt: &tokio::runtime::Runtime, wasm: &Path, cache: &Path, keys: u64, rows: &mut Vec<Row>) {
    let result = rt.block_on(async {
        let runtime = Runtime::new(cache.to_path_buf()).map_err(|e| format!("{e:#}"))?;
        let plugin = LoadedPlugin::load(&runtime, wasm, limits(), services()).map_err(|e| format!("{e:#}"))?;
        let mut ctx = context(200);
        ctx.settings.push(("keys".into(), keys.to_string()));
        let cancel = Cancel::default();
        let clock = CpuClock::start();
        let mut cursor: Option<String> = None;
        let mut listed = 0u64;
        loop {
            let (page, _) = plugin
                .enumerate(&ctx, cursor.as_deref(), &cancel)
                .await
                .map_err(|e| e.to_string())?;
            let page = page?;
            listed += page.keys.len() as u64;
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if listed != keys {
            return Err(format!("listed {listed} of {keys} keys"));
        }
        Ok(clock.per(keys))
    });
    push(
        rows,
        "5e",
        "`enumerate` cost, WASM, fuel + epoch on: pages of 1,000".into(),
        "ns/key",
        result,
    );
}

// ---------------------------------------------------------------- 6–8: the binary

/// A workspace for one `preheat` process: its config file and report.
fn write_config(dir: &Path, name: &str, toml: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("creating a bench directory");
    let path = dir.join(name);
    std::fs::write(&path, toml).expect("writing a bench config");
    path
}

/// Peak RSS (MB) and keys/s of `preheat run` warming `keys` keys into Redis.
fn peak_rss(setup: &Setup, redis: &RedisServer, cache: &Path, dir: &Path, keys: u64) -> Result<(f64, f64), String> {
    let run_dir = dir.join(format!("rss-{keys}"));
    let toml = run_config(
        &redis.backend_toml(),
        cache,
        &run_dir,
        &setup.synthetic_wasm,
        keys,
        setup.sizes.value_size,
    );
    let config = write_config(&run_dir, "preheat.toml", &toml);
    let report = run_dir.join("report.json");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.arg("-v").arg(&setup.preheat_bin);
        c
    } else {
        Command::new(&setup.preheat_bin)
    };
    cmd.args(["run", "--quiet", "--config"])
        .arg(&config)
        .arg("--report")
        .arg(&report)
        .env_remove("PREHEAT_REDIS_URL")
        .env_remove("PREHEAT_CACHE_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start preheat: {e}"))?;
    // Without /usr/bin/time: poll the high-water mark until the process exits.
    let pid = child.id();
    let mut hwm_kb = 0u64;
    let stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if !time.exists() {
            if let Some(kb) = vm_hwm_kb(pid) {
                hwm_kb = hwm_kb.max(kb);
            }
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap_or_default();
    redis.flush();
    if !status.success() {
        return Err(format!("preheat run exited with {status}: {stderr}"));
    }
    if time.exists() {
        hwm_kb = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no maximum resident set size in: {stderr}"))?;
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let written = report["totals"]["written"].as_u64().unwrap_or(0);
    if written != keys {
        return Err(format!("wrote {written} of {keys} keys"));
    }
    let secs = report["duration_ms"].as_u64().unwrap_or(1).max(1) as f64 / 1000.0;
    Ok((hwm_kb as f64 / 1024.0, keys as f64 / secs))
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Median time from spawning `preheat deploy` to the first key appearing in
/// Redis (polled every 100 µs), with a warm or an empty compile cache. The job
/// store (SQLite) exists already, as on every deploy after the first.
fn startup(setup: &Setup, redis: &RedisServer, dir: &Path, cached: bool) -> Measured {
    let run_dir = dir.join(if cached { "startup-cached" } else { "startup-cold" });
    let mut conn = redis.conn().map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    // One unmeasured run creates the job store and fills the cache.
    for i in 0..=setup.sizes.repeat {
        let cache = if cached {
            run_dir.join("cache")
        } else {
            run_dir.join(format!("cache-{i}"))
        };
        let toml = run_config(
            &redis.backend_toml(),
            &cache,
            &run_dir,
            &setup.synthetic_wasm,
            setup.sizes.startup_keys,
            setup.sizes.value_size,
        );
        let config = write_config(&run_dir, "preheat.toml", &toml);
        redis.flush();
        let started = Instant::now();
        let mut child = preheat(setup, &["deploy", "--quiet"], &config)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start preheat: {e}"))?;
        let first_write = loop {
            let n: u64 = redis::cmd("DBSIZE").query(&mut conn).map_err(|e| e.to_string())?;
            if n > 0 {
                break started.elapsed();
            }
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("preheat deploy exited ({status}) before writing anything"));
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                return Err("no key written within 120 s".into());
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("preheat deploy exited with {status}"));
        }
        if i > 0 {
            samples.push(first_write.as_secs_f64() * 1000.0);
        }
    }
    let note = format!(
        "median of {}; min {:.1} ms",
        samples.len(),
        samples.iter().copied().fold(f64::INFINITY, f64::min)
    );
    Ok((median(samples), note))
}

/// Two figures measured together (reload: same bytes, then new bytes;
/// serve: status, then warm-key).
type TwoFigures = Result<((f64, String), (f64, String)), String>;

/// Two figures measured together as two rows' results (a failure fails both).
fn split(both: TwoFigures) -> (Measured, Measured) {
    match both {
        Ok((a, b)) => (Ok(a), Ok(b)),
        Err(e) => (Err(e.clone()), Err(e)),
    }
}

/// Median time from rewriting the plugin's `.wasm` to `preheat watch` logging
/// `plugin reloaded`: same bytes (compile cache hit), then new bytes (a custom
/// section appended, so it compiles).
fn hot_reload(setup: &Setup, redis: &RedisServer, dir: &Path) -> TwoFigures {
    let run_dir = dir.join("watch");
    std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    let wasm = run_dir.join("synthetic.wasm");
    let original = std::fs::read(&setup.synthetic_wasm).map_err(|e| e.to_string())?;
    std::fs::write(&wasm, &original).map_err(|e| e.to_string())?;
    let toml = run_config(
        &redis.backend_toml(),
        &run_dir.join("cache"),
        &run_dir,
        &wasm,
        setup.sizes.startup_keys,
        setup.sizes.value_size,
    );
    let config = write_config(&run_dir, "preheat.toml", &toml);
    let mut child = preheat(setup, &["watch", "--log-format", "json"], &config)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start preheat watch: {e}"))?;
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let wait_for = |needle: &str, timeout: Duration| -> Result<(Instant, String), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((at, line)) if line.contains(needle) => return Ok((at, line)),
                Ok(_) => {}
                Err(_) => return Err(format!("preheat watch did not log {needle:?} within {timeout:?}")),
            }
        }
    };
    let result = (|| {
        wait_for("watching the config and plugins", Duration::from_secs(120))?;
        let measure = |new_bytes: bool| -> Measured {
            let mut samples = Vec::new();
            let mut logged = Vec::new();
            for i in 0..setup.sizes.repeat {
                let bytes = if new_bytes {
                    with_custom_section(&original, &format!("bench-{i}-{:?}", Instant::now()))
                } else {
                    original.clone()
                };
                // Let the re-run of the previous reload finish first.
                std::thread::sleep(Duration::from_millis(300));
                while rx.try_recv().is_ok() {}
                let written = Instant::now();
                std::fs::write(&wasm, &bytes).map_err(|e| e.to_string())?;
                let (at, line) = wait_for("plugin reloaded", Duration::from_secs(120))?;
                samples.push(at.duration_since(written).as_secs_f64() * 1000.0);
                if let Some(ms) = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["fields"]["reload_ms"].as_u64())
                {
                    logged.push(ms as f64);
                }
            }
            let note = match logged.is_empty() {
                true => format!("median of {}", samples.len()),
                false => format!(
                    "median of {}; preheat's own `reload_ms` (first file event → live): {} ms",
                    samples.len(),
                    median(logged)
                ),
            };
            Ok((median(samples), note))
        };
        let same = measure(false)?;
        let new = measure(true)?;
        Ok((same, new))
    })();
    let _ = child.kill();
    let _ = child.wait();
    redis.flush();
    result
}

// ---------------------------------------------------------------- 9: serve requests

/// Median latency of `GET status`, then of `POST warm-key` (each key new, so
/// each is written), against a `preheat serve` of its own with the job history
/// on (SQLite), as an operator runs it; one request at a time.
fn serve_requests(setup: &Setup, redis: &RedisServer, dir: &Path) -> TwoFigures {
    let run_dir = dir.join("serve");
    std::fs::create_dir_all(&run_dir).map_err(|e| e.to_string())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let toml = run_config(
        &redis.backend_toml(),
        &run_dir.join("cache"),
        &run_dir,
        &setup.synthetic_wasm,
        setup.sizes.startup_keys,
        setup.sizes.value_size,
    );
    let config = write_config(&run_dir, "preheat.toml", &toml);
    let mut child = preheat(setup, &["serve", "--listen", &format!("127.0.0.1:{port}")], &config)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start preheat serve: {e}"))?;
    let base = format!("http://127.0.0.1:{port}/cache/warming");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let result = (|| {
        let up = Instant::now();
        while agent.get(format!("{base}/status")).call().is_err() {
            if up.elapsed() > Duration::from_secs(60) {
                return Err("preheat serve did not answer within 60 s".to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = || -> Result<f64, String> {
            let started = Instant::now();
            agent
                .get(format!("{base}/status"))
                .call()
                .map_err(|e| format!("status: {e}"))?;
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        };
        let warm_key = |i: usize| -> Result<f64, String> {
            // Past the enumerated range (synthetic builds any index), so never in Redis yet.
            let body = serde_json::json!({ "plugin": "synthetic", "key": format!("synthetic:{}", 1_000_000_000 + i) });
            let started = Instant::now();
            agent
                .post(format!("{base}/warm-key"))
                .send_json(&body)
                .map_err(|e| format!("warm-key: {e}"))?;
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        };
        let n = (setup.sizes.repeat * 40).max(20);
        // Unmeasured: the first run loads the plugin, the first request opens connections.
        for i in 0..5 {
            status()?;
            warm_key(n + i)?;
        }
        let mut statuses = Vec::new();
        let mut warm_keys = Vec::new();
        for i in 0..n {
            statuses.push(status()?);
            warm_keys.push(warm_key(i)?);
        }
        let note = |v: &[f64]| {
            let mut sorted = v.to_vec();
            sorted.sort_by(f64::total_cmp);
            format!(
                "median of {n}, interleaved; p90 {:.2} ms",
                sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)]
            )
        };
        let (s_note, w_note) = (note(&statuses), note(&warm_keys));
        Ok(((median(statuses), s_note), (median(warm_keys), w_note)))
    })();
    let _ = child.kill();
    let _ = child.wait();
    redis.flush();
    result
}

/// `preheat <args> --config <config>`, stdout discarded, without the
/// environment variables that would override the config.
fn preheat(setup: &Setup, args: &[&str], config: &Path) -> Command {
    let mut command = Command::new(&setup.preheat_bin);
    command.args(args).arg("--config").arg(config);
    for var in [
        "PREHEAT_REDIS_URL",
        "PREHEAT_CACHE_DIR",
        "PREHEAT_SKIP",
        "PREHEAT_API_TOKEN",
    ] {
        command.env_remove(var);
    }
    command.stdout(Stdio::null());
    command
}

/// A component with a custom section appended: the same program, different bytes.
fn with_custom_section(component: &[u8], payload: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"preheat-bench";
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}
