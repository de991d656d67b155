//! The Redis Cluster backend: the redis crate's cluster client routes each
//! command to the master of its key's hash slot (hash tags `{…}` included),
//! follows MOVED and ASK while slots migrate, and finds the promoted replica
//! after a failover. Policies are the single server's commands
//! (`backend/redis.rs`: `SET NX`, the refresh script, plain `SET`).
//!
//! The crate's slot refresh can wedge a connection for good: it waits for
//! the write half of the connection's lock while commands queued on the read
//! half were granted it but are no longer polled (the connection's driver
//! polls only the refresh while one runs), so every later command times
//! out (seen after a master was killed with a few thousand writes in
//! flight). A batch that fails transiently therefore renews the
//! connections: new clients, the slot map read afresh from the seeds; at
//! most once per [`RENEW_INTERVAL`] (each renewal may leave a wedged
//! connection's task behind, so they are bounded).
//!
//! A batch is sent one command per key, all in flight at once (at most
//! [`MAX_IN_FLIGHT`]): the crate queues each on its node's multiplexed
//! connection, so what one node is sent goes out pipelined. Not one
//! pipeline per slot: the crate redirects a pipeline whole and sends ASKING
//! only before its first command, so in a migrating slot a pipeline would be
//! sent again after some of its writes had landed (an if-missing write would
//! then find its own value). One command is redirected alone.
//!
//! Writes follow the cluster's redirects here ([`RedisClusterBackend::command`]),
//! on a connection whose client retries nothing: the crate sends ASKING and
//! the redirected command as two requests on the node's shared connection,
//! so with other commands in flight to that node one of theirs takes the
//! ASKING, ours is answered MOVED, and it loops until it times out (seen
//! with 100 writes into a migrating slot). Here ASKING and the command go
//! as one two-command pipeline to the node ASK names; MOVED goes straight to
//! the node it names (the crate refreshes its slot map meanwhile); a lost
//! node, a failover or TRYAGAIN is waited out, [`WRITE_ATTEMPTS`] times at
//! most, all within `response_timeout`.

