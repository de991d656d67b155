//! Per-plugin bookkeeping during a run, turned into the report at the end.

use crate::plan::priority_name;
use crate::report::{
    clip, escape_hidden, fence_lines, percentile, CallTrace, Counters, ErrorCause, KeyError, KeyTrace, PluginReport,
    MAX_ERROR_BYTES, MAX_SHOWN_KEY_BYTES,
};
use crate::runtime::Priority;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Errors kept in the report; the rest are counted.
const MAX_ERRORS: usize = 100;
/// Latest errors kept for live views.
const RECENT_ERRORS: usize = 20;
/// Keys kept when tracing (`plugin test`).
const MAX_TRACED_KEYS: usize = 100_000;

/// Final outcome of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyOutcome {
    Written,
    Fresh,
    SkippedByPlugin,
    Invalid,
    Failed,
    Abandoned,
}

impl KeyOutcome {
    fn name(self) -> &'static str {
        match self {
            KeyOutcome::Written => "written",
            KeyOutcome::Fresh => "fresh",
            KeyOutcome::SkippedByPlugin => "skipped",
            KeyOutcome::Invalid => "invalid",
            KeyOutcome::Failed => "failed",
            KeyOutcome::Abandoned => "abandoned",
        }
    }
}

#[derive(Default)]
struct PluginTally {
    counters: Counters,
    produce_us: Vec<u64>,
    error: Option<String>,
}

/// Everything the workers record during a run.
pub(crate) struct Tally {
    names: Vec<String>,
    plugins: Vec<Mutex<PluginTally>>,
    errors: Mutex<(Vec<KeyError>, u64)>,
    recent_errors: Mutex<VecDeque<KeyError>>,
    trace: Option<Mutex<(Vec<KeyTrace>, Vec<CallTrace>)>>,
}

impl Tally {
    pub(crate) fn new(names: Vec<String>, trace: bool) -> Tally {
        let plugins = names.iter().map(|_| Mutex::default()).collect();
        Tally {
            names,
            plugins,
            errors: Mutex::default(),
            recent_errors: Mutex::default(),
            trace: trace.then(Mutex::default),
        }
    }

    pub(crate) fn name(&self, plugin: usize) -> &str {
        &self.names[plugin]
    }

    pub(crate) fn add(&self, plugin: usize, f: impl FnOnce(&mut Counters)) {
        f(&mut self.plugins[plugin].lock().unwrap().counters);
    }

