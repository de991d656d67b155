//! The human summary printed at the end of `run` and `deploy`.

use super::Report;
use std::fmt::Write;

/// Renders a report as a few aligned lines.
pub fn render_summary(report: &Report) -> String {
    let mut out = String::new();
    let t = &report.totals;
    let secs = report.duration_ms as f64 / 1000.0;
    let _ = writeln!(
        out,
        "preheat: {:?} in {:.2}s{} — {} keys: {} written, {} fresh, {} skipped by plugin, {} invalid, {} failed, {} abandoned ({} retries, {} bytes)",
        report.status,
        secs,
        if report.deadline_hit { " (deadline reached)" } else { "" },
        t.enumerated,
        t.written,
        t.skipped_fresh,
        t.skipped_by_plugin,
        t.invalid,
        t.failed,
        t.abandoned,
        t.retried,
        t.bytes_written
    );
    if let Some(s) = &report.shard {
        let _ = writeln!(
            out,
            "  shard {}/{} of run group {}: {} listed keys left to the other shards",
            s.index, s.count, s.group, t.other_shards
        );
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "  error: {e}");
    }
    if let Some(e) = &report.history_error {
        let _ = writeln!(out, "  history: {e}");
    }
    for p in &report.plugins {
        let c = &p.counters;
        let _ = writeln!(
            out,
            "  {:<20} {:>8} enumerated {:>8} written {:>6} fresh {:>6} skipped {:>6} invalid {:>6} failed {:>6} abandoned  p50 {} p99 {}",
            p.name,
            c.enumerated,
            c.written,
            c.skipped_fresh,
            c.skipped_by_plugin,
            c.invalid,
            c.failed,
            c.abandoned,
            fmt_us(p.produce_p50_us),
            fmt_us(p.produce_p99_us),
        );
        if let Some(e) = &p.error {
            let _ = writeln!(out, "    plugin error: {}", super::fence_lines(e));
        }
    }
    // Errors of one failed batch repeat per key: show each distinct error once.
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for e in &report.errors {
        let first_line = e.error.lines().next().unwrap_or("");
        match groups
            .iter_mut()
            .find(|(p, msg, _)| *p == e.plugin && *msg == first_line)
        {
            Some(group) => group.2.push(&e.key),
            None => groups.push((&e.plugin, first_line, vec![&e.key])),
        }
    }
    for (plugin, msg, keys) in groups.iter().take(10) {
        let which = match keys.as_slice() {
            [one] => format!("{one:?}"),
            [first, rest @ ..] => format!("{first:?} and {} more keys", rest.len()),
            [] => String::new(),
        };
        let _ = writeln!(out, "  ! {plugin} {which}: {msg}");
    }
    if groups.len() > 10 || report.errors_omitted > 0 {
        let _ = writeln!(out, "  … more errors in the JSON report (--report FILE)");
    }
    out
}

fn fmt_us(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) if us >= 1000 => format!("{:.1}ms", us as f64 / 1000.0),
        Some(us) => format!("{us}µs"),
    }
}
