//! Effectiveness: did warming raise the hit rate, does the cache hold what is
//! hot, and did the latency saved outweigh the time spent warming.
//!
//! All of it is arithmetic over numbers the caller supplies:
//!
//! - [`HitStats`] counts requests, hits and recorded latencies over any set of events.
//! - [`BeforeAfter`] compares the window before an instant (a warming run's
//!   start) with the window after it; [`RollingHitRate`] keeps per-bucket
//!   stats for the last buckets.
//! - [`coverage`] is the fraction of a hot set (e.g. [`crate::UsageTracker::hot`])
//!   present in the cache, given a membership test.
//! - [`cost_benefit`]: misses avoided are the drop in miss rate applied to
//!   the requests after, `(miss rate before − miss rate after) × requests after`
//!   (negative when the hit rate fell); each avoided miss saves the mean
//!   recorded miss latency minus the mean hit latency (0 when hits carry no
//!   latency), and the net gain subtracts the producer time spent warming.

use crate::event::AccessEvent;
use crate::ring::TimeRing;
use serde::{Deserialize, Serialize};

/// Requests, hits and recorded latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HitStats {
    /// Requests counted.
    pub requests: u64,
    /// Of which hits.
    pub hits: u64,
    /// Sum of the latencies recorded on misses, in ms.
    pub miss_latency_ms: f64,
    /// Misses that recorded a latency.
    pub miss_latency_samples: u64,
    /// Sum of the latencies recorded on hits, in ms.
    pub hit_latency_ms: f64,
    /// Hits that recorded a latency.
    pub hit_latency_samples: u64,
}

impl HitStats {
    /// Counts one request.
    pub fn add(&mut self, hit: bool, latency_ms: Option<f64>) {
        self.requests += 1;
        self.hits += u64::from(hit);
        if let Some(latency) = latency_ms {
            if hit {
                self.hit_latency_ms += latency;
                self.hit_latency_samples += 1;
            } else {
                self.miss_latency_ms += latency;
                self.miss_latency_samples += 1;
            }
        }
    }

    /// Counts one event.
    pub fn record(&mut self, event: &AccessEvent) {
        self.add(event.hit, event.latency_ms);
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &HitStats) {
        self.requests += other.requests;
        self.hits += other.hits;
        self.miss_latency_ms += other.miss_latency_ms;
        self.miss_latency_samples += other.miss_latency_samples;
        self.hit_latency_ms += other.hit_latency_ms;
        self.hit_latency_samples += other.hit_latency_samples;
    }

    /// Requests that missed.
    pub fn misses(&self) -> u64 {
        self.requests - self.hits
    }

    /// Hits over requests; `None` without requests.
    pub fn hit_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.hits as f64 / self.requests as f64)
    }

    /// Mean recorded miss latency.
    pub fn mean_miss_latency_ms(&self) -> Option<f64> {
        (self.miss_latency_samples > 0).then(|| self.miss_latency_ms / self.miss_latency_samples as f64)
    }

    /// Mean recorded hit latency.
    pub fn mean_hit_latency_ms(&self) -> Option<f64> {
        (self.hit_latency_samples > 0).then(|| self.hit_latency_ms / self.hit_latency_samples as f64)
    }
}

/// Hit statistics in the window before an instant and the window after it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BeforeAfter {
    /// The instant (e.g. when warming ran), in ms since the epoch.
    pub at_ms: u64,
    /// Length of each window, in ms.
    pub window_ms: u64,
    /// Events in `[at − window, at)`.
    pub before: HitStats,
    /// Events in `[at, at + window)`.
    pub after: HitStats,
}

impl BeforeAfter {
    /// Empty windows around `at_ms`.
    pub fn new(at_ms: u64, window_ms: u64) -> Self {
        BeforeAfter {
            at_ms,
            window_ms,
            before: HitStats::default(),
            after: HitStats::default(),
        }
    }