use super::redis::{
    error_of, get_at_most_on, get_on, outcome_of, stats_of, ttl_on, write_command, GET_AT_MOST_SCRIPT, REFRESH_SCRIPT,
};
use super::{tls, BackendError, Bounded, Outcome, ServerStats, Write};
use crate::config::{RedisClusterTarget, WritePolicy};
use anyhow::{Context, Result};
use futures_util::stream::{self, StreamExt};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{ErrorKind, FromRedisValue, RedisResult, RetryMethod, ServerErrorKind, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shortest time between two renewals of the connections.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(1);
/// Most commands of one batch in flight at once; the rest wait for a place.
pub const MAX_IN_FLIGHT: usize = 4096;
/// Attempts the cluster client makes for a read or an admin command after
/// the first (redirects, reconnects, slot-map refreshes), all within
/// `response_timeout`.
pub const CLUSTER_RETRIES: u32 = 6;
/// Wait before a command's retry: from 50 ms, doubling from 200 ms, at most 1 s.
const RETRY_WAIT: (u64, u64) = (50, 1000);
/// Most sends of one write ([`RedisClusterBackend::command`]): redirects and
/// waits for a lost node, all within `response_timeout`.
pub const WRITE_ATTEMPTS: u32 = 10;

/// A connection to a Redis Cluster.
#[derive(Clone)]
pub struct RedisClusterBackend {
    /// The connections in use, renewed after a transient failure.
    connections: Arc<std::sync::Mutex<Connections>>,
    /// Held while connections are renewed (one renewal at a time).
    renewing: Arc<tokio::sync::Mutex<()>>,
    config: Arc<RedisClusterTarget>,
    response_timeout: Duration,
    seeds: String,
    /// How errors name the cluster: `cluster <seeds>`.
    address: String,
    refresh: redis::Script,
    get_at_most: redis::Script,
}

/// The two connections of a [`RedisClusterBackend`], and how many times they were renewed.
#[derive(Clone)]
struct Connections {
    /// Reads and admin commands: the client follows redirects and retries.
    reads: ClusterConnection,
    /// Writes: the client retries nothing, [`RedisClusterBackend::command`] does.
    writes: ClusterConnection,
    /// Renewals so far.
    generation: u64,
    /// When they were made.
    made: Instant,
}

impl RedisClusterBackend {
    /// Connects (reading the slot map from a seed) and pings every master, so
    /// an unreachable cluster, or a server that is not one, fails the run
    /// before any plugin work.
    pub async fn connect(config: &RedisClusterTarget) -> Result<RedisClusterBackend> {
        let seeds = tls::describe_seeds(&config.urls);
        let (mut reads, writes) = open(config).await?;
        // Routed to every master; each must answer.
        redis::cmd("PING")
            .query_async::<()>(&mut reads)
            .await
            .map_err(|e| explain(e.into(), config, &seeds))?;
        Ok(RedisClusterBackend {
            connections: Arc::new(std::sync::Mutex::new(Connections {
                reads,
                writes,
                generation: 0,
                made: Instant::now(),
            })),
            renewing: Arc::default(),
            config: Arc::new(config.clone()),
            response_timeout: config.nodes.response_timeout,
            address: format!("cluster {seeds}"),
            seeds,
            refresh: redis::Script::new(REFRESH_SCRIPT),
            get_at_most: redis::Script::new(GET_AT_MOST_SCRIPT),
        })
    }

    /// The connections in use.
    fn current(&self) -> Connections {
        self.connections
            .lock()
            .expect("the connections lock is never poisoned")
            .clone()
    }

    /// The reads connection in use.
    fn reads(&self) -> ClusterConnection {
        let connections = self.connections.lock().expect("the connections lock is never poisoned");
        connections.reads.clone()
    }

    /// Replaces connections of `generation` (those a failed batch used) with
    /// new ones, unless they were renewed meanwhile or less than
    /// [`RENEW_INTERVAL`] ago; a failure to connect is logged and the old ones kept.
    async fn renew(&self, generation: u64, why: &str) {
        let _one_at_a_time = self.renewing.lock().await;
        let old = self.current();
        if old.generation != generation || old.made.elapsed() < RENEW_INTERVAL {
            return;
        }
        match open(&self.config).await {
            Ok((reads, writes)) => {
                tracing::warn!(cluster = %self.seeds, generation = generation + 1, "cluster connections renewed after a failed batch ({why}): the slot map is read afresh");
                *self.connections.lock().expect("the connections lock is never poisoned") = Connections {
                    reads,
                    writes,
                    generation: generation + 1,
                    made: Instant::now(),
                };
            }
            Err(e) => {
                tracing::warn!(cluster = %self.seeds, "could not renew the cluster connections after a failed batch ({why}): {e:#}")
            }
        }
    }

    /// The seed nodes, without credentials.
    pub fn seeds(&self) -> &str {
        &self.seeds
    }

    /// Writes a batch, each key's command to its slot's master; one outcome
    /// per write, in order. A key written twice in the batch is written in
    /// order: its second write waits for the first. A write that fails
    /// transiently (a master lost, a failover under way) is `Unsent`, and so
    /// are the later writes of the batch's repeated keys, for the executor
    /// to send again (all of them: the batch fails); a write the server
    /// refuses is rejected alone.
    pub async fn write_batch(&self, policy: WritePolicy, writes: &[Write]) -> Result<Vec<Outcome>, BackendError> {
        let connections = self.current();
        let written = self.write_rounds(&connections, policy, writes).await;
        let failure = match &written {
            Err(e) => Some(e),
            Ok(outcomes) => outcomes.iter().find_map(|o| match o {
                Outcome::Unsent(e) => Some(e),
                _ => None,
            }),
        };
        if let Some(why) = failure.filter(|e| e.transient).map(|e| e.message.clone()) {
            self.renew(connections.generation, &why).await;
        }
        written
    }

    /// [`RedisClusterBackend::write_batch`] on `connections`.
    async fn write_rounds(
        &self,
        connections: &Connections,
        policy: WritePolicy,
        writes: &[Write],
    ) -> Result<Vec<Outcome>, BackendError> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; writes.len()];
        // Set once a write did not land: a key's later writes are not sent
        // before it (they go again with it, in order).
        let mut unsent: Option<BackendError> = None;
        for round in rounds(writes) {
            if let Some(e) = &unsent {
                for i in round {
                    outcomes[i] = Some(Outcome::Unsent(e.clone()));
                }
                continue;
            }
            let mut pending = round;
            let mut loaded = false;
            while !pending.is_empty() {
                let replies = self.send(&connections.writes, policy, writes, &pending).await;
                let mut without_script = Vec::new();
                for (&i, reply) in pending.iter().zip(replies) {
                    outcomes[i] = Some(match reply {
                        Ok(reply) => outcome_of(&reply),
                        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) && !loaded => {
                            without_script.push(i);
                            continue;
                        }
                        Err(e) => match self.error("write", e) {
                            error if error.transient => Outcome::Unsent(unsent.get_or_insert(error).clone()),
                            error => Outcome::Rejected(error.message),
                        },
                    });
                }
                if !without_script.is_empty() {
                    // A master that lacks the script (new, restarted, promoted): load it
                    // everywhere and send those writes once more.
                    if let Err(e) = self.load_refresh_script(&connections.reads).await {
                        for &i in &without_script {
                            outcomes[i] = Some(Outcome::Unsent(e.clone()));
                        }
                        unsent.get_or_insert(e);
                        break;
                    }
                    loaded = true;
                }
                pending = without_script;
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|o| o.expect("every write of the batch was answered"))
            .collect();
        // Nothing landed: the batch failed as a whole.
        match unsent {
            Some(e) if outcomes.iter().all(|o| matches!(o, Outcome::Unsent(_))) => Err(e),
            _ => Ok(outcomes),
        }
    }

    /// Sends the writes at `indices`, at most [`MAX_IN_FLIGHT`] at once; the replies in order.
    async fn send(
        &self,
        conn: &ClusterConnection,
        policy: WritePolicy,
        writes: &[Write],
        indices: &[usize],
    ) -> Vec<RedisResult<Value>> {
        stream::iter(indices.iter().copied().map(|i| {
            let cmd = write_command(policy, &writes[i], &self.refresh);
            async move { self.command(conn.clone(), &cmd).await }
        }))
        .buffered(MAX_IN_FLIGHT)
        .collect()
        .await
    }

    /// Sends `cmd` (one key's) to its slot's master and follows what the
    /// cluster answers: ASK (`ASKING` + `cmd` as one pipeline to the node
    /// named), MOVED (to the node named), and a lost node, a failover or a
    /// busy slot (waited out, then routed by slot again), [`WRITE_ATTEMPTS`]
    /// sends at most, within `response_timeout`. Its reply, or the last error.
    async fn command(&self, mut conn: ClusterConnection, cmd: &redis::Cmd) -> RedisResult<Value> {
        /// Where the next send goes.
        enum Route {
            Slot,
            Moved(SingleNodeRoutingInfo),
            Ask(SingleNodeRoutingInfo),
        }
        let sends = async {
            let mut route = Route::Slot;
            let mut attempt = 0;
            loop {
                let reply = match route {
                    Route::Slot => cmd.query_async::<Value>(&mut conn).await,
                    Route::Moved(node) => conn
                        .route_command(cmd.clone(), RoutingInfo::SingleNode(node))
                        .await
                        .and_then(Value::extract_error),
                    Route::Ask(node) => {
                        let mut asking = redis::pipe();
                        asking.cmd("ASKING").add_command(cmd.clone());
                        conn.route_pipeline(asking, 1, 1, node)
                            .await
                            .and_then(|mut replies| {
                                replies
                                    .pop()
                                    .ok_or_else(|| (ErrorKind::UnexpectedReturnType, "no reply after ASKING").into())
                            })
                            .and_then(Value::extract_error)
                    }
                };
                let e = match reply {
                    Ok(value) => return Ok(value),
                    Err(e) => e,
                };
                attempt += 1;
                if attempt >= WRITE_ATTEMPTS {
                    return Err(e);
                }
                route = match (e.retry_method(), redirected_to(&e)) {
                    (RetryMethod::AskRedirect, Some(node)) => Route::Ask(node),
                    (RetryMethod::MovedRedirect, Some(node)) => Route::Moved(node),
                    (RetryMethod::NoRetry, _) => return Err(e),
                    _ => {
                        tokio::time::sleep(write_wait(attempt)).await;
                        Route::Slot
                    }
                };
            }
        };
        match tokio::time::timeout(self.response_timeout, sends).await {
            Ok(reply) => reply,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within response_timeout = {:?}, redirects and retries included",
                    self.response_timeout
                ),
            )
            .into()),
        }
    }

    /// `SCRIPT LOAD` of the refresh script, which the crate sends to every node.
    async fn load_refresh_script(&self, conn: &ClusterConnection) -> Result<(), BackendError> {
        let mut conn = conn.clone();
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(REFRESH_SCRIPT)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.error("SCRIPT LOAD", e))
    }

    /// `GET key` from its slot's master.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        get_on(&mut self.reads(), key, &self.address).await
    }

    /// `PTTL key`: `None` when absent, `Some(None)` without expiry.
    pub async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, BackendError> {
        ttl_on(&mut self.reads(), key, &self.address).await
    }

    /// `GET key` when `STRLEN key` is at most `max`, in one script call on its master.
    pub async fn get_at_most(&self, key: &str, max: u64) -> Result<Bounded, BackendError> {
        get_at_most_on(&mut self.reads(), &self.get_at_most, key, max, &self.address).await
    }

    /// `keyspace_hits` and `keyspace_misses` summed over every master (`INFO stats` on each).
    pub async fn server_stats(&self) -> Result<ServerStats, BackendError> {
        let mut conn = self.reads();
        let every_master = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
        let mut info = redis::cmd("INFO");
        info.arg("stats");
        let reply = conn
            .route_command(info, every_master)
            .await
            .map_err(|e| self.error("INFO", e))?;
        let mut sum = ServerStats { hits: 0, misses: 0 };
        for (node, text) in per_node(reply).map_err(|e| self.error("INFO", e))? {
            let text = String::from_redis_value(text).map_err(|e| self.error(&format!("INFO on {node}"), e.into()))?;
            let stats = stats_of(&text);
            sum.hits += stats.hits;
            sum.misses += stats.misses;
        }
        Ok(sum)
    }

    fn error(&self, what: &str, e: redis::RedisError) -> BackendError {
        error_of(&self.address, what, e)
    }
}

