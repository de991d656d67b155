//! What a Redis server tells about its keys, for usage intelligence: entries
//! of a Stream read with a consumer group, and keyspace notifications of
//! expired and evicted keys, from one server or a cluster ([`EventSource`]).
//! The Redis wire work lives here; `usage/stream.rs` turns what arrives into
//! access events and reconnects.

use super::{redis_cluster, tls};
use crate::config::{BackendConfig, RedisClusterTarget, RedisTarget, StreamConfig, Target};
use anyhow::Context;
use futures_util::StreamExt;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::time::Duration;

/// How long one `XREADGROUP` blocks waiting for entries.
const STREAM_BLOCK: Duration = Duration::from_secs(1);
/// How often a cluster's masters are listed again while watching their key
/// events, so a promoted replica or a new master is watched too.
pub const MASTERS_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Where usage events are read: one Redis server, or a Redis Cluster.
#[derive(Debug, Clone)]
pub enum EventSource {
    /// The server at `url`, reached with the TLS setup of `tls`.
    Server {
        /// `redis://…` or `rediss://…`.
        url: String,
        /// The `[backend]` connection settings (TLS files).
        tls: RedisTarget,
    },
    /// A cluster: a stream is read on the node that owns its key, key events
    /// come from every master.
    Cluster(RedisClusterTarget),
}

impl EventSource {
    /// The backend's own Redis, when it is one (kind = "redis" with a url, or "redis-cluster").
    pub fn of_backend(backend: &BackendConfig) -> Option<EventSource> {
        match &backend.target {
            Target::Redis(RedisTarget { url: Some(url), .. }) => Some(EventSource::Server {
                url: url.clone(),
                tls: backend.redis()?.clone(),
            }),
            Target::RedisCluster(cluster) => Some(EventSource::Cluster(cluster.clone())),
            _ => None,
        }
    }

    /// Where it is, for messages, without credentials.
    pub fn describe(&self) -> String {
        match self {
            EventSource::Server { url, .. } => crate::support::redact_url(url),
            EventSource::Cluster(cluster) => format!("redis-cluster {}", tls::describe_seeds(&cluster.urls)),
        }
    }

    /// The TLS settings its connections are made with.
    pub fn tls(&self) -> &RedisTarget {
        match self {
            EventSource::Server { tls, .. } => tls,
            EventSource::Cluster(cluster) => &cluster.nodes,
        }
    }
}

/// One entry of a Stream: its id (`<ms>-<seq>`) and its fields as text.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// The entry id.
    pub id: String,
    /// Field name → value (fields that are not text are left out).
    pub fields: HashMap<String, String>,
}

/// Reads `stream` from `source` with its consumer group (created when
/// missing) as `consumer`, until an error: this consumer's pending entries
/// first (read before a restart, never acknowledged), then new ones. Each
/// batch goes to `take` and is acknowledged after it returns, so an entry is
/// lost only if `take` dropped it. On a cluster every command goes to the
/// node that owns the stream's key.
pub async fn read_stream(
    source: &EventSource,
    stream: &StreamConfig,
    consumer: &str,
    take: impl FnMut(Vec<StreamEntry>),
) -> anyhow::Result<()> {
    match source {
        EventSource::Server { url, tls } => {
            let conn = tls::client(url, tls)?.get_multiplexed_async_connection().await?;
            read_stream_on(conn, stream, consumer, take).await
        }
        EventSource::Cluster(cluster) => {
            // A read blocks for STREAM_BLOCK: its reply may take that much longer.
            let wait = cluster.nodes.response_timeout + STREAM_BLOCK;
            let conn = redis_cluster::connect_client(cluster, wait, redis_cluster::CLUSTER_RETRIES)?
                .get_async_connection()
                .await?;
            read_stream_on(conn, stream, consumer, take).await
        }
    }
}

/// [`read_stream`] on a connection to a server or a cluster.
async fn read_stream_on(
    mut conn: impl redis::aio::ConnectionLike + Send + Sync,
    stream: &StreamConfig,
    consumer: &str,
    mut take: impl FnMut(Vec<StreamEntry>),
) -> anyhow::Result<()> {
    let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(&stream.name, &stream.group, "$").await;
    if let Err(e) = created {
        if e.code() != Some("BUSYGROUP") {
            return Err(e.into());
        }
    }
    tracing::info!(stream = %stream.name, group = %stream.group, consumer, "reading usage events");
    // "0": this consumer's pending entries; ">": new ones.
    let mut from = "0";
    loop {
        let options = StreamReadOptions::default()
            .group(&stream.group, consumer)
            .count(stream.batch)
            .block(STREAM_BLOCK.as_millis() as usize);
        let reply: StreamReadReply = conn.xread_options(&[&stream.name], &[from], &options).await?;
        let entries: Vec<StreamEntry> = reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids)
            .map(|entry| StreamEntry {
                fields: entry
                    .map
                    .keys()
                    .filter_map(|name| Some((name.clone(), entry.get::<String>(name)?)))
                    .collect(),
                id: entry.id,
            })
            .collect();
        if entries.is_empty() {
            from = ">";
            continue;
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        take(entries);
        let _: u64 = conn.xack(&stream.name, &stream.group, &ids).await?;
    }
}

