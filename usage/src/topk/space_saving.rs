//! The Space-Saving summary and merged top-k snapshots (see the module docs of [`crate::topk`]).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A monitored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// The key.
    pub key: String,
    /// Estimated accesses: never below the true count, at most `error` above it.
    pub count: u64,
    /// The most by which `count` may overestimate.
    pub error: u64,
    /// Misses counted while monitored: the true number lies in `[misses, misses + error]`.
    pub misses: u64,
}

impl Counter {
    /// Accesses certainly made (`count - error`): exactly those observed while monitored.
    pub fn observed(&self) -> u64 {
        self.count - self.error
    }

    /// Hit rate over the observed accesses; `None` when none was observed.
    pub fn hit_rate(&self) -> Option<f64> {
        let observed = self.observed();
        (observed > 0).then(|| observed.saturating_sub(self.misses) as f64 / observed as f64)
    }
}

/// Space-Saving heavy hitters with `capacity` counters.
///
/// Counters live in slots; a binary min-heap of slot numbers (with each
/// slot's heap position) finds the smallest count in O(1) and restores order
/// in O(log k) after an increment, and a map finds a key's slot.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "State")]
pub struct SpaceSaving {
    capacity: usize,
    total: u64,
    misses: u64,
    slots: Vec<Counter>,
    heap: Vec<u32>,
    pos: Vec<u32>,
    index: HashMap<String, u32>,
}

/// The serialized form: the counters, from which the heap and index are rebuilt.
#[derive(Serialize, Deserialize)]
struct State {
    capacity: usize,
    total: u64,
    misses: u64,
    counters: Vec<Counter>,
}

#[derive(Serialize)]
struct StateRef<'a> {
    capacity: usize,
    total: u64,
    misses: u64,
    counters: &'a [Counter],
}

impl Serialize for SpaceSaving {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StateRef {
            capacity: self.capacity,
            total: self.total,
            misses: self.misses,
            counters: &self.slots,
        }
        .serialize(serializer)
    }
}

impl TryFrom<State> for SpaceSaving {
    type Error = String;

    fn try_from(state: State) -> Result<Self, String> {
        if state.capacity == 0 || state.counters.len() > state.capacity {
            return Err(format!(
                "a Space-Saving summary of capacity {} cannot hold {} counters",
                state.capacity,
                state.counters.len()
            ));
        }
        let mut summary = SpaceSaving::new(state.capacity);
        summary.total = state.total;
        summary.misses = state.misses;
        for counter in state.counters {
            if counter.error > counter.count || summary.index.contains_key(&counter.key) {
                return Err(format!("invalid or duplicate counter for {:?}", counter.key));
            }
            summary.push(counter);
        }
        Ok(summary)
    }
}

impl SpaceSaving {
    /// An empty summary of `capacity` (at least 1) counters.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a Space-Saving summary needs at least one counter");
        SpaceSaving {
            capacity,
            total: 0,
            misses: 0,
            slots: Vec::new(),
            heap: Vec::new(),
            pos: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Counts `weight` accesses of `key`, `misses` of which missed.
    pub fn add(&mut self, key: &str, weight: u64, misses: u64) {
        self.total += weight;
        self.misses += misses;
        if let Some(&slot) = self.index.get(key) {
            let counter = &mut self.slots[slot as usize];
            counter.count += weight;
            counter.misses += misses;
            self.sift_down(self.pos[slot as usize] as usize);
        } else if self.slots.len() < self.capacity {
            self.push(Counter {
                key: key.to_string(),
                count: weight,
                error: 0,
                misses,
            });
        } else {
            // Take over the smallest counter, reusing the evicted key's buffers.
            let slot = self.heap[0];
            let counter = &mut self.slots[slot as usize];
            let (mut name, _) = self.index.remove_entry(&counter.key).expect("every slot is indexed");
            name.clear();
            name.push_str(key);
            counter.key.clear();
            counter.key.push_str(key);
            counter.error = counter.count;
            counter.count += weight;
            counter.misses = misses;
            self.index.insert(name, slot);
            self.sift_down(0);
        }
    }

    fn push(&mut self, counter: Counter) {
        let slot = self.slots.len() as u32;
        self.index.insert(counter.key.clone(), slot);
        self.slots.push(counter);
        self.heap.push(slot);
        self.pos.push(slot);
        self.sift_up(self.heap.len() - 1);
    }

    fn count_at(&self, position: usize) -> u64 {
        self.slots[self.heap[position] as usize].count
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.count_at(parent) <= self.count_at(i) {
                break;
            }
            self.swap(parent, i);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if left < self.heap.len() && self.count_at(left) < self.count_at(smallest) {
                smallest = left;
            }
            if right < self.heap.len() && self.count_at(right) < self.count_at(smallest) {
                smallest = right;
            }
            if smallest == i {
                return;
            }
            self.swap(i, smallest);
            i = smallest;
        }
    }

    /// Forgets everything, keeping the memory for reuse.
    pub fn clear(&mut self) {
        self.total = 0;
        self.misses = 0;
        self.slots.clear();
        self.heap.clear();
        self.pos.clear();
        self.index.clear();
    }

