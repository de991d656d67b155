//! `preheat history` and `preheat status`: the job history as tables or JSON;
//! the shards of a sharded run shown together, under their run group.

use crate::config::Config;
use crate::jobs::{GroupStatus, JobRow, JobStore, RunGroup, RUN_JOB};
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
    let mut groups_shown: Vec<&str> = Vec::new();
    for row in &rows {
        if let (Some(group), Some(index), Some(count)) = (&row.run_group, row.shard_index, row.shard_count) {
            if !groups_shown.contains(&group.as_str()) {
                groups_shown.push(group);
                let summary = RunGroup::of(group, store.group(group).await?);
                let _ = writeln!(out, "{}", group_line(group, summary.as_ref()));
            }
            let _ = write!(out, "  shard {index}/{count} ");
        }
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

/// One line for a run group: how it stands and which shards are done.
fn group_line(group: &str, summary: Option<&RunGroup>) -> String {
    match summary {
        Some(g) => format!(
            "group {group}: {} ({} of {} shards completed)",
            group_status_name(g.status),
            g.shards.iter().filter(|s| s.completed).count(),
            g.count
        ),
        None => format!("group {group}"),
    }
}

fn group_status_name(status: GroupStatus) -> &'static str {
    match status {
        GroupStatus::Completed => "completed",
        GroupStatus::Running => "running",
        GroupStatus::Incomplete => "incomplete",
        GroupStatus::Partial => "partial",
        GroupStatus::Failed => "failed",
    }
}

/// Prints how a run group stands: each shard's attempts, and the command
/// that reruns the shards not completed. Exits 0 only when every shard completed.
pub async fn group_status(config_path: &Path, group: &str, json: bool) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let store = JobStore::open(&config).await?;
    let Some(summary) = RunGroup::of(group, store.group(group).await?) else {
        anyhow::bail!(
            "no run of group {group:?} is recorded in {} (runs record their group with --group or PREHEAT_RUN_GROUP)",
            store.address()
        );
    };
    let done = summary.status == GroupStatus::Completed;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(if done { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let mut out = String::new();
    let _ = writeln!(out, "{}", group_line(group, Some(&summary)));
    for shard in &summary.shards {
        let Some(latest) = shard.latest() else {
            let _ = writeln!(out, "  shard {}/{}  never ran", shard.index, summary.count);
            continue;
        };
        let earlier: Vec<String> = shard.attempts[..shard.attempts.len() - 1]
            .iter()
            .map(|r| format!("{} {}", r.run_id, r.status))
            .collect();
        let _ = writeln!(
            out,
            "  shard {}/{}  {:<11} run {}  {} written, {} failed, {} abandoned{}{}",
            shard.index,
            summary.count,
            latest.status,
            latest.run_id,
            count(latest, "written"),
            count(latest, "failed"),
            count(latest, "abandoned"),
            latest
                .error_message
                .as_deref()
                .and_then(|e| e.lines().next())
                .map(|e| format!("  {e}"))
                .unwrap_or_default(),
            if earlier.is_empty() {
                String::new()
            } else {
                format!("  (earlier: {})", earlier.join(", "))
            }
        );
    }
    if !summary.other_splits.is_empty() {
        let _ = writeln!(
            out,
            "  {} run(s) of this group split into another number of shards are left out",
            summary.other_splits.len()
        );
    }
    for index in summary.to_rerun() {
        let _ = writeln!(
            out,
            "rerun shard {index}: preheat run --config {} --shard {index}/{} --group {group}",
            config_path.display(),
            summary.count
        );
    }
    print!("{out}");
    Ok(if done { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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
        let shard = match (&run.run_group, run.shard_index, run.shard_count) {
            (Some(group), Some(index), Some(count)) => format!(" shard {index}/{count} of group {group}"),
            _ => String::new(),
        };
        println!(
            "run {}{shard} ({}) running since {}{stale}: {}/{} keys done, {} written",
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
