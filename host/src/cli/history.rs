//! `preheat history` and `preheat status`: the job history as tables or JSON.

use crate::config::Config;
use crate::jobs::{JobRow, JobStore, RUN_JOB};
use anyhow::Result;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

/// A run row whose last heartbeat is older than this is probably dead.
const STALE_AFTER_SECS: u64 = 30;

fn count(row: &JobRow, key: &str) -> String {
    row.metadata
        .get(key)
        .and_then(|v| v.as_u64())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

/// Prints the latest runs.
pub async fn history(config: &Path, limit: usize, json: bool) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let store = JobStore::open(&config).await?;
    let rows = store.history(limit).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<10} {:<24} {:>9} {:>10} {:>9} {:>8} {:>8} {:>9}  ERROR",
        "RUN", "STATUS", "STARTED", "DURATION", "ENUMERATED", "WRITTEN", "FRESH", "FAILED", "ABANDONED"
    );
    for row in &rows {
        let duration = row
            .metadata
            .get("duration_ms")
            .and_then(|v| v.as_u64())
            .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        let error = row
            .error_message
            .as_deref()
            .and_then(|e| e.lines().next())
            .unwrap_or("");
        let _ = writeln!(
            out,
            "{:<18} {:<10} {:<24} {:>9} {:>10} {:>9} {:>8} {:>8} {:>9}  {error}",
            row.run_id,
            row.status,
            row.started_at.as_deref().unwrap_or("-"),
            duration,
            count(row, "enumerated"),
            count(row, "written"),
            count(row, "skipped_fresh"),
            count(row, "failed"),
            count(row, "abandoned"),
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no runs recorded in {})", store.address());
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Prints the run in progress, if any.
pub async fn status(config: &Path, json: bool) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let store = JobStore::open(&config).await?;
    let rows = store.running().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let runs: Vec<&JobRow> = rows.iter().filter(|r| r.job_type == RUN_JOB).collect();
    if runs.is_empty() {
        println!("no run in progress");
        return Ok(ExitCode::SUCCESS);
    }
    for run in runs {
        let p = &run.metadata["progress"];
        let stale = humantime::parse_rfc3339_weak(
            run.updated_at
                .split('+')
                .next()
                .unwrap_or(&run.updated_at)
                .trim_end_matches('Z'),
        )
        .ok()
        .and_then(|t| t.elapsed().ok())
        .filter(|age| age.as_secs() > STALE_AFTER_SECS)
        .map(|age| {
            format!(
                " (stale: no heartbeat for {}s; the process probably died)",
                age.as_secs()
            )
        })
        .unwrap_or_default();
        println!(
            "run {} ({}) running since {}{stale}: {}/{} keys done, {} written",
            run.run_id,
            run.strategy,
            run.started_at.as_deref().unwrap_or("?"),
            p["finished"].as_u64().unwrap_or(0),
            p["enumerated"].as_u64().unwrap_or(0),
            p["written"].as_u64().unwrap_or(0),
        );
        for plugin in rows.iter().filter(|r| r.run_id == run.run_id && r.job_type != RUN_JOB) {
            println!("  {:<20} {}", plugin.job_type, plugin.status);
        }
    }
    Ok(ExitCode::SUCCESS)
}
