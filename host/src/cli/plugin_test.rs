//! `preheat plugin test`: one plugin, the in-memory backend, and a table of
//! what it listed and produced, with fuel and time per call.

use crate::backend::{Backend, MemoryBackend};
use crate::config::{BackendConfig, Config, JobsConfig, MemoryTarget, PluginConfig, RunConfig, Sharding};
use crate::exec::{RunOptions, Warmer};
use crate::report::{Report, RunShard, RunStatus};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `preheat plugin test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component (.wasm).
    path: PathBuf,
    /// A setting passed to the plugin, `key=value` (repeatable).
    #[arg(long = "setting", short = 's', value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Stop after this many keys.
    #[arg(long)]
    limit: Option<u64>,
    /// Key prefixes to grant (repeatable); by default every key is allowed.
    #[arg(long = "prefix")]
    prefixes: Vec<String>,
    /// Run as shard I of N (0-based), e.g. 1/3: only that shard's keys are warmed.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<crate::runtime::Shard>,
    /// With --shard: `plugin` hands the shard to the plugin, which lists only
    /// its share; `host` (default) keeps the listed keys of the shard.
    #[arg(long, default_value = "host", value_name = "host|plugin")]
    sharding: Sharding,
    #[command(flatten)]
    limits: super::LimitArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_shard(text: &str) -> Result<crate::runtime::Shard, String> {
    crate::plan::parse_shard(text).map_err(|e| format!("{e:#}"))
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}

/// Runs the test and prints the table (or JSON).
pub async fn run(args: TestArgs, quiet: bool) -> Result<ExitCode> {
    if !args.path.exists() {
        bail!(
            "{} does not exist; build the plugin with `cargo build --release --target wasm32-wasip2`",
            args.path.display()
        );
    }
    let name = args
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let prefixes = if args.prefixes.is_empty() {
        vec![String::new()]
    } else {
        args.prefixes.clone()
    };
    let mut plugin = PluginConfig::for_path(&name, args.path.clone(), prefixes);
    args.limits.apply(&mut plugin);
    plugin.sharding = args.sharding;
    plugin.settings = args
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
        .collect();
    let config = Config {
        enabled: true,
        run: RunConfig {
            deadline: Duration::from_secs(600),
            compile_timeout: args.limits.compile_timeout,
            ..RunConfig::default()
        },
        backend: BackendConfig::default(),
        sources: Default::default(),
        jobs: JobsConfig {
            enabled: false,
            ..JobsConfig::default()
        },
        serve: Default::default(),
        usage: Default::default(),
        plugins: vec![plugin],
        source: None,
    };
    let memory = Arc::new(MemoryBackend::new(MemoryTarget::default().max_bytes.0));
    let warmer = Warmer::with_backend(config, Backend::Memory(memory))?;
    let options = RunOptions {
        strategy: "test".into(),
        trace: true,
        key_limit: args.limit,
        shard: args.shard.map(|s| RunShard {
            group: "plugin-test".into(),
            index: s.index,
            count: s.count,
        }),
        ..RunOptions::default()
    };
    let report = warmer.execute(options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialize"));
    } else {
        print!("{}", render_table(&report));
    }
    if !quiet && !args.json {
        for e in &report.errors {
            eprintln!("! {:?}: {}", e.key, e.error);
        }
    }
    Ok(if report.status == RunStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The human table: keys, then calls, then a summary line.
fn render_table(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let width = report.keys.iter().map(|k| k.key.len()).max().unwrap_or(3).clamp(3, 60);
    let _ = writeln!(
        out,
        "{:<width$}  {:<8}  {:>10}  {:>8}  OUTCOME",
        "KEY", "PRIORITY", "BYTES", "TTL"
    );
    for k in &report.keys {
        let bytes = k.value_bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
        let ttl = k.ttl_seconds.map(|t| format!("{t}s")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<width$}  {:<8}  {bytes:>10}  {ttl:>8}  {}",
            k.key, k.priority, k.outcome
        );
    }
    let _ = writeln!(out, "\n{:<9}  {:>6}  {:>14}  {:>10}", "CALL", "KEYS", "FUEL", "TIME");
    for c in &report.calls {
        let _ = writeln!(
            out,
            "{:<9}  {:>6}  {:>14}  {:>8.2}ms",
            c.call,
            c.keys,
            c.fuel,
            c.time_us as f64 / 1000.0
        );
    }
    let t = &report.totals;
    let fuel: u64 = report.calls.iter().map(|c| c.fuel).sum();
    let time_us: u64 = report.calls.iter().map(|c| c.time_us).sum();
    let _ = writeln!(
        out,
        "\n{:?}: {} keys{}, {} written ({} bytes), {} skipped by plugin, {} invalid, {} failed; {} calls, {fuel} fuel, {:.2}ms in the plugin",
        report.status,
        t.enumerated,
        match &report.shard {
            Some(s) => format!(" of shard {}/{} ({} left to other shards)", s.index, s.count, t.other_shards),
            None => String::new(),
        },
        t.written,
        t.bytes_written,
        t.skipped_by_plugin,
        t.invalid,
        t.failed,
        report.calls.len(),
        time_us as f64 / 1000.0
    );
    for p in &report.plugins {
        if let Some(e) = &p.error {
            let _ = writeln!(out, "plugin error: {e}");
        }
    }
    out
}
