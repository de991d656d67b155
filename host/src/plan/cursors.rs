//! Cursor cycle detection for paged `enumerate`, in bounded memory.
//!
//! A plugin that hands back cursors a → b → a never finishes enumerating. The
//! host remembers the hashes of the first [`EXACT`] cursors of a plugin's run
//! exactly, so any repeat among them is caught at once; beyond that it keeps a
//! single checkpoint that moves to the current cursor after 1, 2, 4, 8, …
//! pages (Brent's method), which catches every cycle of a deterministic
//! cursor sequence within twice its length. Memory: at most `EXACT` × 8 bytes
//! (plus the hash set's overhead), about 1 MiB, per enumerating plugin.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

/// Cursors remembered exactly per plugin run.
const EXACT: usize = 65_536;

/// Longest cursor accepted, in bytes: a cursor is held by the host between pages.
pub(crate) const MAX_CURSOR_BYTES: usize = 64 << 10;

/// The cursors one plugin returned so far in this run.
pub(crate) struct CursorHistory {
    hasher: RandomState,
    exact: HashSet<u64>,
    checkpoint: Option<u64>,
    since_checkpoint: u64,
    power: u64,
}

impl CursorHistory {
    /// No cursors seen.
    pub(crate) fn new() -> CursorHistory {
        CursorHistory {
            hasher: RandomState::new(),
            exact: HashSet::new(),
            checkpoint: None,
            since_checkpoint: 0,
            power: 1,
        }
    }

    /// Records `cursor`; returns `false` when it was returned before in this run.
    pub(crate) fn first_time(&mut self, cursor: &str) -> bool {
        let hash = self.hasher.hash_one(cursor);
        if self.exact.contains(&hash) || self.checkpoint == Some(hash) {
            return false;
        }
        if self.exact.len() < EXACT {
            self.exact.insert(hash);
            return true;
        }
        self.since_checkpoint += 1;
        if self.checkpoint.is_none() || self.since_checkpoint == self.power {
            self.checkpoint = Some(hash);
            self.since_checkpoint = 0;
            self.power *= 2;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_returned_again_is_caught_however_far_back() {
        let mut h = CursorHistory::new();
        assert!(h.first_time("a"));
        assert!(h.first_time("b"));
        assert!(!h.first_time("a"), "a → b → a is a cycle");
        let mut h = CursorHistory::new();
        for i in 0..1000 {
            assert!(h.first_time(&i.to_string()));
        }
        assert!(!h.first_time("3"));
    }

    #[test]
    fn cycles_beyond_the_exact_window_are_still_caught_in_bounded_memory() {
        let mut h = CursorHistory::new();
        for i in 0..EXACT + 10 {
            assert!(h.first_time(&format!("page-{i}")));
        }
        // Now a cycle of length 1000 among new cursors: caught within a few laps.
        let mut pages = 0;
        let caught = (0..).map(|i| format!("loop-{}", i % 1000)).any(|c| {
            pages += 1;
            !h.first_time(&c)
        });
        assert!(caught);
        assert!(pages <= 4 * 1000 + EXACT, "caught after {pages} pages");
        assert_eq!(h.exact.len(), EXACT);
    }

    #[test]
    fn distinct_cursors_are_never_flagged() {
        let mut h = CursorHistory::new();
        assert!((0..200_000).all(|i| h.first_time(&format!("c{i}"))));
    }
}
