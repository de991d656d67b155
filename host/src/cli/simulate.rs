//! `preheat simulate`: replays an access trace against a simulated cache
//! under every warming strategy (none, static, reactive, seasonal-day,
//! seasonal-week, predictive, oracle) with the same budget, or writes a
//! generated trace of one of the regimes (`--generate`, `--regime`). The
//! model and the figures are in docs/USAGE.md.

use anyhow::{Context, Result};
use clap::Args;
use preheat_usage::event::{TraceReader, TraceWriter};
use preheat_usage::simulate::{generate, simulate as replay, GeneratorConfig, Regime, SimConfig, SimReport};
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
    /// Longest season the predictive strategy looks for: 1d (daily forecasters only) or 1w
    /// (daily and weekly); a whole number of days.
    #[arg(long, default_value_t = default_duration(SimConfig::default().season_ms))]
    season: humantime::Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    trace_model: Box<GenerateArgs>,
}

/// The generator's parameters (docs/USAGE.md explains the model and the regimes).
/// Each flag left out takes the regime's value.
#[derive(Debug, Args)]
#[command(next_help_heading = "Trace generation (with --generate)")]
struct GenerateArgs {
    /// The kind of traffic: families, meals, flash, drift, weekly, zipf or mix.
    #[arg(long, conflicts_with = "trace", default_value = "families")]
    regime: Regime,
    /// Distinct keys of the base population.
    #[arg(long, conflicts_with = "trace")]
    keys: Option<usize>,
    /// Days of traffic.
    #[arg(long, conflicts_with = "trace")]
    days: Option<u32>,
    /// Requests on an ordinary day (base traffic).
    #[arg(long, conflicts_with = "trace")]
    requests_per_day: Option<u64>,
    /// Zipf exponent of key popularity.
    #[arg(long, conflicts_with = "trace")]
    zipf: Option<f64>,
    /// Random seed: the same parameters and seed give the same trace.
    #[arg(long, conflicts_with = "trace")]
    seed: Option<u64>,
    /// Key families (prefixes), each peaking at its own hour with its own weekend factor.
    #[arg(long, conflicts_with = "trace")]
    groups: Option<usize>,
    /// Share of a key's traffic in its daily peak (the rest is flat).
    #[arg(long, conflicts_with = "trace")]
    seasonal_share: Option<f64>,
    /// Width (σ) of a key's daily peak, in hours.
    #[arg(long, conflicts_with = "trace")]
    peak_width: Option<f64>,
    /// Spread (σ) of a key's peak hour around its family's, in hours.
    #[arg(long, conflicts_with = "trace")]
    peak_jitter: Option<f64>,
    /// Families' weekend factors are drawn from 1 ± this.
    #[arg(long, conflicts_with = "trace")]
    weekend_spread: Option<f64>,
    /// Hours by which every daily peak moves at weekends.
    #[arg(long, conflicts_with = "trace")]
    weekend_shift: Option<f64>,
    /// Share of keys whose popularity grows from a random day on.
    #[arg(long, conflicts_with = "trace")]
    trending_share: Option<f64>,
    /// Daily growth factor of a trending key.
    #[arg(long, conflicts_with = "trace")]
    trend_growth: Option<f64>,
    /// σ of the log-normal per-key, per-hour rate noise.
    #[arg(long, conflicts_with = "trace")]
    noise: Option<f64>,
    /// Share of requests to uniformly random keys.
    #[arg(long, conflicts_with = "trace")]
    random_share: Option<f64>,
    /// Median latency recorded on a miss, in ms (0: none).
    #[arg(long, conflicts_with = "trace")]
    miss_latency_ms: Option<f64>,
    /// Flash crowds per day, each on brand-new keys.
    #[arg(long, conflicts_with = "trace")]
    flash_crowds_per_day: Option<f64>,
    /// Keys of one flash crowd.
    #[arg(long, conflicts_with = "trace")]
    flash_keys: Option<usize>,
    /// Hours a flash crowd lasts (its rate halves every hour).
    #[arg(long, conflicts_with = "trace")]
    flash_hours: Option<u32>,
    /// A crowd's first-hour requests relative to an ordinary hour's base traffic.
    #[arg(long, conflicts_with = "trace")]
    flash_share: Option<f64>,
    /// Keys born every day (daily drift).
    #[arg(long, conflicts_with = "trace")]
    drift_keys_per_day: Option<usize>,
    /// A day's new keys' requests on their first day, relative to the base traffic.
    #[arg(long, conflicts_with = "trace")]
    drift_share: Option<f64>,
    /// Factor by which a new key's popularity fades per day.
    #[arg(long, conflicts_with = "trace")]
    drift_fade: Option<f64>,
    /// Weekly sets of keys, set i hot on weekday i % 7 (0 = Monday).
    #[arg(long, conflicts_with = "trace")]
    weekly_sets: Option<usize>,
    /// Keys per weekly set.
    #[arg(long, conflicts_with = "trace")]
    weekly_keys: Option<usize>,
    /// Hour at which a weekly set turns hot.
    #[arg(long, conflicts_with = "trace")]
    weekly_hour: Option<u32>,
    /// Hours a weekly set stays hot.
    #[arg(long, conflicts_with = "trace")]
    weekly_hours: Option<u32>,
    /// A weekly set's requests per hour while hot, relative to an ordinary hour's base traffic.
    #[arg(long, conflicts_with = "trace")]
    weekly_share: Option<f64>,
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
                season_ms: millis(args.season),
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
    let mut config = GeneratorConfig {
        capacity: args.capacity,
        ttl_ms: millis(args.ttl),
        ..m.regime.config()
    };
    if let Some(value) = m.keys {
        config.keys = value;
    }
    if let Some(value) = m.days {
        config.days = value;
    }
    if let Some(value) = m.requests_per_day {
        config.requests_per_day = value;
    }
    if let Some(value) = m.zipf {
        config.zipf = value;
    }
    if let Some(value) = m.seed {
        config.seed = value;
    }
    if let Some(value) = m.groups {
        config.groups = value;
    }
    if let Some(value) = m.seasonal_share {
        config.seasonal_share = value;
    }
    if let Some(value) = m.peak_width {
        config.peak_width_hours = value;
    }
    if let Some(value) = m.peak_jitter {
        config.peak_jitter_hours = value;
    }
    if let Some(value) = m.weekend_spread {
        config.weekend_spread = value;
    }
    if let Some(value) = m.weekend_shift {
        config.weekend_shift_hours = value;
    }
    if let Some(value) = m.trending_share {
        config.trending_share = value;
    }
    if let Some(value) = m.trend_growth {
        config.trend_growth = value;
    }
    if let Some(value) = m.noise {
        config.noise = value;
    }
    if let Some(value) = m.random_share {
        config.random_share = value;
    }
    if let Some(value) = m.miss_latency_ms {
        config.miss_latency_ms = value;
    }
    if let Some(value) = m.flash_crowds_per_day {
        config.flash_crowds_per_day = value;
    }
    if let Some(value) = m.flash_keys {
        config.flash_keys = value;
    }
    if let Some(value) = m.flash_hours {
        config.flash_hours = value;
    }
    if let Some(value) = m.flash_share {
        config.flash_share = value;
    }
    if let Some(value) = m.drift_keys_per_day {
        config.drift_keys_per_day = value;
    }
    if let Some(value) = m.drift_share {
        config.drift_share = value;
    }
    if let Some(value) = m.drift_fade {
        config.drift_fade = value;
    }
    if let Some(value) = m.weekly_sets {
        config.weekly_sets = value;
    }
    if let Some(value) = m.weekly_keys {
        config.weekly_keys = value;
    }
    if let Some(value) = m.weekly_hour {
        config.weekly_hour = value;
    }
    if let Some(value) = m.weekly_hours {
        config.weekly_hours = value;
    }
    if let Some(value) = m.weekly_share {
        config.weekly_share = value;
    }
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
        "cache: {} keys, ttl {}; budget: {} keys per interval; predictive season: {}\n",
        c.capacity,
        duration(c.ttl_ms),
        c.budget,
        duration(c.season_ms)
    );
    let _ = writeln!(
        out,
        "{:<14} {:>11} {:>11} {:>9} {:>12} {:>11} {:>12}",
        "STRATEGY", "REQUESTS", "HITS", "HIT RATE", "KEYS WARMED", "WARMS USED", "WARMS WASTED"
    );
    for r in &report.strategies {
        let _ = writeln!(
            out,
            "{:<14} {:>11} {:>11} {:>8.2}% {:>12} {:>11} {:>12}",
            r.strategy.name(),
            r.requests,
            r.hits,
            100.0 * r.hit_rate,
            r.keys_warmed,
            r.warms_used,
            r.warms_wasted
        );
    }
    let share = report
        .predictive_share_of_oracle_uplift
        .map_or_else(|| "-".to_string(), |s| format!("{:.1}%", 100.0 * s));
    let _ = writeln!(out, "\npredictive share of the oracle's uplift over none: {share}");
    out
}
