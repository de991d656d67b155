//! Live progress of a run, read by the CLI's progress bar, the job history
//! heartbeat and `serve`'s status, SSE stream and dashboard.

use super::tally::Tally;
use crate::report::{Counters, KeyError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Counters updated by the executor as keys are listed and finished.
#[derive(Default)]
pub struct Progress {
    enumerated: AtomicU64,
    finished: AtomicU64,
    written: AtomicU64,
    enumeration_done: AtomicBool,
    started: OnceLock<Instant>,
    batch: Mutex<BatchProgress>,
    tally: OnceLock<Arc<Tally>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("snapshot", &self.snapshot()).finish()
    }
}

/// A point-in-time copy of [`Progress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// Keys listed so far.
    pub enumerated: u64,
    /// Keys with a final outcome.
    pub finished: u64,
    /// Keys written.
    pub written: u64,
    /// Whether every plugin has finished listing keys (the total is known).
    pub enumeration_done: bool,
}

/// The most recently dispatched batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// Keys in the batch.
    pub size: u64,
    /// Keys of it with an outcome (a batch is produced and written as one).
    pub processed: u64,
    id: u64,
}

/// Everything a live view shows: counters, per-plugin outcomes, recent errors.
#[derive(Debug, Clone, Default)]
pub struct LiveProgress {
    /// The run-wide counters.
    pub counters: ProgressSnapshot,
    /// Time since the run started executing.
    pub elapsed: Duration,
    /// The latest batch, once one was dispatched.
    pub batch: Option<BatchProgress>,
    /// Outcome counters per plugin, in run order.
    pub plugins: Vec<(String, Counters)>,
    /// The latest key errors, oldest first.
    pub recent_errors: Vec<KeyError>,
}

/// Marks its batch processed when dropped.
pub(crate) struct BatchGuard<'a> {
    progress: &'a Progress,
    id: u64,
}

impl Drop for BatchGuard<'_> {
    fn drop(&mut self) {
        let mut b = self.progress.batch.lock().unwrap();
        if b.id == self.id {
            b.processed = b.size;
        }
    }
}

impl Progress {
    pub(crate) fn add_enumerated(&self, n: u64) {
        self.enumerated.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_finished(&self, n: u64, written: u64) {
        self.finished.fetch_add(n, Ordering::Relaxed);
        self.written.fetch_add(written, Ordering::Relaxed);
    }

    pub(crate) fn set_enumeration_done(&self) {
        self.enumeration_done.store(true, Ordering::Relaxed);
    }

    /// Called when the run starts executing: the clock and the per-plugin tally.
    pub(crate) fn attach(&self, tally: Arc<Tally>) {
        self.started.get_or_init(Instant::now);
        let _ = self.tally.set(tally);
    }

    /// A batch of `size` keys was dispatched; it counts as processed when the
    /// returned guard drops (every key of it has an outcome by then).
    pub(crate) fn batch_started(&self, size: usize) -> BatchGuard<'_> {
        let mut b = self.batch.lock().unwrap();
        *b = BatchProgress {
            size: size as u64,
            processed: 0,
            id: b.id + 1,
        };
        BatchGuard {
            progress: self,
            id: b.id,
        }
    }

    /// Reads the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            enumerated: self.enumerated.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            enumeration_done: self.enumeration_done.load(Ordering::Relaxed),
        }
    }

    /// Reads everything a live view needs (takes each plugin's lock briefly).
    pub fn live(&self) -> LiveProgress {
        let batch = *self.batch.lock().unwrap();
        let (plugins, recent_errors) = self.tally.get().map(|t| t.live()).unwrap_or_default();
        LiveProgress {
            counters: self.snapshot(),
            elapsed: self.started.get().map(Instant::elapsed).unwrap_or_default(),
            batch: (batch.id > 0).then_some(batch),
            plugins,
            recent_errors,
        }
    }
}
