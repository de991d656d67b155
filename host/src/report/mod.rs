//! The run report: what happened to every key, per plugin and in total, as
//! JSON (`--report FILE`) and as a human summary.

mod clip;
mod summary;

pub use clip::{
    clip, escape_hidden, fence_lines, is_hidden_char, FORMAT_CHARACTER, MAX_ERROR_BYTES, MAX_SHOWN_KEY_BYTES,
};
pub use summary::render_summary;

use serde::Serialize;
use utoipa::ToSchema;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Every enumerated key was written or deliberately skipped.
    Completed,
    /// Some keys were written, some failed, were invalid or abandoned, or a plugin failed.
    Partial,
    /// Nothing could be warmed (backend down, every plugin failed).
    Failed,
    /// Warming was switched off (`PREHEAT_SKIP=1` or `enabled = false`).
    Skipped,
    /// Stopped on request (API `stop`, SIGTERM): batches in flight finished, the rest abandoned.
    Stopped,
}

/// The share of a run split across workers (`--shard I/N`) that a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RunShard {
    /// The run group: the name every shard of the run shares (`--group`).
    pub group: String,
    /// This shard, 0-based.
    pub index: u32,
    /// Shards the run is split into.
    pub count: u32,
}

/// Per-key outcome counters. Invariant, per plugin and in total:
/// `enumerated = written + skipped_fresh + skipped_by_plugin + invalid + failed + abandoned`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, ToSchema)]
pub struct Counters {
    /// Distinct keys the plugin listed.
    pub enumerated: u64,
    /// Keys written to the backend.
    pub written: u64,
    /// Keys left alone because the cached value was fresh (write policy).
    pub skipped_fresh: u64,
    /// Keys the plugin chose to skip.
    pub skipped_by_plugin: u64,
    /// Keys that failed validation and were never written.
    pub invalid: u64,
    /// Keys that could not be produced or written.
    pub failed: u64,
    /// Keys not finished when the run stopped (deadline).
    pub abandoned: u64,
    /// Retries scheduled (a key may be retried several times).
    pub retried: u64,
    /// Repeated keys dropped (not part of `enumerated`).
    pub duplicates: u64,
    /// Keys listed that belong to other shards of a sharded run, left to them
    /// (not part of `enumerated`).
    pub other_shards: u64,
    /// Bytes of values written.
    pub bytes_written: u64,
    /// Fuel consumed by all calls.
    pub fuel_consumed: u64,
}

impl Counters {
    /// Keys with a final outcome.
    pub fn finished(&self) -> u64 {
        self.written + self.skipped_fresh + self.skipped_by_plugin + self.invalid + self.failed + self.abandoned
    }

    /// Whether every enumerated key has exactly one outcome.
    pub fn balanced(&self) -> bool {
        self.enumerated == self.finished()
    }

    /// Adds another set of counters to this one.
    pub fn add(&mut self, o: &Counters) {
        self.enumerated += o.enumerated;
        self.written += o.written;
        self.skipped_fresh += o.skipped_fresh;
        self.skipped_by_plugin += o.skipped_by_plugin;
        self.invalid += o.invalid;
        self.failed += o.failed;
        self.abandoned += o.abandoned;
        self.retried += o.retried;
        self.duplicates += o.duplicates;
        self.other_shards += o.other_shards;
        self.bytes_written += o.bytes_written;
        self.fuel_consumed += o.fuel_consumed;
    }
}

/// One plugin's part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    /// Plugin name.
    pub name: String,
    /// Outcome counters.
    #[serde(flatten)]
    pub counters: Counters,
    /// Number of `produce` calls that returned.
    pub produce_calls: u64,
    /// Median `produce` call time.
    pub produce_p50_us: Option<u64>,
    /// 99th percentile `produce` call time.
    pub produce_p99_us: Option<u64>,
    /// Total wall time of produce calls, microseconds.
    pub produce_total_us: u64,
    /// Set when the plugin failed as a whole (would not load, enumerate failed, disabled).
    pub error: Option<String>,
}

impl PluginReport {
    /// How this plugin's part of the run ended.
    pub fn status(&self) -> RunStatus {
        let c = &self.counters;
        let problems = c.failed + c.invalid + c.abandoned > 0 || self.error.is_some();
        let progress = c.written + c.skipped_fresh + c.skipped_by_plugin > 0;
        match (problems, progress) {
            (false, _) => RunStatus::Completed,
            (true, true) => RunStatus::Partial,
            (true, false) => RunStatus::Failed,
        }
    }
}

/// Whose problem a key's error was: the key's (it breaks a rule, or its plugin
/// refused it) or the machinery's (a call, the retries or the backend failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorCause {
    /// The key broke the host's key rules (granted prefixes, length, characters).
    Invalid,
    /// The plugin refused the key: `produce` answered `fail` for it (no such
    /// item, a malformed id). Counted as failed.
    Rejected,
    /// The plugin's call failed (trap, fuel, timeout, memory, bad output), its
    /// retries ran out, or the backend refused the write.
    Failed,
}