    /// Whether every key and call is recorded (`plugin test`).
    pub(crate) fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Records keys written or found fresh, in bulk (only when not [`Tally::tracing`],
    /// where every key is recorded one by one).
    pub(crate) fn settled(&self, plugin: usize, written: u64, bytes_written: u64, fresh: u64) {
        debug_assert!(!self.tracing());
        let mut t = self.plugins[plugin].lock().unwrap();
        t.counters.written += written;
        t.counters.bytes_written += bytes_written;
        t.counters.skipped_fresh += fresh;
    }

    /// Records a key's final outcome (and, for problems, its error).
    pub(crate) fn key_outcome(
        &self,
        plugin: usize,
        key: &str,
        priority: Priority,
        outcome: KeyOutcome,
        detail: KeyDetail,
    ) {
        {
            let mut t = self.plugins[plugin].lock().unwrap();
            let c = &mut t.counters;
            match outcome {
                KeyOutcome::Written => {
                    c.written += 1;
                    c.bytes_written += detail.value_bytes.unwrap_or(0) as u64;
                }
                KeyOutcome::Fresh => c.skipped_fresh += 1,
                KeyOutcome::SkippedByPlugin => c.skipped_by_plugin += 1,
                KeyOutcome::Invalid => c.invalid += 1,
                KeyOutcome::Failed => c.failed += 1,
                KeyOutcome::Abandoned => c.abandoned += 1,
            }
        }
        if let Some(error) = detail
            .error
            .filter(|_| matches!(outcome, KeyOutcome::Invalid | KeyOutcome::Failed))
        {
            let error = KeyError {
                plugin: self.names[plugin].clone(),
                key: clip(&escape_hidden(&key.replace('\n', "\\n")), MAX_SHOWN_KEY_BYTES).into_owned(),
                error: clip(&escape_hidden(&error), MAX_ERROR_BYTES).into_owned(),
                attempts: detail.attempts,
                cause: match (outcome, detail.rejected) {
                    (KeyOutcome::Invalid, _) => ErrorCause::Invalid,
                    (_, true) => ErrorCause::Rejected,
                    (_, false) => ErrorCause::Failed,
                },
            };
            {
                let mut recent = self.recent_errors.lock().unwrap();
                if recent.len() == RECENT_ERRORS {
                    recent.pop_front();
                }
                recent.push_back(error.clone());
            }
            let mut errors = self.errors.lock().unwrap();
            if errors.0.len() < MAX_ERRORS {
                errors.0.push(error);
            } else {
                errors.1 += 1;
            }
        }
        if let Some(trace) = &self.trace {
            let mut trace = trace.lock().unwrap();
            if trace.0.len() < MAX_TRACED_KEYS {
                trace.0.push(KeyTrace {
                    plugin: self.names[plugin].clone(),
                    key: key.to_string(),
                    priority: priority_name(priority),
                    value_bytes: detail.value_bytes,
                    ttl_seconds: detail.ttl_seconds,
                    outcome: outcome.name(),
                });
            }
        }
    }

    /// Records a call's cost.
    pub(crate) fn call(&self, plugin: usize, call: &'static str, keys: usize, fuel: u64, time_us: u64) {
        {
            let mut t = self.plugins[plugin].lock().unwrap();
            t.counters.fuel_consumed += fuel;
            if call == "produce" {
                t.produce_us.push(time_us);
            }
        }
        if let Some(trace) = &self.trace {
            trace.lock().unwrap().1.push(CallTrace {
                plugin: self.names[plugin].clone(),
                call,
                keys,
                fuel,
                time_us,
            });
        }
    }

    /// Marks the plugin as failed as a whole (the first error wins).
    /// The text is clipped to [`MAX_ERROR_BYTES`]: it reaches the report, the job store and the log.
    pub(crate) fn plugin_error(&self, plugin: usize, error: String) {
        let error = clip(&escape_hidden(&error), MAX_ERROR_BYTES).into_owned();
        tracing::error!(plugin = %self.names[plugin], "{}", fence_lines(&error));
        self.plugins[plugin].lock().unwrap().error.get_or_insert(error);
    }

    /// Per-plugin counters so far and the latest errors, for live views.
    pub(crate) fn live(&self) -> (Vec<(String, Counters)>, Vec<KeyError>) {
        let plugins = self
            .names
            .iter()
            .zip(&self.plugins)
            .map(|(name, t)| (name.clone(), t.lock().unwrap().counters.clone()))
            .collect();
        (plugins, self.recent_errors.lock().unwrap().iter().cloned().collect())
    }

    /// Takes the per-plugin reports, the error list and the traces out of the tally.
    pub(crate) fn finish(&self) -> (Vec<PluginReport>, Vec<KeyError>, u64, Vec<KeyTrace>, Vec<CallTrace>) {
        let reports = self
            .names
            .iter()
            .zip(&self.plugins)
            .map(|(name, t)| {
                let mut t = std::mem::take(&mut *t.lock().unwrap());
                PluginReport {
                    name: name.clone(),
                    produce_calls: t.produce_us.len() as u64,
                    produce_total_us: t.produce_us.iter().sum(),
                    produce_p50_us: percentile(&mut t.produce_us, 0.5),
                    produce_p99_us: percentile(&mut t.produce_us, 0.99),
                    counters: t.counters,
                    error: t.error,
                }
            })
            .collect();
        let (errors, omitted) = std::mem::take(&mut *self.errors.lock().unwrap());
        let (keys, calls) = self
            .trace
            .as_ref()
            .map(|t| std::mem::take(&mut *t.lock().unwrap()))
            .unwrap_or_default();
        (reports, errors, omitted, keys, calls)
    }
}

/// Optional facts about a key's outcome.
#[derive(Debug, Default)]
pub(crate) struct KeyDetail {
    pub error: Option<String>,
    pub attempts: u32,
    pub value_bytes: Option<usize>,
    pub ttl_seconds: Option<u64>,
    /// The plugin refused the key (`fail` from `produce`), as opposed to failing.
    pub rejected: bool,
}

impl KeyDetail {
    pub(crate) fn error(error: impl Into<String>, attempts: u32) -> KeyDetail {
        KeyDetail {
            error: Some(error.into()),
            attempts,
            ..Default::default()
        }
    }

    /// A key the plugin refused: `produce` answered `fail` for it.
    pub(crate) fn rejected(error: impl Into<String>, attempts: u32) -> KeyDetail {
        KeyDetail {
            rejected: true,
            ..KeyDetail::error(error, attempts)
        }
    }
}