    /// Number of counters.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Accesses counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Misses counted (all of them, monitored or not).
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Upper bound of the count of any key not monitored: the smallest count
    /// when every counter is in use, otherwise 0 (every key seen is monitored).
    /// At most `total / capacity`.
    pub fn floor(&self) -> u64 {
        if self.slots.len() < self.capacity {
            0
        } else {
            self.count_at(0)
        }
    }

    /// The counter of `key`, if monitored.
    pub fn get(&self, key: &str) -> Option<&Counter> {
        self.index.get(key).map(|&slot| &self.slots[slot as usize])
    }

    /// Every counter, in no particular order.
    pub fn counters(&self) -> &[Counter] {
        &self.slots
    }

    /// The `n` counters with the highest counts, highest first (ties by key).
    pub fn top(&self, n: usize) -> Vec<Counter> {
        let mut top = self.slots.clone();
        sort_by_count(&mut top);
        top.truncate(n);
        top
    }

    /// Estimated heap and inline size in bytes (counters, heap, index, keys).
    pub fn memory_bytes(&self) -> usize {
        let keys: usize = self.slots.iter().map(|c| c.key.capacity()).sum();
        std::mem::size_of::<Self>()
            + self.slots.capacity() * std::mem::size_of::<Counter>()
            + (self.heap.capacity() + self.pos.capacity()) * 4
            + self.index.capacity() * (std::mem::size_of::<(String, u32)>() + 1)
            + 2 * keys
    }
}

/// Highest count first; equal counts by key, so results are deterministic.
fn sort_by_count(counters: &mut [Counter]) {
    counters.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
}

/// A top-k summary merged from Space-Saving summaries, highest count first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    /// Up to `capacity` counters, highest count first.
    pub counters: Vec<Counter>,
    /// Accesses in all parts.
    pub total: u64,
    /// Misses in all parts.
    pub misses: u64,
    /// Upper bound of the count of any key not among `counters`.
    pub floor: u64,
}

impl TopK {
    /// Merges `parts` into at most `capacity` counters. A key absent from a
    /// part is charged that part's [`SpaceSaving::floor`] in both count and
    /// error, so each count still overestimates by at most its error, and
    /// errors stay within `total / capacity` of the parts' own capacities.
    pub fn merge<'a>(parts: impl IntoIterator<Item = &'a SpaceSaving>, capacity: usize) -> TopK {
        struct Sum {
            count: i64,
            error: i64,
            misses: u64,
        }
        let mut sums: HashMap<&str, Sum> = HashMap::new();
        let (mut total, mut misses, mut floors) = (0, 0, 0);
        for part in parts {
            total += part.total;
            misses += part.misses;
            let floor = part.floor();
            floors += floor;
            for c in &part.slots {
                let sum = sums.entry(&c.key).or_insert(Sum {
                    count: 0,
                    error: 0,
                    misses: 0,
                });
                sum.count += (c.count - floor) as i64;
                sum.error += c.error as i64 - floor as i64;
                sum.misses += c.misses;
            }
        }
        let mut counters: Vec<Counter> = sums
            .into_iter()
            .map(|(key, sum)| Counter {
                key: key.to_string(),
                count: (sum.count + floors as i64) as u64,
                error: (sum.error + floors as i64) as u64,
                misses: sum.misses,
            })
            .collect();
        sort_by_count(&mut counters);
        let dropped = counters.get(capacity).map_or(0, |c| c.count);
        counters.truncate(capacity);
        TopK {
            counters,
            total,
            misses,
            floor: floors.max(dropped),
        }
    }

    /// The counter of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Counter> {
        self.counters.iter().find(|c| c.key == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_takes_over_the_smallest_counter() {
        let mut s = SpaceSaving::new(2);
        s.add("a", 3, 1);
        s.add("b", 1, 0);
        s.add("c", 1, 1);
        assert_eq!(s.get("b"), None);
        assert_eq!(
            s.get("c"),
            Some(&Counter {
                key: "c".into(),
                count: 2,
                error: 1,
                misses: 1
            })
        );
        assert_eq!(s.floor(), 2);
        assert_eq!((s.total(), s.misses()), (5, 2));
        assert_eq!(s.top(1)[0].key, "a");
        assert_eq!(s.get("a").unwrap().hit_rate(), Some(2.0 / 3.0));
    }

    #[test]
    fn serde_round_trip_rebuilds_a_working_summary() {
        let mut s = SpaceSaving::new(3);
        for key in ["a", "b", "a", "c", "d", "a", "d"] {
            s.add(key, 1, 0);
        }
        let json = serde_json::to_string(&s).unwrap();
        let mut back: SpaceSaving = serde_json::from_str(&json).unwrap();
        assert_eq!(back.top(3), s.top(3));
        back.add("e", 1, 0);
        s.add("e", 1, 0);
        assert_eq!(back.top(3), s.top(3));
        let bad = r#"{"capacity":1,"total":2,"misses":0,"counters":[{"key":"a","count":1,"error":0,"misses":0},{"key":"b","count":1,"error":0,"misses":0}]}"#;
        assert!(serde_json::from_str::<SpaceSaving>(bad).is_err());
    }
}
