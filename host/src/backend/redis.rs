//! The Redis backend: pipelined writes over a self-reconnecting multiplexed
//! connection; policies applied atomically per key by the server
//! (`SET NX`, a Lua script for refresh-ahead, plain `SET`).

use super::{BackendError, Outcome, Write};
use crate::config::{RedisTarget, WritePolicy};
use anyhow::{Context, Result};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{RetryMethod, Value};

/// Rewrites a key only when it is absent or its remaining TTL is under
/// ARGV[3] ms; a key without expiry is never touched. ARGV[2] = new TTL in ms (0 = none).
pub(super) const REFRESH_SCRIPT: &str = r"
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 or (ttl >= 0 and ttl < tonumber(ARGV[3])) then
  if ARGV[2] == '0' then
    redis.call('SET', KEYS[1], ARGV[1])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  end
  return 1
end
return 0
";

/// `GET KEYS[1]` unless its value is longer than ARGV[1] bytes; then its length (an integer).
pub(super) const GET_AT_MOST_SCRIPT: &str = r"
local n = redis.call('STRLEN', KEYS[1])
if n > tonumber(ARGV[1]) then
  return n
end
return redis.call('GET', KEYS[1])
";

/// A connection to one Redis server.
#[derive(Clone)]
pub struct RedisBackend {
    conn: ConnectionManager,
    address: String,
    refresh: redis::Script,
    get_at_most: redis::Script,
}

impl RedisBackend {
    /// Connects and pings, so an unreachable server fails the run before any plugin work.
    pub async fn connect(config: &RedisTarget) -> Result<RedisBackend> {
        let url = config
            .url
            .as_deref()
            .context("[backend] url is required for kind = \"redis\"")?;
        let address = crate::support::redact_url(url);
        let client = super::tls::client(url, config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1);
        let failed = |e: anyhow::Error| {
            match super::tls::handshake_failure(&e, &address, config) {
            Some(why) => e.context(why),
            None => e.context(format!("cannot reach redis at {address}: is the server running and the URL right? (set [backend] url or PREHEAT_REDIS_URL)")),
        }
        };
        let mut conn = tokio::time::timeout(
            config.connect_timeout * 2,
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {:?}", config.connect_timeout * 2))
        .and_then(|connected| Ok(connected?))
        .map_err(failed)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| failed(e.into()))?;
        Ok(RedisBackend {
            conn,
            address,
            refresh: redis::Script::new(REFRESH_SCRIPT),
            get_at_most: redis::Script::new(GET_AT_MOST_SCRIPT),
        })
    }

    /// The server address without credentials.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Writes a batch in one pipeline.
    pub async fn write_batch(&self, policy: WritePolicy, writes: &[Write]) -> Result<Vec<Outcome>, BackendError> {
        let mut pipe = redis::Pipeline::with_capacity(writes.len() + 1);
        if let WritePolicy::RefreshIfTtlBelow(_) = policy {
            // Loading per batch is one cheap round-trip command and survives a server restart.
            pipe.load_script(&self.refresh).ignore();
        }
        for w in writes {
            pipe.add_command(write_command(policy, w, &self.refresh));
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(|e| self.error("write", e))?;
        Ok(replies.iter().map(outcome_of).collect())
    }

    /// `GET key`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        get_on(&mut self.conn.clone(), key, &self.address).await
    }

    /// `PTTL key`: `None` when absent, `Some(None)` without expiry.
    pub async fn ttl(&self, key: &str) -> Result<Option<Option<std::time::Duration>>, BackendError> {
        ttl_on(&mut self.conn.clone(), key, &self.address).await
    }

    /// `GET key` when `STRLEN key` is at most `max`, atomically in one script call.
    pub async fn get_at_most(&self, key: &str, max: u64) -> Result<super::Bounded, BackendError> {
        get_at_most_on(&mut self.conn.clone(), &self.get_at_most, key, max, &self.address).await
    }

    /// The server's `keyspace_hits` and `keyspace_misses` (`INFO stats`).
    pub async fn server_stats(&self) -> Result<super::ServerStats, BackendError> {
        let mut conn = self.conn.clone();
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("INFO", e))?;
        Ok(stats_of(&info))
    }

    fn error(&self, what: &str, e: redis::RedisError) -> BackendError {
        error_of(&self.address, what, e)
    }
}

