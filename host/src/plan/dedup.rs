//! De-duplication of enumerated keys in bounded memory.
//!
//! A set of every key a plugin listed grows with the run (10 M keys ≈ 150 MB
//! of hashes), which breaks "memory stays flat". [`RecentKeys`] remembers the
//! hashes of the most recent keys only, in two generations of at most
//! [`GENERATION`] (114,688) hashes each: a key repeated within the last `GENERATION`
//! distinct keys is always caught; one repeated further back may not be.
//!
//! A repeat that slips through is harmless: it is produced and written a
//! second time, and the write policy decides what that does (`if-missing`
//! finds the key it just wrote and counts it as `skipped_fresh`; `always`
//! writes the same value again). The cost is that key's work, not a wrong
//! cache entry; the `duplicates` counter counts the repeats caught.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Hashes per generation: at most 2^17 buckets of 9 bytes (≈ 1.2 MB) each, so
/// ≈ 2.4 MB per plugin at most (small enough to stay in cache, which matters at
/// a few hundred nanoseconds per key), while remembering at least the last 114,688 keys.
pub(crate) const GENERATION: usize = (1 << 17) / 8 * 7;

/// The remembered hashes are already uniformly distributed: store them as they are.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashSet64 = HashSet<u64, BuildHasherDefault<Identity>>;

/// The recently listed keys of one plugin.
pub(crate) struct RecentKeys {
    hasher: std::collections::hash_map::RandomState,
    current: HashSet64,
    previous: HashSet64,
    generation: usize,
}

impl RecentKeys {
    pub(crate) fn new() -> RecentKeys {
        RecentKeys::with_generation(GENERATION)
    }

    fn with_generation(generation: usize) -> RecentKeys {
        RecentKeys {
            hasher: Default::default(),
            current: HashSet64::default(),
            previous: HashSet64::default(),
            generation,
        }
    }

    /// `true` when `key` is new (not among the recent keys), and remembers it.
    pub(crate) fn insert(&mut self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        if self.current.contains(&hash) || self.previous.contains(&hash) {
            return false;
        }
        if self.current.len() >= self.generation {
            // The oldest generation goes; its allocation is reused for the next one.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(hash);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_the_window_are_caught() {
        let mut seen = RecentKeys::with_generation(4);
        assert!(seen.insert("a"));
        assert!(seen.insert("b"));
        assert!(!seen.insert("a"));
        for k in ["c", "d", "e", "f", "g"] {
            assert!(seen.insert(k));
        }
        // "a".."d" filled the first generation, "e".."g" are in the current one:
        // everything from the last 4 keys (and more) is still remembered.
        for k in ["d", "e", "f", "g", "a"] {
            assert!(!seen.insert(k), "{k} is recent");
        }
    }

    #[test]
    fn memory_is_bounded_by_two_generations() {
        let mut seen = RecentKeys::with_generation(100);
        for i in 0..10_000 {
            assert!(seen.insert(&format!("k{i}")));
        }
        assert!(seen.current.len() + seen.previous.len() <= 200);
        assert!(seen.current.capacity() < 1000 && seen.previous.capacity() < 1000);
        assert!(!seen.insert("k9999"));
        assert!(
            seen.insert("k0"),
            "a key far back is forgotten (and written again, harmlessly)"
        );
    }
}