    /// Counts `event` in the window it falls in; false when it falls in neither.
    pub fn record(&mut self, event: &AccessEvent) -> bool {
        if event.ts_ms < self.at_ms && event.ts_ms >= self.at_ms.saturating_sub(self.window_ms) {
            self.before.record(event);
        } else if event.ts_ms >= self.at_ms && event.ts_ms - self.at_ms < self.window_ms {
            self.after.record(event);
        } else {
            return false;
        }
        true
    }

    /// Hit rate after minus hit rate before; `None` when a window is empty.
    pub fn change(&self) -> Option<f64> {
        Some(self.after.hit_rate()? - self.before.hit_rate()?)
    }
}

/// Hit statistics per time bucket for the last buckets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollingHitRate {
    bucket_ms: u64,
    ring: TimeRing<HitStats>,
}

impl RollingHitRate {
    /// `buckets` buckets of `bucket_ms` (both at least 1).
    pub fn new(bucket_ms: u64, buckets: usize) -> Self {
        RollingHitRate {
            bucket_ms: bucket_ms.max(1),
            ring: TimeRing::new(buckets, HitStats::default),
        }
    }

    /// Counts `event`; events older than the kept buckets are ignored.
    pub fn record(&mut self, event: &AccessEvent) {
        let bucket = event.ts_ms / self.bucket_ms;
        self.ring.advance(bucket, |s| *s = HitStats::default());
        if let Some(stats) = self.ring.get_mut(bucket) {
            stats.record(event);
        }
    }

    /// The kept buckets, oldest first, as (start in ms, stats).
    pub fn buckets(&self) -> Vec<(u64, HitStats)> {
        let newest = self.ring.newest();
        let oldest = newest.saturating_sub(self.ring.len() as u64 - 1);
        (oldest..=newest)
            .filter_map(|b| self.ring.get(b).map(|s| (b * self.bucket_ms, *s)))
            .collect()
    }

    /// All kept buckets together.
    pub fn total(&self) -> HitStats {
        let mut total = HitStats::default();
        for stats in self.ring.slots() {
            total.merge(stats);
        }
        total
    }
}

/// How much of a hot set the cache holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Keys in the hot set.
    pub hot: usize,
    /// Of which in the cache.
    pub cached: usize,
    /// `cached / hot`; `None` for an empty hot set.
    pub fraction: Option<f64>,
    /// The hot keys not in the cache, in the hot set's order.
    pub missing: Vec<String>,
}

/// The fraction of `hot` keys for which `is_cached` says yes.
pub fn coverage<'a>(hot: impl IntoIterator<Item = &'a str>, mut is_cached: impl FnMut(&str) -> bool) -> Coverage {
    let (mut total, mut missing) = (0, Vec::new());
    for key in hot {
        total += 1;
        if !is_cached(key) {
            missing.push(key.to_string());
        }
    }
    let cached = total - missing.len();
    Coverage {
        hot: total,
        cached,
        fraction: (total > 0).then(|| cached as f64 / total as f64),
        missing,
    }
}

/// What warming spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WarmingCost {
    /// Keys written by warming.
    pub keys_warmed: u64,
    /// Time the producers (plugins) spent building values, in ms.
    pub producer_ms: f64,
}

/// What warming spent and what it saved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostBenefit {
    /// Keys written by warming.
    pub keys_warmed: u64,
    /// Producer time spent, in ms.
    pub producer_ms: f64,
    /// `(miss rate before − miss rate after) × requests after` (negative if the hit rate fell).
    pub misses_avoided: f64,
    /// Misses avoided per key warmed.
    pub misses_avoided_per_key: Option<f64>,
    /// Misses avoided × (mean miss latency − mean hit latency); `None` without recorded miss latencies.
    pub latency_saved_ms: Option<f64>,
    /// Latency saved minus producer time.
    pub net_ms: Option<f64>,
}