/// The command that writes `w` under `policy`: `SET` (`NX` for if-missing,
/// `PX` for a TTL), or `EVALSHA` of `refresh` (the [`REFRESH_SCRIPT`]).
pub(super) fn write_command(policy: WritePolicy, w: &Write, refresh: &redis::Script) -> redis::Cmd {
    let ttl_ms = w.ttl.map(|t| t.as_millis().max(1) as u64);
    // Sized up front: one allocation per command instead of one per growth step.
    let mut cmd = redis::Cmd::with_capacity(7, w.key.len() + w.value.len() + 64);
    match policy {
        WritePolicy::IfMissing | WritePolicy::Always => {
            cmd.arg("SET").arg(&w.key).arg(&w.value[..]);
            if policy == WritePolicy::IfMissing {
                cmd.arg("NX");
            }
            if let Some(ms) = ttl_ms {
                cmd.arg("PX").arg(ms);
            }
        }
        WritePolicy::RefreshIfTtlBelow(threshold) => {
            cmd.arg("EVALSHA")
                .arg(refresh.get_hash())
                .arg(1)
                .arg(&w.key)
                .arg(&w.value[..])
                .arg(ttl_ms.unwrap_or(0))
                .arg(threshold.as_millis() as u64);
        }
    }
    cmd
}

/// `GET key` on one server's connection or a cluster's (which routes it to
/// the key's master); errors name `address`.
pub(super) async fn get_on(
    conn: &mut (impl ConnectionLike + Send),
    key: &str,
    address: &str,
) -> Result<Option<Vec<u8>>, BackendError> {
    redis::cmd("GET")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| error_of(address, "read", e))
}

/// `PTTL key` ([`ttl_of`]), as [`get_on`].
pub(super) async fn ttl_on(
    conn: &mut (impl ConnectionLike + Send),
    key: &str,
    address: &str,
) -> Result<Option<Option<std::time::Duration>>, BackendError> {
    let ms: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(conn)
        .await
        .map_err(|e| error_of(address, "PTTL", e))?;
    Ok(ttl_of(ms))
}

/// `GET key` when `STRLEN key` is at most `max`: the [`GET_AT_MOST_SCRIPT`]
/// (`script`) in one call, as [`get_on`].
pub(super) async fn get_at_most_on(
    conn: &mut (impl ConnectionLike + Send),
    script: &redis::Script,
    key: &str,
    max: u64,
    address: &str,
) -> Result<super::Bounded, BackendError> {
    let reply: Value = script
        .key(key)
        .arg(max)
        .invoke_async(conn)
        .await
        .map_err(|e| error_of(address, "read", e))?;
    bounded_of(reply, address)
}

/// A `PTTL` reply: `None` when absent, `Some(None)` without expiry.
pub(super) fn ttl_of(ms: i64) -> Option<Option<std::time::Duration>> {
    match ms {
        -2 => None,
        ms if ms < 0 => Some(None),
        ms => Some(Some(std::time::Duration::from_millis(ms as u64))),
    }
}

/// The reply of the [`GET_AT_MOST_SCRIPT`] from the server at `address`.
pub(super) fn bounded_of(reply: Value, address: &str) -> Result<super::Bounded, BackendError> {
    match reply {
        Value::Nil => Ok(super::Bounded::Absent),
        Value::Int(n) => Ok(super::Bounded::TooLarge { bytes: n as u64 }),
        Value::BulkString(value) => Ok(super::Bounded::Value(value)),
        other => Err(BackendError {
            transient: false,
            message: format!("redis at {address} answered {other:?} to a bounded GET"),
        }),
    }
}

/// `keyspace_hits` and `keyspace_misses` of an `INFO stats` reply (0 when missing).
pub(super) fn stats_of(info: &str) -> super::ServerStats {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    super::ServerStats {
        hits: field("keyspace_hits"),
        misses: field("keyspace_misses"),
    }
}

/// `e` from `what` at `address` as a [`BackendError`]: transient when a retry may help.
pub(super) fn error_of(address: &str, what: &str, e: redis::RedisError) -> BackendError {
    let transient = !matches!(e.retry_method(), RetryMethod::NoRetry) || e.is_timeout() || e.is_io_error();
    BackendError {
        transient,
        message: format!("redis {address} {what} failed: {e}"),
    }
}

/// What a write's reply (`SET`'s or the refresh script's) means.
pub(super) fn outcome_of(reply: &Value) -> Outcome {
    match reply {
        Value::Okay | Value::Int(1) => Outcome::Written,
        Value::SimpleString(s) if s == "OK" => Outcome::Written,
        Value::Nil | Value::Int(0) => Outcome::Fresh,
        other => Outcome::Rejected(format!("unexpected redis reply {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_outcomes() {
        assert_eq!(outcome_of(&Value::Okay), Outcome::Written);
        assert_eq!(outcome_of(&Value::Nil), Outcome::Fresh);
        assert_eq!(outcome_of(&Value::Int(0)), Outcome::Fresh);
        assert!(matches!(outcome_of(&Value::Int(7)), Outcome::Rejected(_)));
    }
}