/// Opens the backend's two connections to the cluster of `config`: reads
/// (the client retries [`CLUSTER_RETRIES`] times) and writes (it retries nothing).
async fn open(config: &RedisClusterTarget) -> Result<(ClusterConnection, ClusterConnection)> {
    let nodes = &config.nodes;
    let seeds = tls::describe_seeds(&config.urls);
    let connect = |retries: u32| async move {
        let client = connect_client(config, nodes.response_timeout, retries)?;
        tokio::time::timeout(nodes.connect_timeout * 2, client.get_async_connection())
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {:?}", nodes.connect_timeout * 2))
            .and_then(|connected| Ok(connected?))
    };
    let reads = connect(CLUSTER_RETRIES).await.map_err(|e| explain(e, config, &seeds))?;
    let writes = connect(0).await.map_err(|e| explain(e, config, &seeds))?;
    Ok((reads, writes))
}

/// What a failure to reach the cluster at `seeds` means: a TLS handshake
/// refused, a single server rather than a cluster, or nodes not reached.
fn explain(e: anyhow::Error, config: &RedisClusterTarget, seeds: &str) -> anyhow::Error {
    match tls::handshake_failure(&e, seeds, &config.nodes) {
        Some(why) => e.context(why),
        None if format!("{e:#}").contains("cluster support disabled") => e.context(format!(
            "redis at {seeds} is a single server, not a cluster (cluster support disabled): use kind = \"redis\" with url = \"…\" for it"
        )),
        None => e.context(format!(
            "cannot reach the redis cluster at {seeds}: are its nodes running and the urls right? (set [backend] urls)"
        )),
    }
}

