//! The memcached backend: a pool of servers, each key on the server the
//! application's client picks for it ([`ring`]), each batch pipelined per
//! server over the meta protocol ([`wire`]), the servers of a batch in
//! parallel.
//!
//! Policies: `always` is `ms <key> <size> T<ttl> F<flags>` (a set),
//! `if-missing` the same with `ME` (add: the server refuses a present key),
//! `refresh-if-ttl-below` reads `mg <key> t c` (remaining TTL and CAS) for
//! the batch, then adds the absent keys and rewrites the ones under the
//! threshold with `C<cas>`, so a key another writer changed in between is
//! left to it. TTLs are whole seconds rounded up; over 30 days memcached
//! reads a TTL as a unix time, so those are sent as one, and no later than
//! 2038-01-19 (memcached's times are signed 32-bit).
//!
//! Refused per key, before anything is sent: keys over 250 bytes or with
//! spaces or control characters (memcached's key rules; clients do not
//! escape them), and values that with their key do not fit the server's
//! `item_size_max` (memcached drops the old value when it refuses a new
//! one as too large, so preheat must not let it). A server that fails
//! fails only its own keys, naming it; when every server of a batch fails,
//! the batch fails as a whole and is retried by the executor.

mod ring;
mod wire;

use self::ring::Ring;
use self::wire::{Reply, Server, WireError};
use super::{BackendError, Bounded, Outcome, ServerStats, Write};
use crate::config::{FormatConfig, MemcachedTarget, Store, WritePolicy};
use crate::format::Format;
use anyhow::{bail, Result};
use futures_util::future::join_all;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest key memcached stores, in bytes.
pub const MAX_KEY_BYTES: usize = 250;

/// What an item costs memcached beyond its key and value (1.6 on 64 bits:
/// a 48-byte header, 8 of CAS, 4 of flags, the key's NUL, the value's CRLF:
/// 63), rounded up so that a value preheat sends always fits.
const ITEM_OVERHEAD: u64 = 96;

/// Over this many seconds memcached reads an expiry as a unix time (`REALTIME_MAXDELTA`).
const MAX_RELATIVE_TTL: u64 = 30 * 24 * 3600;

/// The latest expiry memcached can hold (its times are `int32`): 2038-01-19T03:14:07Z.
const LATEST_EXPIRY: u64 = i32::MAX as u64;

/// Most rounds of `mg` then CAS write for one refresh batch: a key deleted
/// between the read and the write is read again, at most this often.
const REFRESH_ROUNDS: usize = 3;

/// A connected memcached pool.
#[derive(Clone)]
pub struct MemcachedBackend {
    servers: Arc<Vec<Server>>,
    ring: Arc<Ring>,
    /// The item flags every value is written with (the format's).
    flags: u32,
    describe: String,
}

impl MemcachedBackend {
    /// Builds the pool and reaches every server once (`mn`, `stats settings`):
    /// an error when none answers; a server that does not is logged, and its
    /// keys fail, naming it, until it answers.
    pub async fn connect(config: &MemcachedTarget, format: &FormatConfig) -> Result<MemcachedBackend> {
        let flags = Format::new(format, Store::Memcached)?.memcached_flags();
        let servers: Vec<Server> = config
            .servers
            .iter()
            .map(|s| {
                Server::new(
                    s.address(),
                    config.max_connections_per_server,
                    config.connect_timeout,
                    config.io_timeout,
                )
            })
            .collect();
        let reached = join_all(servers.iter().map(|s| s.stats("settings"))).await;
        let failures: Vec<String> = reached.into_iter().filter_map(|r| r.err().map(|e| e.message)).collect();
        if failures.len() == servers.len() {
            bail!(
                "no memcached server of [backend] servers answers: {}",
                failures.join("; ")
            );
        }
        for failure in &failures {
            tracing::warn!(error = %failure, "memcached server unreachable; its keys fail until it answers");
        }
        let describe = format!(
            "memcached {} ({})",
            config
                .servers
                .iter()
                .map(|s| s.address())
                .collect::<Vec<_>>()
                .join(", "),
            config.distribution.name()
        );
        Ok(MemcachedBackend {
            ring: Arc::new(Ring::new(config.distribution, &config.servers)),
            servers: Arc::new(servers),
            flags,
            describe,
        })
    }

    /// The servers and the distribution, for logs and reports.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// The server that holds `key`.
    fn server_of(&self, key: &str) -> &Server {
        &self.servers[self.ring.server_of(key.as_bytes())]
    }

