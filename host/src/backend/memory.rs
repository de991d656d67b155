//! The in-process backend: a TTL-aware map bounded in bytes. Used by
//! `plugin test`, by library embedding, and as the embedded default.

use super::{should_overwrite, Outcome, Write};
use crate::config::WritePolicy;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Stored {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Stored {
    fn is_live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

#[derive(Default)]
struct State {
    map: HashMap<String, Stored>,
    bytes: u64,
    /// No entry expires before this (`None`: none expires), so a full cache
    /// scans for expired entries only when one may have expired, not on every write.
    next_expiry: Option<Instant>,
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= (key.len() + old.value.len()) as u64;
        }
    }

    fn purge_expired(&mut self, now: Instant) {
        if self.next_expiry.is_none_or(|e| e > now) {
            return;
        }
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|(_, v)| !v.is_live(now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove(&key);
        }
        self.next_expiry = self.map.values().filter_map(|v| v.expires).min();
    }

    fn insert(&mut self, key: String, stored: Stored) {
        if let Some(e) = stored.expires {
            self.next_expiry = Some(self.next_expiry.map_or(e, |n| n.min(e)));
        }
        self.map.insert(key, stored);
    }
}

/// An in-memory cache with per-key expiry, refusing writes beyond `max_bytes`
/// (after dropping expired entries) rather than evicting live ones.
pub struct MemoryBackend {
    state: Mutex<State>,
    max_bytes: u64,
}