/// Subscribes to the expired and evicted keys of `source`, handing each key
/// to `expired`, until an error or a subscription ends: one server's, or
/// every master's of a cluster (Redis publishes key events only on the node
/// that holds the key), listing the masters again every
/// [`MASTERS_CHECK_EVERY`] and ending when they changed, so the caller
/// subscribes anew. With `configure`, first adds `Exe` to each server's
/// `notify-keyspace-events` when it lacks them; without, warns that no
/// events will come.
pub async fn watch_expired_keys(source: &EventSource, configure: bool, expired: impl Fn(String)) -> anyhow::Result<()> {
    let cluster = match source {
        EventSource::Server { url, tls } => return watch_server(tls::client(url, tls)?, configure, &expired).await,
        EventSource::Cluster(cluster) => cluster,
    };
    let mut conn =
        redis_cluster::connect_client(cluster, cluster.nodes.response_timeout, redis_cluster::CLUSTER_RETRIES)?
            .get_async_connection()
            .await?;
    let seed = cluster.urls.first().context("a cluster without seed urls")?;
    let seed_host = seed_host(seed);
    let masters = redis_cluster::masters(&mut conn, &seed_host).await?;
    let mut watchers = Vec::with_capacity(masters.len());
    for (host, port) in &masters {
        let client = tls::node_client(seed, host, *port, &cluster.nodes)?;
        let expired = &expired;
        watchers.push(Box::pin(async move {
            let ended = watch_server(client, configure, expired).await;
            ended.with_context(|| format!("master {host}:{port}"))
        }));
    }
    if watchers.is_empty() {
        anyhow::bail!("the cluster lists no master (CLUSTER SLOTS is empty): is every slot assigned?");
    }
    let changed = async {
        loop {
            tokio::time::sleep(MASTERS_CHECK_EVERY).await;
            let now = redis_cluster::masters(&mut conn, &seed_host).await?;
            if now != masters {
                anyhow::bail!("the cluster's masters changed from {masters:?} to {now:?}; subscribing to the new ones");
            }
        }
    };
    tokio::select! {
        (ended, _, _) = futures_util::future::select_all(watchers) => ended,
        changed = changed => changed,
    }
}

/// The host of a seed URL (what a node announcing no host is reached at).
fn seed_host(url: &str) -> String {
    use redis::{ConnectionAddr, IntoConnectionInfo};
    match url.into_connection_info().map(|info| info.addr().clone()) {
        Ok(ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. }) => host,
        _ => "127.0.0.1".to_string(),
    }
}

/// [`watch_expired_keys`] on one server.
async fn watch_server(client: redis::Client, configure: bool, expired: &impl Fn(String)) -> anyhow::Result<()> {
    let db = client.get_connection_info().redis_settings().db();
    let mut conn = client.get_multiplexed_async_connection().await?;
    let (_, current): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(&mut conn)
        .await?;
    let has = |c: char| current.contains(c) || (current.contains('A') && c != 'E' && c != 'K');
    if !(has('E') && has('x') && has('e')) {
        if configure {
            let mut wanted = current.clone();
            for c in ['E', 'x', 'e'] {
                if !has(c) {
                    wanted.push(c);
                }
            }
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("notify-keyspace-events")
                .arg(&wanted)
                .query_async(&mut conn)
                .await?;
            tracing::info!(from = %current, to = %wanted, "notify-keyspace-events changed ([usage.keyspace] configure = true)");
        } else {
            tracing::warn!(notify_keyspace_events = %current, "the Redis server does not publish expired/evicted key events; set notify-keyspace-events to include \"Exe\" on the server, or [usage.keyspace] configure = true to let preheat do it");
        }
    }
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(format!("__keyevent@{db}__:expired")).await?;
    pubsub.subscribe(format!("__keyevent@{db}__:evicted")).await?;
    tracing::info!(db, server = %client.get_connection_info().addr(), "watching expired and evicted keys");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(key) = message.get_payload::<String>() {
            expired(key);
        }
    }
    anyhow::bail!("the subscription ended")
}