    /// Writes a batch: refused keys first, then each server's share in one
    /// pipelined exchange (refresh: two), all servers at once.
    pub async fn write_batch(&self, policy: WritePolicy, writes: &[Write]) -> Result<Vec<Outcome>, BackendError> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; writes.len()];
        let mut shares: Vec<Vec<usize>> = vec![Vec::new(); self.servers.len()];
        for (i, w) in writes.iter().enumerate() {
            let server = self.ring.server_of(w.key.as_bytes());
            match refusal(w, &self.servers[server]) {
                Some(why) => outcomes[i] = Some(Outcome::Rejected(why)),
                None => shares[server].push(i),
            }
        }
        let now = unix_now();
        let results = join_all(shares.iter().enumerate().filter(|(_, share)| !share.is_empty()).map(
            |(s, share)| async move {
                let server = &self.servers[s];
                let mut done = self.write_share(server, policy, writes, share, now).await;
                if let Err(WireError { on_reused: true, .. }) = done {
                    // An idle connection may have gone stale: once more on a fresh one.
                    done = self.write_share(server, policy, writes, share, now).await;
                }
                (share, done)
            },
        ))
        .await;
        let mut failed = Vec::new();
        let servers_used = results.len();
        for (share, done) in results {
            match done {
                Ok(share_outcomes) => {
                    for (&i, o) in share.iter().zip(share_outcomes) {
                        outcomes[i] = Some(o);
                    }
                }
                Err(e) => failed.push((share, e.message)),
            }
        }
        if !failed.is_empty() && failed.len() == servers_used {
            return Err(BackendError {
                transient: true,
                message: failed.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "),
            });
        }
        for (share, message) in failed {
            let why = format!("{message} (this batch's keys on the other servers were written)");
            for &i in share {
                outcomes[i] = Some(Outcome::Rejected(why.clone()));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every write has an outcome"))
            .collect())
    }

    /// One server's share of a batch under `policy`.
    async fn write_share(
        &self,
        server: &Server,
        policy: WritePolicy,
        writes: &[Write],
        share: &[usize],
        now: u64,
    ) -> Result<Vec<Outcome>, WireError> {
        let threshold = match policy {
            WritePolicy::Always | WritePolicy::IfMissing => {
                let mut request = Vec::new();
                for &i in share {
                    self.push_set(
                        &mut request,
                        &writes[i],
                        now,
                        (policy == WritePolicy::IfMissing).then_some(Mode::Add),
                    );
                }
                let replies = server.exchange(&request, share.len(), 0).await?;
                return Ok(replies.iter().map(|r| stored(r, server)).collect());
            }
            WritePolicy::RefreshIfTtlBelow(threshold) => threshold,
        };
        let mut outcomes: Vec<Option<Outcome>> = vec![None; share.len()];
        let mut pending: Vec<usize> = (0..share.len()).collect();
        for _ in 0..REFRESH_ROUNDS {
            let mut request = Vec::new();
            for &j in &pending {
                push_line(&mut request, &["mg ", &writes[share[j]].key, " t c"]);
            }
            let states = server.exchange(&request, pending.len(), 0).await?;
            let mut request = Vec::new();
            let mut sent = Vec::new();
            for (&j, state) in pending.iter().zip(&states) {
                let w = &writes[share[j]];
                let mode = match state {
                    Reply::Status { code, .. } if code == "EN" => Mode::Add,
                    Reply::Status { code, .. } if code == "HD" => {
                        let left = state.flag('t').and_then(|t| t.parse::<i64>().ok());
                        match (left, state.flag('c')) {
                            // Whole seconds left (memcached's clock ticks in seconds).
                            (Some(left), Some(cas)) if left >= 0 && (left as f64) < threshold.as_secs_f64() => {
                                Mode::Cas(cas.to_string())
                            }
                            // No expiry (`t-1`), or enough left.
                            (Some(left), Some(_)) if left >= -1 => {
                                outcomes[j] = Some(Outcome::Fresh);
                                continue;
                            }
                            _ => {
                                outcomes[j] = Some(unexpected(state, server));
                                continue;
                            }
                        }
                    }
                    other => {
                        outcomes[j] = Some(stored(other, server));
                        continue;
                    }
                };
                self.push_set(&mut request, w, now, Some(mode));
                sent.push(j);
            }
            if sent.is_empty() {
                break;
            }
            let replies = server.exchange(&request, sent.len(), 0).await?;
            pending.clear();
            for (&j, reply) in sent.iter().zip(&replies) {
                match reply {
                    // Deleted between the read and the CAS write: read it again.
                    Reply::Status { code, .. } if code == "NF" => pending.push(j),
                    // Another writer added or changed it in between: it is theirs, and fresh.
                    Reply::Status { code, .. } if code == "NS" || code == "EX" => outcomes[j] = Some(Outcome::Fresh),
                    other => outcomes[j] = Some(stored(other, server)),
                }
            }
            if pending.is_empty() {
                break;
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Outcome::Rejected(format!(
                        "memcached {}: the key was deleted between reading its TTL and writing, {REFRESH_ROUNDS} times; left alone",
                        server.address()
                    ))
                })
            })
            .collect())
    }

    /// `ms <key> <size> [T<exptime>] F<flags> [ME | C<cas>]` and the value.
    fn push_set(&self, request: &mut Vec<u8>, w: &Write, now: u64, mode: Option<Mode>) {
        let size = w.value.len().to_string();
        let flags = self.flags.to_string();
        let exptime = w.ttl.map(|t| exptime(t, now).to_string());
        let mut line: Vec<&str> = vec!["ms ", &w.key, " ", &size];
        if let Some(t) = &exptime {
            line.extend([" T", t]);
        }
        line.extend([" F", &flags]);
        match &mode {
            Some(Mode::Add) => line.push(" ME"),
            Some(Mode::Cas(cas)) => line.extend([" C", cas]),
            None => {}
        }
        push_line(request, &line);
        request.extend_from_slice(&w.value);
        request.extend_from_slice(b"\r\n");
    }

    /// `mg <key> v`: the value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let Some(server) = self.checked(key) else {
            return Ok(None);
        };
        match self.ask(server, key, "v", server.item_size_max()).await? {
            Reply::Value { data, .. } => Ok(Some(data)),
            Reply::Status { code, .. } if code == "EN" => Ok(None),
            other => Err(self.odd(server, &other)),
        }
    }

    /// `mg <key> t`: `None` when absent, `Some(None)` without expiry.
    pub async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, BackendError> {
        let Some(server) = self.checked(key) else {
            return Ok(None);
        };
        let reply = self.ask(server, key, "t", 0).await?;
        match (&reply, reply.flag('t').and_then(|t| t.parse::<i64>().ok())) {
            (Reply::Status { code, .. }, _) if code == "EN" => Ok(None),
            (Reply::Status { code, .. }, Some(-1)) if code == "HD" => Ok(Some(None)),
            (Reply::Status { code, .. }, Some(left)) if code == "HD" && left >= 0 => {
                Ok(Some(Some(Duration::from_secs(left as u64))))
            }
            _ => Err(self.odd(server, &reply)),
        }
    }

    /// `mg <key> s`, then `mg <key> v` when the size is at most `max`.
    pub async fn get_at_most(&self, key: &str, max: u64) -> Result<Bounded, BackendError> {
        let Some(server) = self.checked(key) else {
            return Ok(Bounded::Absent);
        };
        let sized = self.ask(server, key, "s", 0).await?;
        let bytes = match (&sized, sized.flag('s').and_then(|s| s.parse::<u64>().ok())) {
            (Reply::Status { code, .. }, _) if code == "EN" => return Ok(Bounded::Absent),
            (Reply::Status { code, .. }, Some(bytes)) if code == "HD" => bytes,
            _ => return Err(self.odd(server, &sized)),
        };
        if bytes > max {
            return Ok(Bounded::TooLarge { bytes });
        }
        // It may have grown in between: the read is bounded by `max` itself.
        match server
            .exchange(&ask_line(key, "s v"), 1, max)
            .await
            .map(|mut r| r.remove(0))
        {
            Ok(Reply::Value { data, .. }) => Ok(Bounded::Value(data)),
            Ok(Reply::Status { code, .. }) if code == "EN" => Ok(Bounded::Absent),
            Ok(other) => Err(self.odd(server, &other)),
            Err(e) if e.message.contains("bytes asked for") => {
                let bytes = self
                    .ask(server, key, "s", 0)
                    .await?
                    .flag('s')
                    .and_then(|s| s.parse().ok());
                Ok(bytes.map_or(Bounded::Absent, |bytes| Bounded::TooLarge { bytes }))
            }
            Err(e) => Err(transient(e)),
        }
    }

    /// The sum of every server's `get_hits` and `get_misses` (`stats`); an
    /// error naming the servers that did not answer.
    pub async fn server_stats(&self) -> Result<ServerStats, BackendError> {
        let answers = join_all(self.servers.iter().map(|s| s.stats(""))).await;
        let mut total = ServerStats { hits: 0, misses: 0 };
        let mut failed = Vec::new();
        for answer in answers {
            match answer {
                Ok(stats) => {
                    let field = |name: &str| {
                        stats
                            .iter()
                            .find(|(k, _)| k == name)
                            .and_then(|(_, v)| v.parse::<u64>().ok())
                            .unwrap_or(0)
                    };
                    total.hits += field("get_hits");
                    total.misses += field("get_misses");
                }
                Err(e) => failed.push(e.message),
            }
        }
        if !failed.is_empty() {
            return Err(BackendError {
                transient: true,
                message: failed.join("; "),
            });
        }
        Ok(total)
    }

    /// The server of a key memcached can hold; `None` for one it cannot,
    /// which no value can be stored under (a read of it finds nothing).
    fn checked(&self, key: &str) -> Option<&Server> {
        key_refusal(key).is_none().then(|| self.server_of(key))
    }

    /// One `mg <key> <flags>` round trip.
    async fn ask(&self, server: &Server, key: &str, flags: &str, max_value: u64) -> Result<Reply, BackendError> {
        let mut replies = server
            .exchange(&ask_line(key, flags), 1, max_value)
            .await
            .map_err(transient)?;
        Ok(replies.remove(0))
    }

    fn odd(&self, server: &Server, reply: &Reply) -> BackendError {
        BackendError {
            transient: false,
            message: format!("memcached {} answered {reply:?} to a read", server.address()),
        }
    }
}

