//! A run as `run` and `deploy` do it: connect the backend, take the run lock,
//! record the run in the job history, keep the lease alive, record the outcome.
//! The job store being unreachable never stops warming: the report says so.
//! Afterwards the caller prunes the history to `[jobs] keep` ([`Prune`]).

use super::{holder_id, History, JobStore, RunRecord, HEARTBEAT};
use crate::backend::Backend;
use crate::config::{Keep, LockPolicy};
use crate::exec::{new_run_id, RunOptions, Warmer};
use crate::report::Report;
use std::time::{Duration, Instant};

/// How often a waiting run retries the lock.
const LOCK_POLL: Duration = Duration::from_millis(250);

/// Runs `warmer` recorded in `history` under the run lock; the history is the
/// process's, opened once ([`History::open`]). Returns the report, and the
/// pruning of the history to `[jobs] keep` that is due now: the caller runs
/// it once it has used the report (`serve` answers first).
pub async fn run_recorded(warmer: &Warmer, history: &History, options: RunOptions) -> (Report, Prune) {
    let report = record(warmer, history, options).await;
    let prune = Prune {
        store: history.store().cloned(),
        keep: warmer.config().jobs.keep,
    };
    (report, prune)
}

/// The pruning of the job history due after a run.
#[must_use = "the job history grows until it is pruned: call `Prune::run`"]
pub struct Prune {
    store: Option<JobStore>,
    keep: Keep,
}

impl Prune {
    /// Prunes the history ([`super::prune_history`]: failures are logged).
    pub async fn run(self) {
        if let Some(store) = &self.store {
            super::prune_history(store, self.keep).await;
        }
    }
}

/// The run and its record.
async fn record(warmer: &Warmer, history: &History, mut options: RunOptions) -> Report {
    let started = Instant::now();
    let config = warmer.config();
    let mut history_error = match history {
        History::Unavailable(why) => Some(why.clone()),
        History::Off | History::Store(_) => None,
    };
    let store = history.store();
    let mut note = |e: anyhow::Error, what: &str| {
        let msg = format!("job history could not be written ({what}): {e:#}");
        tracing::warn!("{msg}");
        history_error.get_or_insert(msg);
    };

    let backend = match warmer.backend().await {
        Ok(backend) => backend,
        Err(e) => {
            let mut report = warmer.backend_unavailable(&e, &options, started.elapsed());
            if let Some(store) = store {
                if let Err(e) = store.record_unstarted(&report).await {
                    note(e, "recording the failed run");
                }
            }
            report.history_error = history_error;
            return report;
        }
    };

    let run_id = options.run_id.clone().unwrap_or_else(new_run_id);
    options.run_id = Some(run_id.clone());
    // The deadline counts from here: connecting and waiting for the lock are part of the run.
    options.clock_started.get_or_insert(started);
    let lock_wait = config
        .jobs
        .lock_wait
        .min(config.run.deadline.saturating_sub(started.elapsed()));
    let holder = holder_id(&run_id);
    let plugins: Vec<String> = config
        .enabled_plugins()
        .filter(|p| options.includes(&p.name))
        .map(|p| p.name.clone())
        .collect();
    // One lock per plugin and target (and shard), so runs of different
    // plugins, and the shards of one run, may overlap. The memory backend
    // lives in this process: there is nothing to share, so no lock.
    let shard = options
        .shard
        .as_ref()
        .map(|s| format!(" shard {}/{}", s.index, s.count))
        .unwrap_or_default();
    let lock_names: Vec<String> = match &backend {
        Backend::Memory(_) => Vec::new(),
        other => plugins
            .iter()
            .map(|p| format!("target {} plugin {p}{shard}", other.describe()))
            .collect(),
    };
    if let Some(store) = store {
        match acquire_all(store, &lock_names, &holder, config.jobs.lock, lock_wait).await {
            Ok(None) => {}
            Ok(Some(reason)) => {
                tracing::warn!("{reason}");
                let mut report = Report::skipped(&reason);
                report.run_id = run_id;
                report.strategy = options.strategy.clone();
                report.backend = backend.describe();
                report.shard = options.shard.clone();
                report.duration_ms = started.elapsed().as_millis() as u64;
                if let Err(e) = store.record_unstarted(&report).await {
                    note(e, "recording the skipped run");
                }
                report.history_error = history_error;
                return report;
            }
            Err(e) => note(e, "taking the run lock"),
        }
    }

    let record = match store {
        Some(store) => match store
            .start_run(&run_id, &options.strategy, &plugins, options.shard.as_ref())
            .await
        {
            Ok(record) => Some(record),
            Err(e) => {
                note(e, "recording the start of the run");
                None
            }
        },
        None => None,
    };
    let heartbeat = store.cloned().map(|store| {
        let progress = options.progress.clone();
        let record = record.clone();
        let locks = lock_names.clone();
        let holder = holder.clone();
        tokio::spawn(async move { beat(store, record, locks, holder, progress).await })
    });

    let mut report = warmer.run_on(backend, options).await;

    if let Some(heartbeat) = heartbeat {
        heartbeat.abort();
    }
    if let Some(store) = store {
        if let Some(record) = &record {
            if let Err(e) = store.finish_run(record, &report).await {
                note(e, "recording the outcome");
            }
        }
        for name in &lock_names {
            if let Err(e) = store.unlock(name, &holder).await {
                note(e, "releasing the run lock");
            }
        }
    }
    report.history_error = history_error;
    report
}

