//! A sliding window: a ring of time buckets, each with its own Space-Saving
//! summary and count-min sketch, merged on query.

use super::WindowConfig;
use crate::ring::TimeRing;
use crate::topk::{CountMinSketch, SpaceSaving, TopK};
use serde::{Deserialize, Serialize};

/// One bucket's accesses.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Bucket {
    summary: SpaceSaving,
    sketch: CountMinSketch,
}

/// Which of the two windows the ring holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    /// The newest `buckets` buckets (the newest one still filling).
    Current,
    /// The `buckets` buckets before those.
    Previous,
}

/// The ring holds two windows' worth of buckets: the current window and the
/// previous one (for trends).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Window {
    pub(crate) config: WindowConfig,
    ring: TimeRing<Bucket>,
}

impl Window {
    pub(crate) fn new(config: WindowConfig, capacity: usize, sketch: &CountMinSketch) -> Self {
        Window {
            config,
            ring: TimeRing::new(2 * config.buckets, || Bucket {
                summary: SpaceSaving::new(capacity),
                sketch: sketch.clone(),
            }),
        }
    }

    fn bucket_ms(&self) -> u64 {
        self.config.length_ms / self.config.buckets as u64
    }

    /// Moves the newest bucket to the one containing `now_ms`.
    pub(crate) fn advance(&mut self, now_ms: u64) {
        let bucket = now_ms / self.bucket_ms();
        self.ring.advance(bucket, |b| {
            b.summary.clear();
            b.sketch.clear();
        });
    }

    /// Counts one access in the newest bucket.
    pub(crate) fn record(&mut self, key: &str, miss: bool) {
        let newest = self.ring.newest();
        let bucket = self.ring.get_mut(newest).expect("the newest bucket is in the ring");
        bucket.summary.add(key, 1, u64::from(miss));
        bucket.sketch.add(key, 1);
    }

    /// The absolute bucket numbers of a span (inclusive).
    fn bounds(&self, span: Span) -> (u64, u64) {
        let (newest, n) = (self.ring.newest(), self.config.buckets as u64);
        match span {
            Span::Current => (newest.saturating_sub(n - 1), newest),
            Span::Previous => (newest.saturating_sub(2 * n - 1), newest.saturating_sub(n)),
        }
    }

    /// The span's buckets merged into one top-k summary.
    pub(crate) fn top(&self, span: Span, capacity: usize) -> TopK {
        let (from, to) = self.bounds(span);
        TopK::merge(self.ring.range(from, to).map(|b| &b.summary), capacity)
    }

    /// The span's buckets merged into one sketch.
    pub(crate) fn sketch(&self, span: Span) -> CountMinSketch {
        let (from, to) = self.bounds(span);
        let mut merged = self.ring.slots()[0].sketch.clone();
        merged.clear();
        for bucket in self.ring.range(from, to) {
            merged
                .merge(&bucket.sketch)
                .expect("buckets share the sketch dimensions");
        }
        merged
    }

    /// Start of the span, in ms since the epoch.
    pub(crate) fn start_ms(&self, span: Span) -> u64 {
        self.bounds(span).0 * self.bucket_ms()
    }

    /// Milliseconds the span covers up to `now_ms` (the newest bucket is partial).
    pub(crate) fn covered_ms(&self, span: Span, now_ms: u64) -> u64 {
        match span {
            Span::Current => now_ms + 1 - self.start_ms(Span::Current),
            Span::Previous => self.config.length_ms,
        }
    }

    /// Estimated size in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .ring
                .slots()
                .iter()
                .map(|b| b.summary.memory_bytes() + b.sketch.memory_bytes())
                .sum::<usize>()
    }
}
