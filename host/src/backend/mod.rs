//! Backends: where warmed values are written, under a write policy.
//!
//! [`Backend`] is a closed set of kinds (an enum, not a trait object): each
//! writes a batch in one round trip where it can, applying the
//! [`WritePolicy`] atomically per key, and reports an [`Outcome`] per key.

pub mod events;
mod memcached;
mod memory;
mod redis;
pub mod redis_cluster;
mod sql;
pub mod tls;

pub use self::memcached::MemcachedBackend;
pub use self::memory::MemoryBackend;
pub use self::redis::RedisBackend;
pub use self::redis_cluster::RedisClusterBackend;
pub use self::sql::SqlBackend;

use crate::config::{BackendConfig, Target, WritePolicy};
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

/// One value to write.
#[derive(Debug, Clone)]
pub struct Write {
    /// The key as stored (the plugin's key laid out by its format).
    pub key: String,
    /// The value bytes, in the format's encoding.
    pub value: bytes::Bytes,
    /// Expiry; `None` writes without one.
    pub ttl: Option<Duration>,
}

/// What the backend did with one [`Write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The value was stored.
    Written,
    /// The key was present and fresh enough: left untouched, TTL included.
    Fresh,
    /// The backend refused this key for good (e.g. memory backend full).
    Rejected(String),
    /// This write did not land, for a reason worth retrying (a lost node, a
    /// failover under way), while others of its batch did: it alone is sent
    /// again. A backend that cannot tell which writes of a batch landed fails
    /// the batch instead.
    Unsent(BackendError),
}

/// A failed backend operation; `transient` errors are worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// Whether a retry may succeed (connection lost, timeout, server loading).
    pub transient: bool,
    /// What went wrong, naming the backend.
    pub message: String,
}

/// A value read under a size cap ([`Backend::get_at_most`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    /// No live value under the key.
    Absent,
    /// The value, within the cap.
    Value(Vec<u8>),
    /// The value is larger than the cap; it was not read.
    TooLarge {
        /// Its size in bytes.
        bytes: u64,
    },
}

/// A cache server's own counters of reads that found a key and reads that did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Reads that found the key (Redis `keyspace_hits`).
    pub hits: u64,
    /// Reads that did not (Redis `keyspace_misses`).
    pub misses: u64,
}

/// A connected backend; cheap to clone.
#[derive(Clone)]
pub enum Backend {
    /// A Redis server.
    Redis(RedisBackend),
    /// The in-process memory backend.
    Memory(Arc<MemoryBackend>),
    /// A SQL cache table.
    Sql(SqlBackend),
    /// A memcached pool.
    Memcached(MemcachedBackend),
    /// A Redis Cluster.
    RedisCluster(RedisClusterBackend),
}

impl Backend {
    /// Connects to the configured backend; fails fast with the address and the fix.
    pub async fn connect(config: &BackendConfig) -> Result<Backend> {
        match &config.target {
            Target::Redis(redis) => Ok(Backend::Redis(RedisBackend::connect(redis).await?)),
            Target::Memory(memory) => Ok(Backend::Memory(Arc::new(MemoryBackend::new(memory.max_bytes.0)))),
            Target::Sql(sql) => Ok(Backend::Sql(SqlBackend::connect(sql, &config.format).await?)),
            Target::Memcached(memcached) => Ok(Backend::Memcached(
                MemcachedBackend::connect(memcached, &config.format).await?,
            )),
            Target::RedisCluster(cluster) => Ok(Backend::RedisCluster(RedisClusterBackend::connect(cluster).await?)),
        }
    }

    /// Writes a batch under `policy`: one outcome per write, in order.
    pub async fn write_batch(&self, policy: WritePolicy, writes: &[Write]) -> Result<Vec<Outcome>, BackendError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Backend::Redis(r) => r.write_batch(policy, writes).await,
            Backend::Memory(m) => Ok(m.write_batch(policy, writes)),
            Backend::Sql(s) => s.write_batch(policy, writes).await,
            Backend::Memcached(m) => m.write_batch(policy, writes).await,
            Backend::RedisCluster(c) => c.write_batch(policy, writes).await,
        }
    }

    /// Reads a key's current value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        match self {
            Backend::Redis(r) => r.get(key).await,
            Backend::Memory(m) => Ok(m.get(key)),
            Backend::Sql(s) => s.get(key).await,
            Backend::Memcached(m) => m.get(key).await,
            Backend::RedisCluster(c) => c.get(key).await,
        }
    }

    /// A key's remaining time to live: `None` when the key is absent,
    /// `Some(None)` when it has no expiry.
    pub async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, BackendError> {
        match self {
            Backend::Redis(r) => r.ttl(key).await,
            Backend::Memory(m) => Ok(m.ttl(key)),
            Backend::Sql(s) => s.ttl(key).await,
            Backend::Memcached(m) => m.ttl(key).await,
            Backend::RedisCluster(c) => c.ttl(key).await,
        }
    }

    /// Reads a key's current value if it is at most `max` bytes; a larger one
    /// is measured where the backend allows it (Redis `STRLEN`, SQL
    /// `octet_length`) and not transferred.
    pub async fn get_at_most(&self, key: &str, max: u64) -> Result<Bounded, BackendError> {
        match self {
            Backend::Redis(r) => r.get_at_most(key, max).await,
            Backend::Memory(m) => Ok(m.get_at_most(key, max)),
            Backend::Sql(s) => s.get_at_most(key, max).await,
            Backend::Memcached(m) => m.get_at_most(key, max).await,
            Backend::RedisCluster(c) => c.get_at_most(key, max).await,
        }
    }

    /// Server-wide hit and miss counters, where the kind has them
    /// (`Capabilities::server_stats`: Redis `INFO stats`, a cluster's summed
    /// over its masters); `None` elsewhere.
    pub async fn server_stats(&self) -> Result<Option<ServerStats>, BackendError> {
        match self {
            Backend::Redis(r) => r.server_stats().await.map(Some),
            Backend::Memcached(m) => m.server_stats().await.map(Some),
            Backend::RedisCluster(c) => c.server_stats().await.map(Some),
            Backend::Memory(_) | Backend::Sql(_) => Ok(None),
        }
    }

    /// A description for logs and reports, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Backend::Redis(r) => format!("redis {}", r.address()),
            Backend::Memory(m) => format!("memory (max {} bytes)", m.max_bytes()),
            Backend::Sql(s) => format!("sql {}", s.describe()),
            Backend::Memcached(m) => m.describe().to_string(),
            Backend::RedisCluster(c) => format!("redis-cluster {}", c.seeds()),
        }
    }
}

/// Whether a key in the cache with `remaining` TTL should be rewritten under `policy`.
/// `remaining` is `None` for a key without expiry.
pub(crate) fn should_overwrite(policy: WritePolicy, remaining: Option<Duration>) -> bool {
    match policy {
        WritePolicy::Always => true,
        WritePolicy::IfMissing => false,
        WritePolicy::RefreshIfTtlBelow(threshold) => matches!(remaining, Some(r) if r < threshold),
    }
}