/// The node a MOVED or ASK error names.
fn redirected_to(e: &redis::RedisError) -> Option<SingleNodeRoutingInfo> {
    let (address, _slot) = e.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

/// Wait before a write's send number `attempt + 1` after a lost node or a
/// busy slot: 50 ms, doubling, at most 1 s.
fn write_wait(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1000))
}

/// A client with the seed URLs, the TLS setup and `connect_timeout` of
/// `[backend]`, replies awaited `response_timeout` (a command with all its
/// retries), `retries` per command (waits bounded by [`RETRY_WAIT`]): what
/// the backend and the usage readers connect with.
pub fn connect_client(
    config: &RedisClusterTarget,
    response_timeout: Duration,
    retries: u32,
) -> Result<redis::cluster::ClusterClient> {
    let nodes = &config.nodes;
    tls::cluster_client(&config.urls, nodes, |builder| {
        builder
            .connection_timeout(nodes.connect_timeout)
            .response_timeout(response_timeout)
            .retries(retries)
            .min_retry_wait(RETRY_WAIT.0)
            .max_retry_wait(RETRY_WAIT.1)
            .retry_wait_formula(100, 2)
    })
}

/// The address (`host`, `port`) of every master, from `CLUSTER SLOTS`; a
/// node that announces no host is taken to be on `default_host` (what Redis
/// means by an empty one: the host it was reached at).
pub async fn masters(conn: &mut ClusterConnection, default_host: &str) -> Result<Vec<(String, u16)>> {
    let mut slots = redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    let reply = conn
        .route_command(slots, RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random))
        .await
        .context("CLUSTER SLOTS")?;
    let ranges: Vec<Vec<Value>> = FromRedisValue::from_redis_value(reply).context("reading the CLUSTER SLOTS reply")?;
    let mut masters: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        // [start, end, [host, port, id, …] of the master, then its replicas]
        let Some(master) = range.into_iter().nth(2) else {
            continue;
        };
        let fields: Vec<Value> = FromRedisValue::from_redis_value(master).context("a CLUSTER SLOTS node")?;
        let mut fields = fields.into_iter();
        let (Some(host), Some(port)) = (fields.next(), fields.next()) else {
            continue;
        };
        let host: String = FromRedisValue::from_redis_value(host).context("a CLUSTER SLOTS host")?;
        let port: u16 = FromRedisValue::from_redis_value(port).context("a CLUSTER SLOTS port")?;
        let host = if host.is_empty() || host == "?" {
            default_host.to_string()
        } else {
            host
        };
        if !masters.contains(&(host.clone(), port)) {
            masters.push((host, port));
        }
    }
    masters.sort();
    Ok(masters)
}

