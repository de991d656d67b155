//! Live progress of a run, read by the CLI's progress bar (and later the API).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters updated by the executor as keys are listed and finished.
#[derive(Debug, Default)]
pub struct Progress {
    enumerated: AtomicU64,
    finished: AtomicU64,
    written: AtomicU64,
    enumeration_done: AtomicBool,
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

    /// Reads the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        ProgressSnapshot {
            enumerated: self.enumerated.load(Ordering::Relaxed),
            finished: self.finished.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            enumeration_done: self.enumeration_done.load(Ordering::Relaxed),
        }
    }
}
