//! The count-min sketch (see the module docs of [`crate::topk`]).

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// Estimates the count of any key in `depth × width` counters.
///
/// Row hashes come from a fixed 64-bit hash (FNV-1a, then a SplitMix64
/// finalizer per row), so sketches stay mergeable and meaningful after being
/// persisted and loaded by another process or another build. The counters
/// are allocated on the first [`add`](Self::add).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountMinSketch {
    width: usize,
    depth: usize,
    total: u64,
    counts: Vec<u32>,
}

impl CountMinSketch {
    /// A sketch of `depth` rows of `width` counters (both at least 1).
    pub fn new(width: usize, depth: usize) -> Self {
        assert!(width > 0 && depth > 0, "a count-min sketch needs at least one counter");
        CountMinSketch {
            width,
            depth,
            total: 0,
            counts: Vec::new(),
        }
    }

    /// The sketch whose estimates exceed the truth by more than `epsilon × total`
    /// with probability at most `delta`: width `⌈e/ε⌉`, depth `⌈ln(1/δ)⌉`.
    pub fn with_error(epsilon: f64, delta: f64) -> Self {
        assert!(epsilon > 0.0 && epsilon < 1.0 && delta > 0.0 && delta < 1.0);
        let width = (std::f64::consts::E / epsilon).ceil() as usize;
        let depth = (1.0 / delta).ln().ceil().max(1.0) as usize;
        CountMinSketch::new(width, depth)
    }

    /// Counters per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Accesses counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// `⌈ε × total⌉` with `ε = e / width`: the overestimate exceeded with probability at most δ.
    pub fn error_bound(&self) -> u64 {
        (std::f64::consts::E / self.width as f64 * self.total as f64).ceil() as u64
    }

    /// The counter of `key` (hashed to `hash`) in each row.
    fn cells(&self, hash: u64) -> impl Iterator<Item = usize> {
        let width = self.width;
        (0..self.depth).map(move |row| {
            let h = splitmix64(hash ^ (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            row * width + (h % width as u64) as usize
        })
    }

    /// Counts `weight` accesses of `key` (counters saturate at `u32::MAX`).
    pub fn add(&mut self, key: &str, weight: u32) {
        if self.counts.is_empty() {
            self.counts = vec![0; self.width * self.depth];
        }
        self.total += u64::from(weight);
        for cell in self.cells(fnv1a(key.as_bytes())) {
            self.counts[cell] = self.counts[cell].saturating_add(weight);
        }
    }

    /// Estimated count of `key`: never below the truth.
    pub fn estimate(&self, key: &str) -> u64 {
        if self.counts.is_empty() {
            return 0;
        }
        self.cells(fnv1a(key.as_bytes()))
            .map(|cell| u64::from(self.counts[cell]))
            .min()
            .unwrap_or(0)
    }

    /// Adds `other`'s counts (a sketch of the union of both streams).
    pub fn merge(&mut self, other: &CountMinSketch) -> Result<()> {
        ensure!(
            (self.width, self.depth) == (other.width, other.depth),
            "cannot merge a {}×{} count-min sketch into a {}×{} one",
            other.depth,
            other.width,
            self.depth,
            self.width
        );
        if other.counts.is_empty() {
            return Ok(());
        }
        if self.counts.is_empty() {
            self.counts = vec![0; self.width * self.depth];
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total += other.total;
        Ok(())
    }

    /// Forgets everything, keeping the counters' memory.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.total = 0;
    }

    /// Estimated size in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.capacity() * 4
    }
}

/// 64-bit FNV-1a: stable across processes, platforms and Rust versions.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// SplitMix64's finalizer: spreads FNV's bits so each row gets an independent-looking hash.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_equals_sketching_the_union() {
        let (mut a, mut b, mut both) = (
            CountMinSketch::new(64, 3),
            CountMinSketch::new(64, 3),
            CountMinSketch::new(64, 3),
        );
        for i in 0..500 {
            let key = format!("k{}", i % 37);
            if i % 2 == 0 { &mut a } else { &mut b }.add(&key, 1);
            both.add(&key, 1);
        }
        a.merge(&b).unwrap();
        assert_eq!(a, both);
        assert!(a.merge(&CountMinSketch::new(32, 3)).is_err());
        a.clear();
        assert_eq!((a.estimate("k1"), a.total()), (0, 0));
    }

    #[test]
    fn hashes_are_stable() {
        // Persisted sketches depend on these values never changing (FNV-1a test vectors).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
