//! Heavy hitters in bounded memory: which keys are accessed most, with error bounds.
//!
//! - [`SpaceSaving`] (Metwally, Agrawal, El Abbadi, 2005) keeps `k` counters.
//!   A key already monitored increments its counter; a new key takes over the
//!   counter with the smallest count `min`, starting at `min + 1` with a
//!   recorded error of `min`. Every monitored key's count overestimates its
//!   true count by at most its recorded error, and `error ≤ min ≤ N/k` after
//!   `N` accesses; any key whose true count exceeds `N/k` is monitored.
//!   Misses are counted from the moment a key is monitored, so the true
//!   number of misses lies in `[misses, misses + error]`, and
//!   `count - error` accesses (exactly) were observed while monitored.
//! - [`TopK`] is a summary merged from several Space-Saving summaries (the
//!   buckets of a sliding window): counts and errors add up, a key missing
//!   from a full part is charged that part's minimum (an upper bound of its
//!   count there), and the guarantees carry over with `N` the total of all parts.
//! - [`CountMinSketch`] (Cormode and Muthukrishnan, 2005) estimates the count
//!   of any key, monitored or not: `depth = ⌈ln(1/δ)⌉` rows of
//!   `width = ⌈e/ε⌉` counters; the estimate never underestimates and exceeds
//!   the true count by more than `εN` with probability at most `δ`.

mod count_min;
mod space_saving;

pub use count_min::CountMinSketch;
pub use space_saving::{Counter, SpaceSaving, TopK};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Zipf;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;

    /// A Zipf(s) stream over `keys` keys, and the exact counts.
    fn zipf_stream(keys: usize, s: f64, n: usize, seed: u64) -> (Vec<String>, HashMap<String, u64>) {
        let zipf = Zipf::new(keys, s);
        let mut rng = StdRng::seed_from_u64(seed);
        let stream: Vec<String> = (0..n).map(|_| format!("key:{}", zipf.sample(&mut rng))).collect();
        let mut exact = HashMap::new();
        for key in &stream {
            *exact.entry(key.clone()).or_insert(0) += 1;
        }
        (stream, exact)
    }

    #[test]
    fn space_saving_respects_its_error_bounds_on_zipf_streams() {
        for (s, k) in [(0.8, 50), (1.0, 100), (1.3, 200)] {
            let n = 200_000;
            let (stream, exact) = zipf_stream(20_000, s, n, 7);
            let mut summary = SpaceSaving::new(k);
            for (i, key) in stream.iter().enumerate() {
                summary.add(key, 1, u64::from(i % 3 == 0));
            }
            assert_eq!(summary.total(), n as u64);
            let bound = n as u64 / k as u64;
            for counter in summary.counters() {
                let truth = exact[&counter.key];
                assert!(counter.count >= truth, "{counter:?} underestimates {truth}");
                assert!(counter.count - truth <= counter.error, "{counter:?} vs {truth}");
                assert!(counter.error <= bound, "{counter:?} error above N/k = {bound}");
            }
            for (key, &truth) in &exact {
                if truth > bound {
                    assert!(summary.get(key).is_some(), "{key} ({truth} > N/k) is not monitored");
                }
            }
            // The heaviest keys come out in order of their true counts.
            let mut truths: Vec<u64> = exact.values().copied().collect();
            truths.sort_unstable_by(|a, b| b.cmp(a));
            let top = summary.top(5);
            for (counter, truth) in top.iter().zip(&truths) {
                assert!(counter.count - counter.error <= *truth && *truth <= counter.count);
            }
        }
    }

    #[test]
    fn merged_summaries_keep_the_bounds_of_the_whole_stream() {
        let n = 120_000;
        let (stream, exact) = zipf_stream(10_000, 1.1, n, 11);
        let k = 100;
        let parts: Vec<SpaceSaving> = stream
            .chunks(n / 6)
            .map(|chunk| {
                let mut part = SpaceSaving::new(k);
                for key in chunk {
                    part.add(key, 1, 0);
                }
                part
            })
            .collect();
        let merged = TopK::merge(&parts, k);
        assert_eq!(merged.total, n as u64);
        assert_eq!(merged.counters.len(), k);
        let bound = n as u64 / k as u64;
        for counter in &merged.counters {
            let truth = exact[&counter.key];
            assert!(
                counter.count >= truth && counter.count - truth <= counter.error,
                "{counter:?} vs {truth}"
            );
            assert!(counter.error <= bound);
        }
        assert!(merged.floor <= bound);
        for (key, &truth) in &exact {
            if merged.get(key).is_none() {
                assert!(truth <= merged.floor, "{key}: {truth} above the floor {}", merged.floor);
            }
        }
        assert!(merged.counters.windows(2).all(|w| w[0].count >= w[1].count));
    }

    #[test]
    fn count_min_never_underestimates_and_stays_within_epsilon_n_with_probability_delta() {
        let n = 200_000;
        let (stream, exact) = zipf_stream(50_000, 0.9, n, 3);
        let (epsilon, delta) = (0.001, 0.01);
        let mut sketch = CountMinSketch::with_error(epsilon, delta);
        assert_eq!((sketch.width(), sketch.depth()), (2719, 5));
        for key in &stream {
            sketch.add(key, 1);
        }
        let allowed = (epsilon * n as f64).ceil() as u64;
        assert_eq!(sketch.error_bound(), allowed);
        let mut outside = 0;
        for (key, &truth) in &exact {
            let estimate = sketch.estimate(key);
            assert!(estimate >= truth);
            if estimate - truth > allowed {
                outside += 1;
            }
        }
        assert!(
            (outside as f64) <= delta * exact.len() as f64,
            "{outside} of {} keys beyond εN",
            exact.len()
        );
        // Keys never seen are estimated within the same bound.
        let unseen = (0..1000)
            .filter(|i| sketch.estimate(&format!("absent:{i}")) > allowed)
            .count();
        assert!(unseen as f64 <= delta * 1000.0);
    }
}
