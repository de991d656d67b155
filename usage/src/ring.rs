//! A ring buffer of time slots indexed by absolute slot number (time divided
//! by the slot length), keeping the newest `len` slots. Advancing past slots
//! resets them; looking up a slot that fell out of the ring gives `None`.

use serde::{Deserialize, Serialize};

/// The newest `len` slots of a time series of `T`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TimeRing<T> {
    slots: Vec<T>,
    /// Absolute index of the newest slot.
    newest: u64,
}

impl<T> TimeRing<T> {
    /// A ring of `len` (at least 1) slots made by `make`, the newest being slot 0.
    pub(crate) fn new(len: usize, make: impl FnMut() -> T) -> Self {
        let mut slots = Vec::with_capacity(len.max(1));
        slots.resize_with(len.max(1), make);
        TimeRing { slots, newest: 0 }
    }

    /// Absolute index of the newest slot.
    pub(crate) fn newest(&self) -> u64 {
        self.newest
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Makes `index` the newest slot, resetting the slots between with `reset`.
    /// Going backwards does nothing.
    pub(crate) fn advance(&mut self, index: u64, mut reset: impl FnMut(&mut T)) {
        if index <= self.newest {
            return;
        }
        let len = self.slots.len() as u64;
        let fresh = (index - self.newest).min(len);
        for i in index + 1 - fresh..=index {
            reset(&mut self.slots[(i % len) as usize]);
        }
        self.newest = index;
    }

    fn position(&self, index: u64) -> Option<usize> {
        let len = self.slots.len() as u64;
        (index <= self.newest && self.newest - index < len).then_some((index % len) as usize)
    }

    /// The slot with absolute index `index`, if it is still in the ring.
    pub(crate) fn get(&self, index: u64) -> Option<&T> {
        self.position(index).map(|i| &self.slots[i])
    }

    /// The slot with absolute index `index`, if it is still in the ring.
    pub(crate) fn get_mut(&mut self, index: u64) -> Option<&mut T> {
        self.position(index).map(|i| &mut self.slots[i])
    }

    /// The slots `from..=to` that are still in the ring, oldest first.
    pub(crate) fn range(&self, from: u64, to: u64) -> impl Iterator<Item = &T> {
        (from..=to).filter_map(|i| self.get(i))
    }

    /// Every slot, in storage order.
    pub(crate) fn slots(&self) -> &[T] {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_resets_skipped_slots_and_forgets_old_ones() {
        let mut ring = TimeRing::new(3, || 0u32);
        ring.advance(10, |v| *v = 0);
        *ring.get_mut(10).unwrap() += 1;
        ring.advance(11, |v| *v = 0);
        *ring.get_mut(11).unwrap() += 2;
        *ring.get_mut(10).unwrap() += 1;
        assert_eq!(ring.range(8, 11).copied().collect::<Vec<_>>(), vec![0, 2, 2]);
        ring.advance(13, |v| *v = 0);
        assert_eq!(ring.get(10), None);
        assert_eq!(ring.range(11, 13).copied().collect::<Vec<_>>(), vec![2, 0, 0]);
        ring.advance(100, |v| *v = 0);
        assert_eq!(ring.range(98, 100).copied().collect::<Vec<_>>(), vec![0, 0, 0]);
        ring.advance(50, |v| *v = 9);
        assert_eq!(ring.newest(), 100);
    }
}