/// Cost-benefit of warming from the hit statistics before and after it.
/// Latencies come from both windows' recorded samples.
pub fn cost_benefit(cost: WarmingCost, before: &HitStats, after: &HitStats) -> CostBenefit {
    let miss_rate = |s: &HitStats| s.hit_rate().map(|h| 1.0 - h);
    let misses_avoided = match (miss_rate(before), miss_rate(after)) {
        (Some(b), Some(a)) => (b - a) * after.requests as f64,
        _ => 0.0,
    };
    let mut both = *before;
    both.merge(after);
    let latency_saved_ms = both
        .mean_miss_latency_ms()
        .map(|miss| misses_avoided * (miss - both.mean_hit_latency_ms().unwrap_or(0.0)));
    CostBenefit {
        keys_warmed: cost.keys_warmed,
        producer_ms: cost.producer_ms,
        misses_avoided,
        misses_avoided_per_key: (cost.keys_warmed > 0).then(|| misses_avoided / cost.keys_warmed as f64),
        latency_saved_ms,
        net_ms: latency_saved_ms.map(|saved| saved - cost.producer_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts_ms: u64, hit: bool, latency_ms: Option<f64>) -> AccessEvent {
        AccessEvent {
            ts_ms,
            key: "k".into(),
            hit,
            latency_ms,
        }
    }

    #[test]
    fn before_and_after_a_warming_run() {
        let mut ba = BeforeAfter::new(1000, 100);
        // Before: 10 requests, 4 hits; after: 10 requests, 9 hits; one too early, one too late.
        for i in 0..10 {
            assert!(ba.record(&event(900 + i, i < 4, (i >= 4).then_some(50.0))));
            assert!(ba.record(&event(1000 + i, i < 9, Some(if i < 9 { 2.0 } else { 30.0 }))));
        }
        assert!(!ba.record(&event(899, true, None)));
        assert!(!ba.record(&event(1100, true, None)));
        assert_eq!(ba.before.hit_rate(), Some(0.4));
        assert_eq!(ba.after.hit_rate(), Some(0.9));
        assert!((ba.change().unwrap() - 0.5).abs() < 1e-12);

        let cb = cost_benefit(
            WarmingCost {
                keys_warmed: 4,
                producer_ms: 20.0,
            },
            &ba.before,
            &ba.after,
        );
        // (0.6 − 0.1) × 10 requests = 5 misses avoided; each saves (6×50 + 30)/7 − 2 ms.
        assert!((cb.misses_avoided - 5.0).abs() < 1e-9);
        assert!((cb.misses_avoided_per_key.unwrap() - 1.25).abs() < 1e-9);
        let per_miss = 330.0 / 7.0 - 2.0;
        assert!((cb.latency_saved_ms.unwrap() - 5.0 * per_miss).abs() < 1e-9);
        assert!((cb.net_ms.unwrap() - (5.0 * per_miss - 20.0)).abs() < 1e-9);

        let nothing = cost_benefit(WarmingCost::default(), &HitStats::default(), &ba.after);
        assert_eq!((nothing.misses_avoided, nothing.misses_avoided_per_key), (0.0, None));
    }

    #[test]
    fn coverage_of_the_hot_set() {
        let cached = ["a", "c"];
        let c = coverage(["a", "b", "c", "d"], |k| cached.contains(&k));
        assert_eq!((c.hot, c.cached, c.fraction), (4, 2, Some(0.5)));
        assert_eq!(c.missing, vec!["b", "d"]);
        assert_eq!(coverage([], |_| true).fraction, None);
    }

    #[test]
    fn rolling_hit_rate_keeps_the_last_buckets() {
        let mut rolling = RollingHitRate::new(10, 3);
        for ts in 0..50 {
            rolling.record(&event(ts, ts % 2 == 0, None));
        }
        let buckets = rolling.buckets();
        assert_eq!(buckets.iter().map(|b| b.0).collect::<Vec<_>>(), vec![20, 30, 40]);
        assert!(buckets.iter().all(|(_, s)| s.requests == 10 && s.hits == 5));
        assert_eq!(rolling.total().hit_rate(), Some(0.5));
    }
}
