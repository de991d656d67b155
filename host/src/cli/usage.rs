//! `preheat hot-data` and `preheat stats`: what the usage state saved by
//! `serve` says (hot keys, trends, effect of runs), read offline.

use crate::config::Config;
use crate::usage::Usage;
use anyhow::Result;
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `preheat hot-data`.
#[derive(Debug, Args)]
pub struct HotDataArgs {
    /// The config file (names the usage state file).
    #[arg(long, short)]
    config: PathBuf,
    /// The window: one of the tracker's windows (default 1m, 1h, 1day).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    window: std::time::Duration,
    /// How many keys.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `preheat stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The config file (names the usage state file).
    #[arg(long, short)]
    config: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn open(config: &std::path::Path) -> Result<Usage> {
    let config = Config::load(config)?;
    let path = Usage::state_path(&config);
    if !path.exists() {
        anyhow::bail!(
            "no usage state at {}: `preheat serve` saves it once it has received access events ([usage] in the config)",
            path.display()
        );
    }
    let usage = Usage::open(&config)?;
    usage.tick();
    Ok(usage)
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `preheat hot-data`.
pub fn hot_data(args: HotDataArgs) -> Result<ExitCode> {
    let usage = open(&args.config)?;
    let doc = serde_json::to_value(usage.hot_data(args.window, args.limit))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(reason) = doc["reason"].as_str() {
        println!("no hot keys in the last {}: {reason}", num(&doc["window"]));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "hottest keys of the last {} ({} accesses, {} misses):",
        num(&doc["window"]),
        doc["accesses"],
        doc["misses"]
    );
    println!(
        "{:>4}  {:<40} {:>9} {:>8} {:>8} {:<9} PLUGIN",
        "RANK", "KEY", "ACCESSES", "MISSES", "HIT RATE", "PRIORITY"
    );
    for k in doc["keys"].as_array().into_iter().flatten() {
        println!(
            "{:>4}  {:<40} {:>9} {:>8} {:>8} {:<9} {}",
            num(&k["rank"]),
            num(&k["key"]),
            num(&k["accesses"]),
            num(&k["misses"]),
            num(&k["hit_rate"]),
            num(&k["priority"]),
            num(&k["plugin"])
        );
        if let Some(reason) = k["forecast_explanation"]["reason"].as_str() {
            println!("      forecast {}: {reason}", num(&k["forecast_this_step"]));
        }
    }
    for (title, list) in [("rising", &doc["rising"]), ("falling", &doc["falling"])] {
        let list = list.as_array().cloned().unwrap_or_default();
        if !list.is_empty() {
            println!("{title}:");
            for t in list {
                println!(
                    "  {:<40} {} → {} per minute",
                    num(&t["key"]),
                    num(&t["previous_per_minute"]),
                    num(&t["current_per_minute"])
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `preheat stats`.
pub fn stats(args: StatsArgs) -> Result<ExitCode> {
    let usage = open(&args.config)?;
    let (effectiveness, cost_benefit) = usage.effectiveness(None);
    let doc = serde_json::json!({"effectiveness": effectiveness, "cost_benefit": cost_benefit});
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let e = &doc["effectiveness"];
    println!("events tracked:        {}", num(&e["events_tracked"]));
    println!(
        "hit rate, last 24 h:   {} over {} requests",
        num(&e["hit_rate_last_24h"]),
        num(&e["requests_last_24h"])
    );
    println!(
        "around runs ({} before/after, {} runs measured): {} → {} (change {})",
        num(&e["window"]),
        num(&e["measured_runs"]),
        num(&e["hit_rate_before"]),
        num(&e["hit_rate_after"]),
        num(&e["improvement"])
    );
    let c = &doc["cost_benefit"];
    println!(
        "misses avoided: {}  latency saved: {} ms  net: {} ms",
        num(&c["misses_avoided"]),
        num(&c["estimated_latency_saved_ms"]),
        num(&c["net_ms"])
    );
    Ok(ExitCode::SUCCESS)
}