/// A multi-node reply (the crate's map of node address → reply), each node's
/// reply, failing on the first node that answered with an error.
fn per_node(reply: Value) -> RedisResult<Vec<(String, Value)>> {
    let Value::Map(entries) = reply else {
        return Err((ErrorKind::UnexpectedReturnType, "expected one reply per master").into());
    };
    entries
        .into_iter()
        .map(|(node, reply)| {
            let node = String::from_redis_value(node)?;
            Ok((node, reply.extract_error()?))
        })
        .collect()
}

/// The writes of a batch in rounds: a key's first write in the first round,
/// its second in the second, and so on, so that a repeated key is written in
/// order while everything within a round goes at once.
fn rounds(writes: &[Write]) -> Vec<Vec<usize>> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(writes.len());
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    for (i, w) in writes.iter().enumerate() {
        let n = seen.entry(w.key.as_str()).or_insert(0);
        if rounds.len() == *n {
            rounds.push(Vec::new());
        }
        rounds[*n].push(i);
        *n += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: &str) -> Write {
        Write {
            key: key.into(),
            value: bytes::Bytes::new(),
            ttl: None,
        }
    }

    #[test]
    fn repeated_keys_go_in_later_rounds() {
        let batch = [w("a"), w("b"), w("a"), w("c"), w("a"), w("b")];
        assert_eq!(rounds(&batch), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert_eq!(rounds(&[]), Vec::<Vec<usize>>::new());
    }

    #[test]
    fn a_node_error_in_a_multi_node_reply_fails_it() {
        let ok = Value::Map(vec![(
            Value::BulkString(b"127.0.0.1:7000".to_vec()),
            Value::BulkString(b"keyspace_hits:1".to_vec()),
        )]);
        assert_eq!(per_node(ok).unwrap().len(), 1);
        let failed = Value::Map(vec![(
            Value::BulkString(b"127.0.0.1:7000".to_vec()),
            redis::parse_redis_value(b"-ERR boom\r\n").unwrap(),
        )]);
        assert!(per_node(failed).is_err());
    }
}