impl MemoryBackend {
    /// An empty cache holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> MemoryBackend {
        MemoryBackend {
            state: Mutex::default(),
            max_bytes,
        }
    }

    /// The size bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Applies `policy` to each write atomically (under one lock).
    pub fn write_batch(&self, policy: WritePolicy, writes: &[Write]) -> Vec<Outcome> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        writes
            .iter()
            .map(|w| {
                if let Some(existing) = state.map.get(&w.key).filter(|s| s.is_live(now)) {
                    let remaining = existing.expires.map(|e| e - now);
                    if !should_overwrite(policy, remaining) {
                        return Outcome::Fresh;
                    }
                }
                let size = (w.key.len() + w.value.len()) as u64;
                // What the write needs beyond what replacing the key's old entry frees;
                // a refused write leaves the old entry as it was.
                let needed = |state: &State| {
                    let freed = state.map.get(&w.key).map_or(0, |old| (w.key.len() + old.value.len()) as u64);
                    state.bytes - freed + size
                };
                if needed(&state) > self.max_bytes {
                    state.purge_expired(now);
                    if needed(&state) > self.max_bytes {
                        return Outcome::Rejected(format!(
                            "memory backend full: {} of {} bytes used, this entry needs {size}; raise [backend] max_bytes",
                            state.bytes, self.max_bytes
                        ));
                    }
                }
                state.remove(&w.key);
                state.bytes += size;
                // A TTL too long for the clock to reach is no expiry.
                let expires = w.ttl.and_then(|t| now.checked_add(t));
                state.insert(w.key.clone(), Stored { value: w.value.to_vec(), expires });
                Outcome::Written
            })
            .collect()
    }

    /// The live value of `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let state = self.state.lock().unwrap();
        state
            .map
            .get(key)
            .filter(|s| s.is_live(Instant::now()))
            .map(|s| s.value.clone())
    }

    /// The live value of `key` if it is at most `max` bytes (measured without copying).
    pub fn get_at_most(&self, key: &str, max: u64) -> super::Bounded {
        let state = self.state.lock().unwrap();
        match state.map.get(key).filter(|s| s.is_live(Instant::now())) {
            None => super::Bounded::Absent,
            Some(s) if s.value.len() as u64 > max => super::Bounded::TooLarge {
                bytes: s.value.len() as u64,
            },
            Some(s) => super::Bounded::Value(s.value.clone()),
        }
    }

    /// The remaining TTL of a live key: `Some(None)` when it has no expiry, `None` when absent.
    pub fn ttl(&self, key: &str) -> Option<Option<Duration>> {
        let now = Instant::now();
        let state = self.state.lock().unwrap();
        state
            .map
            .get(key)
            .filter(|s| s.is_live(now))
            .map(|s| s.expires.map(|e| e - now))
    }

    /// Live keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let now = Instant::now();
        let state = self.state.lock().unwrap();
        let mut keys: Vec<String> = state
            .map
            .iter()
            .filter(|(_, v)| v.is_live(now))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str, value: &str, ttl_secs: Option<u64>) -> Write {
        Write {
            key: key.into(),
            value: bytes::Bytes::copy_from_slice(value.as_bytes()),
            ttl: ttl_secs.map(Duration::from_secs),
        }
    }

    #[test]
    fn if_missing_never_touches_an_existing_key() {
        let m = MemoryBackend::new(1 << 20);
        assert_eq!(
            m.write_batch(WritePolicy::IfMissing, &[w("a", "1", Some(100))]),
            vec![Outcome::Written]
        );
        assert_eq!(
            m.write_batch(WritePolicy::IfMissing, &[w("a", "2", Some(9999))]),
            vec![Outcome::Fresh]
        );
        assert_eq!(m.get("a").unwrap(), b"1");
        assert!(m.ttl("a").unwrap().unwrap() <= Duration::from_secs(100));
    }

    #[test]
    fn refresh_rewrites_only_near_expiry_keys() {
        let m = MemoryBackend::new(1 << 20);
        let policy = WritePolicy::RefreshIfTtlBelow(Duration::from_secs(60));
        m.write_batch(
            WritePolicy::Always,
            &[
                w("near", "old", Some(10)),
                w("far", "old", Some(600)),
                w("forever", "old", None),
            ],
        );
        let out = m.write_batch(
            policy,
            &[
                w("near", "new", Some(600)),
                w("far", "new", Some(600)),
                w("forever", "new", Some(600)),
                w("absent", "new", Some(600)),
            ],
        );
        assert_eq!(
            out,
            vec![Outcome::Written, Outcome::Fresh, Outcome::Fresh, Outcome::Written]
        );
        assert_eq!(m.get("near").unwrap(), b"new");
        assert_eq!(m.get("far").unwrap(), b"old");
        assert_eq!(m.ttl("forever"), Some(None));
    }

    #[test]
    fn a_full_cache_rejects_with_the_fix() {
        let m = MemoryBackend::new(10);
        let out = m.write_batch(WritePolicy::Always, &[w("k1", "12345", None), w("k2", "12345", None)]);
        assert_eq!(out[0], Outcome::Written);
        assert!(matches!(&out[1], Outcome::Rejected(msg) if msg.contains("max_bytes")));
        // Overwriting a key frees its old size first.
        assert_eq!(
            m.write_batch(WritePolicy::Always, &[w("k1", "abcdefgh", None)]),
            vec![Outcome::Written]
        );
    }

    #[test]
    fn a_full_cache_makes_room_from_expired_entries() {
        let m = MemoryBackend::new(22);
        let out = m.write_batch(
            WritePolicy::Always,
            &[
                Write {
                    key: "old".into(),
                    value: bytes::Bytes::from_static(b"0123456"),
                    ttl: Some(Duration::from_millis(1)),
                },
                w("live", "0123456", Some(3600)),
            ],
        );
        assert_eq!(out, vec![Outcome::Written, Outcome::Written]);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            m.write_batch(WritePolicy::Always, &[w("new", "0123456", None)]),
            vec![Outcome::Written],
            "the expired entry made room"
        );
        assert!(matches!(
            &m.write_batch(WritePolicy::Always, &[w("more", "0123456", None)])[0],
            Outcome::Rejected(_)
        ));
        assert_eq!(m.keys(), ["live", "new"]);
    }
}
