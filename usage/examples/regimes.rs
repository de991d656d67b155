//! The table of docs/USAGE.md: every trace regime of the generator under the five
//! simulator configurations, each strategy's hit rate, and where predictive stands
//! against the best baseline (static, reactive, seasonal-day, seasonal-week).
//!
//! ```sh
//! cargo run --release -p preheat-usage --example regimes -- [SEED…] [--regime NAME…] [--config LABEL…] [--days N]
//! ```
//!
//! Seeds default to 1, regimes to all but `families`, configurations (by label, e.g.
//! `defaults`) to all five; each regime's trace is generated in memory once per seed.
//! `--days` replaces the regimes' length in days (to time a longer replay).

use anyhow::{Context, Result};
use preheat_usage::simulate::{generate, simulate, Regime, SimConfig, Strategy};
use preheat_usage::AccessEvent;
use std::time::Instant;

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// The five configurations: their label and settings.
fn configurations() -> Vec<(&'static str, SimConfig)> {
    let defaults = SimConfig::default();
    vec![
        ("defaults", defaults),
        (
            "--budget 500",
            SimConfig {
                budget: 500,
                ..defaults
            },
        ),
        (
            "--interval 15min --budget 500",
            SimConfig {
                budget: 500,
                interval_ms: HOUR_MS / 4,
                ..defaults
            },
        ),
        (
            "--capacity 5000",
            SimConfig {
                capacity: 5000,
                ..defaults
            },
        ),
        (
            "--warmup 8d",
            SimConfig {
                warmup_ms: 8 * DAY_MS,
                ..defaults
            },
        ),
    ]
}

fn main() -> Result<()> {
    let mut seeds = Vec::new();
    let mut regimes = Vec::new();
    let mut labels = Vec::new();
    let mut days = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--regime" {
            regimes.push(args.next().context("--regime needs a name")?.parse::<Regime>()?);
        } else if arg == "--days" {
            days = Some(args.next().context("--days needs a number")?.parse::<u32>()?);
        } else if arg == "--config" {
            labels.push(args.next().context("--config needs a label")?);
        } else {
            seeds.push(arg.parse::<u64>().with_context(|| format!("not a seed: {arg}"))?);
        }
    }
    if seeds.is_empty() {
        seeds.push(1);
    }
    if regimes.is_empty() {
        regimes = Regime::ALL.iter().copied().filter(|&r| r != Regime::Families).collect();
    }
    let rated = [Strategy::None]
        .into_iter()
        .chain(Strategy::BASELINES)
        .chain([Strategy::Predictive, Strategy::Oracle]);
    let header: Vec<&str> = rated.clone().map(Strategy::name).collect();
    println!(
        "| seed | regime | configuration | {} | predictive − best baseline | warms used / wasted (predictive) |",
        header.join(" | ")
    );
    println!("|{}", "---|".repeat(header.len() + 5));
    for &seed in &seeds {
        for &regime in &regimes {
            let started = Instant::now();
            let config = regime.config();
            let generator = preheat_usage::simulate::GeneratorConfig {
                seed,
                days: days.unwrap_or(config.days),
                ..config
            };
            let mut events: Vec<AccessEvent> = Vec::new();
            generate(&generator, |e| {
                events.push(e.clone());
                Ok(())
            })?;
            let keys = events
                .iter()
                .map(|e| e.key.as_str())
                .collect::<std::collections::HashSet<_>>()
                .len();
            eprintln!(
                "{} seed {seed}: {} events, {keys} keys, generated in {:.1}s",
                regime.name(),
                events.len(),
                started.elapsed().as_secs_f64()
            );
            for (label, config) in configurations()
                .into_iter()
                .filter(|(label, _)| labels.is_empty() || labels.iter().any(|l| l == label))
            {
                let started = Instant::now();
                let report = simulate(events.iter().cloned().map(Ok), &config)?;
                let rate = |s: Strategy| 100.0 * report.result(s).hit_rate;
                let best = Strategy::BASELINES.iter().map(|&s| rate(s)).fold(f64::MIN, f64::max);
                let p = report.result(Strategy::Predictive);
                let cells: Vec<String> = rated.clone().map(|s| format!("{:.2}", rate(s))).collect();
                println!(
                    "| {seed} | {} | `{label}` | {} | {:+.2} | {} / {} |",
                    regime.name(),
                    cells.join(" | "),
                    rate(Strategy::Predictive) - best,
                    p.warms_used,
                    p.warms_wasted
                );
                eprintln!("  {label}: {:.1}s", started.elapsed().as_secs_f64());
            }
        }
    }
    Ok(())
}
