//! The simulated cache: LRU with a capacity and a TTL over dense key ids.
//! A lookup of a missing or expired key is a miss and loads the key (fresh
//! TTL); a hit does not extend the TTL; warming writes the key with a fresh TTL.
//! Expired entries keep their place until looked up or evicted.

/// No node.
const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    key: u32,
    expires_ms: u64,
    prev: u32,
    next: u32,
}

/// An LRU cache of key ids with a TTL.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    capacity: usize,
    ttl_ms: u64,
    /// Key id → node index + 1 (0: not cached).
    slot_of: Vec<u32>,
    nodes: Vec<Node>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
}

impl Cache {
    /// An empty cache of `capacity` (at least 1) keys whose entries live `ttl_ms`.
    pub(crate) fn new(capacity: usize, ttl_ms: u64) -> Self {
        Cache {
            capacity: capacity.max(1),
            ttl_ms,
            slot_of: Vec::new(),
            nodes: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    fn node_of(&self, key: u32) -> Option<u32> {
        match self.slot_of.get(key as usize) {
            Some(&slot) if slot > 0 => Some(slot - 1),
            _ => None,
        }
    }

    /// When `key`'s entry expires, if it is cached.
    pub(crate) fn expires_ms(&self, key: u32) -> Option<u64> {
        self.node_of(key).map(|n| self.nodes[n as usize].expires_ms)
    }

    /// A lookup at `now_ms`: true on a hit; a miss loads the key.
    pub(crate) fn get(&mut self, key: u32, now_ms: u64) -> bool {
        match self.node_of(key) {
            Some(n) if self.nodes[n as usize].expires_ms > now_ms => {
                self.touch(n);
                true
            }
            _ => {
                self.put(key, now_ms);
                false
            }
        }
    }

    /// Writes `key` at `now_ms` with a fresh TTL, as most recently used.
    pub(crate) fn put(&mut self, key: u32, now_ms: u64) {
        let expires_ms = now_ms + self.ttl_ms;
        if let Some(n) = self.node_of(key) {
            self.nodes[n as usize].expires_ms = expires_ms;
            self.touch(n);
            return;
        }
        let n = if self.nodes.len() < self.capacity {
            self.nodes.push(Node {
                key,
                expires_ms,
                prev: NIL,
                next: NIL,
            });
            (self.nodes.len() - 1) as u32
        } else {
            // Reuse the least recently used node.
            let n = self.tail;
            self.unlink(n);
            let old = self.nodes[n as usize].key;
            self.slot_of[old as usize] = 0;
            self.nodes[n as usize].key = key;
            self.nodes[n as usize].expires_ms = expires_ms;
            n
        };
        if self.slot_of.len() <= key as usize {
            self.slot_of.resize(key as usize + 1, 0);
        }
        self.slot_of[key as usize] = n + 1;
        self.link_front(n);
    }

    fn touch(&mut self, n: u32) {
        if self.head != n {
            self.unlink(n);
            self.link_front(n);
        }
    }

    fn unlink(&mut self, n: u32) {
        let Node { prev, next, .. } = self.nodes[n as usize];
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            x => self.nodes[x as usize].prev = prev,
        }
    }

    fn link_front(&mut self, n: u32) {
        self.nodes[n as usize].prev = NIL;
        self.nodes[n as usize].next = self.head;
        match self.head {
            NIL => self.tail = n,
            h => self.nodes[h as usize].prev = n,
        }
        self.head = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_eviction_and_ttl() {
        let mut cache = Cache::new(2, 100);
        assert!(!cache.get(1, 0));
        assert!(!cache.get(2, 10));
        assert!(cache.get(1, 20));
        // 3 evicts 2, the least recently used.
        assert!(!cache.get(3, 30));
        assert_eq!(cache.expires_ms(2), None);
        assert!(cache.get(1, 99));
        // Expired: a miss that reloads.
        assert!(!cache.get(1, 100));
        assert_eq!(cache.expires_ms(1), Some(200));
        // Warming refreshes the TTL and the recency.
        cache.put(3, 150);
        assert_eq!(cache.expires_ms(3), Some(250));
        cache.put(4, 160);
        assert_eq!(cache.expires_ms(1), None);
        assert!(cache.get(3, 200) && cache.get(4, 200));
    }
}