/// How `ms` stores: add, or compare-and-swap; `None` is a plain set.
enum Mode {
    Add,
    Cas(String),
}

/// `mg <key> <flags>\r\n`.
fn ask_line(key: &str, flags: &str) -> Vec<u8> {
    let mut line = Vec::new();
    push_line(&mut line, &["mg ", key, " ", flags]);
    line
}

fn push_line(request: &mut Vec<u8>, parts: &[&str]) {
    for part in parts {
        request.extend_from_slice(part.as_bytes());
    }
    request.extend_from_slice(b"\r\n");
}

fn transient(e: WireError) -> BackendError {
    BackendError {
        transient: true,
        message: e.message,
    }
}

/// The outcome of an `ms` reply.
fn stored(reply: &Reply, server: &Server) -> Outcome {
    match reply {
        Reply::Status { code, .. } if code == "HD" => Outcome::Written,
        Reply::Status { code, .. } if code == "NS" => Outcome::Fresh,
        Reply::Error(e) => Outcome::Rejected(format!("memcached {} refused the value: {e}", server.address())),
        other => unexpected(other, server),
    }
}

fn unexpected(reply: &Reply, server: &Server) -> Outcome {
    Outcome::Rejected(format!("memcached {} answered {reply:?}", server.address()))
}

/// Why memcached cannot hold `key`, if it cannot.
fn key_refusal(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("the key is empty, and memcached keys cannot be".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!(
            "the stored key {:?} is {} bytes, over memcached's {MAX_KEY_BYTES}; shorten the key or its prefix",
            crate::report::clip(key, 80),
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|&c| c <= ' ' || c == '\u{7f}') {
        return Some(format!(
            "the stored key {:?} holds {c:?}, and memcached keys cannot hold spaces or control characters; use another separator",
            crate::report::clip(key, 80)
        ));
    }
    None
}

/// Why `w` cannot be written to `server`, if it cannot.
fn refusal(w: &Write, server: &Server) -> Option<String> {
    if let Some(why) = key_refusal(&w.key) {
        return Some(why);
    }
    let max = server.item_size_max();
    let needs = w.key.len() as u64 + w.value.len() as u64 + ITEM_OVERHEAD;
    (needs > max).then(|| {
        format!(
            "the value is {} bytes, and with its key and memcached's per-item overhead it does not fit item_size_max = {max} bytes of memcached {} (raise it with memcached -I, or produce smaller values)",
            w.value.len(),
            server.address()
        )
    })
}

/// The `T` token of a TTL written at `now` (unix seconds): whole seconds
/// rounded up, a unix time beyond 30 days, never past [`LATEST_EXPIRY`].
fn exptime(ttl: Duration, now: u64) -> u64 {
    let secs = (ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)).max(1);
    if secs <= MAX_RELATIVE_TTL {
        secs
    } else {
        now.saturating_add(secs).min(LATEST_EXPIRY)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_become_memcached_expiry_times() {
        let now = 1_800_000_000;
        assert_eq!(exptime(Duration::from_millis(1500), now), 2);
        assert_eq!(exptime(Duration::from_millis(1), now), 1);
        assert_eq!(exptime(Duration::from_secs(MAX_RELATIVE_TTL), now), MAX_RELATIVE_TTL);
        assert_eq!(
            exptime(Duration::from_secs(MAX_RELATIVE_TTL + 1), now),
            now + MAX_RELATIVE_TTL + 1
        );
        assert_eq!(exptime(Duration::from_secs(u32::MAX.into()), now), i32::MAX as u64);
    }

    #[test]
    fn keys_memcached_cannot_hold_are_refused_naming_why() {
        assert!(key_refusal("products:7/naïve").is_none());
        assert!(key_refusal(&"k".repeat(250)).is_none());
        assert!(key_refusal(&"k".repeat(251)).unwrap().contains("251 bytes"));
        for bad in ["with space", "tab\there", "new\nline", "del\u{7f}"] {
            assert!(key_refusal(bad).unwrap().contains("spaces or control"), "{bad:?}");
        }
        assert!(key_refusal("").is_some());
    }
}