/// One key that went wrong.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyError {
    /// The plugin that owns the key.
    pub plugin: String,
    /// The key.
    pub key: String,
    /// What went wrong, and where.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// Whose problem it was.
    pub cause: ErrorCause,
}

/// One key as `plugin test` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyTrace {
    /// Plugin name.
    pub plugin: String,
    /// The key.
    pub key: String,
    /// Priority name.
    pub priority: &'static str,
    /// Value size, when produced.
    pub value_bytes: Option<usize>,
    /// TTL written, in seconds.
    pub ttl_seconds: Option<u64>,
    /// written | fresh | skipped | invalid | failed | abandoned.
    pub outcome: &'static str,
}

/// One call into a plugin as `plugin test` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallTrace {
    /// Plugin name.
    pub plugin: String,
    /// enumerate | produce.
    pub call: &'static str,
    /// Keys listed or produced.
    pub keys: usize,
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall-clock time in microseconds.
    pub time_us: u64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How the run ended.
    pub status: RunStatus,
    /// Run identifier (also passed to plugins).
    pub run_id: String,
    /// Strategy name.
    pub strategy: String,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Whether the global deadline stopped the run.
    pub deadline_hit: bool,
    /// Whether the run was stopped on request.
    pub stopped: bool,
    /// The backend written to.
    pub backend: String,
    /// The shard of a run split across workers this report covers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<RunShard>,
    /// Why the run failed as a whole, or was skipped.
    pub error: Option<String>,
    /// Set when the job history could not be written (the run itself went on).
    pub history_error: Option<String>,
    /// Sum over plugins.
    pub totals: Counters,
    /// Per plugin, in config order.
    pub plugins: Vec<PluginReport>,
    /// Keys that went wrong (capped; see `errors_omitted`).
    pub errors: Vec<KeyError>,
    /// Errors beyond the cap.
    pub errors_omitted: u64,
    /// Every key (only when tracing, for `plugin test`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyTrace>,
    /// Every call (only when tracing, for `plugin test`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallTrace>,
}

impl Report {
    /// A report for a run that could not start: `failed`, with the reason.
    pub fn failed(error: &anyhow::Error) -> Report {
        Report {
            status: RunStatus::Failed,
            ..Report::skipped(&format!("{error:#}"))
        }
    }

    /// A report for a run that did not happen.
    pub fn skipped(reason: &str) -> Report {
        Report {
            status: RunStatus::Skipped,
            run_id: String::new(),
            strategy: String::new(),
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_ms: 0,
            deadline_hit: false,
            stopped: false,
            backend: String::new(),
            shard: None,
            error: Some(reason.to_string()),
            history_error: None,
            totals: Counters::default(),
            plugins: vec![],
            errors: vec![],
            errors_omitted: 0,
            keys: vec![],
            calls: vec![],
        }
    }

    /// Decides the status from the counters and errors.
    pub fn settle_status(&mut self) {
        let t = &self.totals;
        let plugin_failed = self.plugins.iter().any(|p| p.error.is_some());
        let all_plugins_failed = !self.plugins.is_empty()
            && self
                .plugins
                .iter()
                .all(|p| p.error.is_some() && p.counters.written + p.counters.skipped_fresh == 0);
        let problems = t.failed + t.invalid + t.abandoned > 0 || plugin_failed || self.deadline_hit;
        let progress = t.written + t.skipped_fresh + t.skipped_by_plugin > 0;
        self.status = if self.error.is_some() || all_plugins_failed || (problems && !progress && !self.stopped) {
            RunStatus::Failed
        } else if self.stopped {
            RunStatus::Stopped
        } else if problems {
            RunStatus::Partial
        } else {
            RunStatus::Completed
        };
    }

    /// Whether the accounting invariant holds for every plugin and in total.
    pub fn balanced(&self) -> bool {
        self.totals.balanced() && self.plugins.iter().all(|p| p.counters.balanced())
    }
}

/// The value at quantile `q` (0..=1) of unsorted samples.
pub fn percentile(samples: &mut [u64], q: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let idx = ((samples.len() - 1) as f64 * q).round() as usize;
    Some(samples[idx])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.5), Some(51));
        assert_eq!(percentile(&mut v, 0.99), Some(99));
        assert_eq!(percentile(&mut [], 0.5), None);
    }

    #[test]
    fn status_follows_the_outcomes() {
        let mut r = Report::skipped("x");
        r.error = None;
        r.plugins.push(PluginReport {
            name: "p".into(),
            counters: Counters::default(),
            produce_calls: 0,
            produce_p50_us: None,
            produce_p99_us: None,
            produce_total_us: 0,
            error: None,
        });
        r.totals = Counters {
            enumerated: 2,
            written: 2,
            ..Default::default()
        };
        r.settle_status();
        assert_eq!(r.status, RunStatus::Completed);
        r.totals = Counters {
            enumerated: 2,
            written: 1,
            failed: 1,
            ..Default::default()
        };
        r.settle_status();
        assert_eq!(r.status, RunStatus::Partial);
        r.totals = Counters {
            enumerated: 2,
            failed: 2,
            ..Default::default()
        };
        r.settle_status();
        assert_eq!(r.status, RunStatus::Failed);
    }
}