/// Takes every lock in order; `Ok(Some(reason))` when the run must be skipped
/// (the locks taken so far are released).
async fn acquire_all(
    store: &JobStore,
    names: &[String],
    holder: &str,
    policy: LockPolicy,
    wait: Duration,
) -> anyhow::Result<Option<String>> {
    let started = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let left = wait.saturating_sub(started.elapsed());
        let outcome = acquire(store, name, holder, policy, left).await;
        if !matches!(outcome, Ok(None)) {
            for taken in &names[..i] {
                store.unlock(taken, holder).await?;
            }
            return outcome;
        }
    }
    Ok(None)
}

/// Takes the lock; `Ok(Some(reason))` when the run must be skipped.
async fn acquire(
    store: &JobStore,
    name: &str,
    holder: &str,
    policy: LockPolicy,
    wait: Duration,
) -> anyhow::Result<Option<String>> {
    let started = Instant::now();
    loop {
        if store.try_lock(name, holder).await? {
            return Ok(None);
        }
        if policy == LockPolicy::Skip || started.elapsed() >= wait {
            let (other, since) = store.lock_holder(name).await?.unwrap_or_default();
            return Ok(Some(format!(
                "another preheat run ({other}, since {since}) holds the run lock for {name}; skipped after waiting {:.1}s (lock = {}, lock_wait = {:?} in [jobs])",
                started.elapsed().as_secs_f64(),
                if policy == LockPolicy::Skip { "skip" } else { "wait" },
                wait
            )));
        }
        tokio::time::sleep(LOCK_POLL).await;
    }
}

/// Renews the lease and stores live progress until aborted.
async fn beat(
    store: JobStore,
    record: Option<RunRecord>,
    locks: Vec<String>,
    holder: String,
    progress: std::sync::Arc<crate::exec::Progress>,
) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        for name in &locks {
            match store.renew_lock(name, &holder).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(lock = %name, "the run lock was lost (lease expired); another run may start")
                }
                Err(e) => {
                    tracing::warn!(lock = %name, error = %format!("{e:#}"), "could not renew the run lock")
                }
            }
        }
        if let Some(record) = &record {
            let s = progress.snapshot();
            let json = serde_json::json!({ "progress": { "enumerated": s.enumerated, "finished": s.finished, "written": s.written, "enumeration_done": s.enumeration_done } });
            if let Err(e) = store.progress(record, &json).await {
                tracing::warn!(error = %format!("{e:#}"), "could not record progress in the job history");
            }
        }
    }
}
