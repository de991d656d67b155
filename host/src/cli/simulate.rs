//! `preheat simulate`: replays an access trace against a simulated cache
//! under every warming strategy (none, static, reactive, predictive, oracle)
//! with the same budget, or writes a generated seasonal trace
//! (`--generate`). The model and the figures are in docs/USAGE.md.

use anyhow::{Context, Result};
use clap::Args;
use preheat_usage::event::{TraceReader, TraceWriter};
use preheat_usage::simulate::{generate, simulate as replay, GeneratorConfig, SimConfig, SimReport};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// A duration flag's default, from the library's default in milliseconds.
fn default_duration(ms: u64) -> humantime::Duration {
    Duration::from_millis(ms).into()
}

/// Arguments of `preheat simulate`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["trace", "generate"])))]
pub(crate) struct SimulateArgs {
    /// Replay this trace: CSV `ts_ms,key,hit[,latency_ms]` or JSON lines, sorted by time.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write a generated seasonal trace to FILE (.csv, .jsonl or .ndjson) instead.
    #[arg(long, value_name = "FILE")]
    generate: Option<PathBuf>,
    /// Keys the simulated cache holds, LRU beyond (with --generate: the cache behind the hit column).
    #[arg(long, default_value_t = SimConfig::default().capacity)]
    capacity: usize,
    /// Lifetime of a cache entry (e.g. 1h, 30min).
    #[arg(long, default_value_t = default_duration(SimConfig::default().ttl_ms))]
    ttl: humantime::Duration,
    /// Keys each strategy may warm per interval.
    #[arg(long, default_value_t = SimConfig::default().budget)]
    budget: usize,
    /// Warming interval; must divide a day.
    #[arg(long, default_value_t = default_duration(SimConfig::default().interval_ms))]
    interval: humantime::Duration,
    /// Smallest expected benefit (chance the key is requested while not cached) worth a warm.
    #[arg(long, default_value_t = SimConfig::default().min_benefit)]
    min_benefit: f64,
    /// Learning period from the trace's start, not measured (static top-N is taken from it).
    #[arg(long, default_value_t = default_duration(SimConfig::default().warmup_ms))]
    warmup: humantime::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    trace_model: GenerateArgs,
}

/// The generator's parameters (docs/USAGE.md explains the model).
#[derive(Debug, Args)]
#[command(next_help_heading = "Trace generation (with --generate)")]
struct GenerateArgs {
    /// Distinct keys.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().keys)]
    keys: usize,
    /// Days of traffic.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().days)]
    days: u32,
    /// Requests on an ordinary day.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().requests_per_day)]
    requests_per_day: u64,
    /// Zipf exponent of key popularity.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().zipf)]
    zipf: f64,
    /// Random seed: the same parameters and seed give the same trace.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().seed)]
    seed: u64,
    /// Key families (prefixes), each peaking at its own hour with its own weekend factor.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().groups)]
    groups: usize,
    /// Share of a key's traffic in its daily peak (the rest is flat).
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().seasonal_share)]
    seasonal_share: f64,
    /// Width (σ) of a key's daily peak, in hours.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().peak_width_hours)]
    peak_width: f64,
    /// Spread (σ) of a key's peak hour around its family's, in hours.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().peak_jitter_hours)]
    peak_jitter: f64,
    /// Families' weekend factors are drawn from 1 ± this.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().weekend_spread)]
    weekend_spread: f64,
    /// Share of keys whose popularity grows from a random day on.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().trending_share)]
    trending_share: f64,
    /// Daily growth factor of a trending key.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().trend_growth)]
    trend_growth: f64,
    /// σ of the log-normal per-key, per-hour rate noise.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().noise)]
    noise: f64,
    /// Share of requests to uniformly random keys.
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().random_share)]
    random_share: f64,
    /// Median latency recorded on a miss, in ms (0: none).
    #[arg(long, conflicts_with = "trace", default_value_t = GeneratorConfig::default().miss_latency_ms)]
    miss_latency_ms: f64,
}

fn millis(d: humantime::Duration) -> u64 {
    Duration::from(d).as_millis() as u64
}

/// Runs `preheat simulate`.
pub(crate) fn simulate(args: SimulateArgs) -> Result<ExitCode> {
    match (&args.generate, &args.trace) {
        (Some(path), _) => write_trace(path, &args),
        (None, Some(path)) => {
            let config = SimConfig {
                capacity: args.capacity,
                ttl_ms: millis(args.ttl),
                budget: args.budget,
                interval_ms: millis(args.interval),
                warmup_ms: millis(args.warmup),
                min_benefit: args.min_benefit,
                ..SimConfig::default()
            };
            let report = replay(TraceReader::open(path)?.require_sorted(), &config)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        (None, None) => unreachable!("clap requires --trace or --generate"),
    }
}

fn write_trace(path: &Path, args: &SimulateArgs) -> Result<ExitCode> {
    let m = &args.trace_model;
    let config = GeneratorConfig {
        keys: m.keys,
        days: m.days,
        requests_per_day: m.requests_per_day,
        zipf: m.zipf,
        seed: m.seed,
        groups: m.groups,
        seasonal_share: m.seasonal_share,
        peak_width_hours: m.peak_width,
        peak_jitter_hours: m.peak_jitter,
        weekend_spread: m.weekend_spread,
        trending_share: m.trending_share,
        trend_growth: m.trend_growth,
        noise: m.noise,
        random_share: m.random_share,
        miss_latency_ms: m.miss_latency_ms,
        capacity: args.capacity,
        ttl_ms: millis(args.ttl),
        ..GeneratorConfig::default()
    };
    let mut writer = TraceWriter::create(path)?;
    let events = generate(&config, |event| writer.write(event))
        .with_context(|| format!("cannot generate the trace {}", path.display()))?;
    writer
        .finish()
        .with_context(|| format!("cannot write the trace {}", path.display()))?;
    eprintln!(
        "wrote {events} events ({} keys, {} days) to {}",
        config.keys,
        config.days,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The human report: the setup, one row per strategy, the predictive share.
fn render(report: &SimReport) -> String {
    let c = &report.config;
    let duration = |ms: u64| humantime::format_duration(Duration::from_millis(ms)).to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} events, {} keys, {} intervals of {} ({} measured after a warm-up of {})",
        report.events,
        report.keys,
        report.intervals,
        duration(c.interval_ms),
        report.measured_intervals,
        duration(c.warmup_ms)
    );
    let _ = writeln!(
        out,
        "cache: {} keys, ttl {}; budget: {} keys per interval\n",
        c.capacity,
        duration(c.ttl_ms),
        c.budget
    );
    let _ = writeln!(
        out,
        "{:<11} {:>11} {:>11} {:>9} {:>12} {:>11}",
        "STRATEGY", "REQUESTS", "HITS", "HIT RATE", "KEYS WARMED", "WARMS USED"
    );
    for r in &report.strategies {
        let _ = writeln!(
            out,
            "{:<11} {:>11} {:>11} {:>8.2}% {:>12} {:>11}",
            r.strategy.name(),
            r.requests,
            r.hits,
            100.0 * r.hit_rate,
            r.keys_warmed,
            r.warms_used
        );
    }
    let share = report
        .predictive_share_of_oracle_uplift
        .map_or_else(|| "-".to_string(), |s| format!("{:.1}%", 100.0 * s));
    let _ = writeln!(out, "\npredictive share of the oracle's uplift over none: {share}");
    out
}
