//! Events from Redis: a Stream read with a consumer group (entries are
//! acknowledged only once tracked, so a restart loses nothing: pending entries
//! are read again first), and keyspace notifications of expired and evicted keys.

use super::{now_ms, Usage};
use crate::backend::tls;
use crate::config::{BackendConfig, StreamConfig};
use crate::support::Cancel;
use futures_util::StreamExt;
use preheat_usage::AccessEvent;
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::Duration;

/// Wait after a Redis error before reconnecting.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// An event from a stream entry's fields (`key`, `hit` 1|0|true|false, optional `ts_ms`, `latency_ms`).
fn event_of(entry: &StreamId) -> Result<AccessEvent, String> {
    stream_event(&entry.id, |name| entry.get(name))
}

/// An event from a stream entry: its id (`<ms>-<seq>`, the time when `ts_ms`
/// is absent) and its fields by name (`key`, `hit` 1|0|true|false|hit|miss,
/// optional `ts_ms`, `latency_ms`). Not yet checked against the clock and the
/// limits ([`Usage::check`]).
pub fn stream_event(id: &str, field: impl Fn(&str) -> Option<String>) -> Result<AccessEvent, String> {
    let key = field("key").ok_or("no `key` field")?;
    let hit = field("hit").ok_or("no `hit` field")?;
    let hit = match hit.as_str() {
        "1" | "true" | "hit" => true,
        "0" | "false" | "miss" => false,
        other => return Err(format!("`hit` must be 1 or 0, got {other:?}")),
    };
    let ts_ms = match field("ts_ms") {
        None => id
            .split('-')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(now_ms),
        Some(t) => t
            .parse()
            .map_err(|_| format!("`ts_ms` must be milliseconds, got {t:?}"))?,
    };
    let latency_ms = match field("latency_ms") {
        None => None,
        Some(l) => Some(
            l.parse()
                .map_err(|_| format!("`latency_ms` must be a number, got {l:?}"))?,
        ),
    };
    Ok(AccessEvent {
        ts_ms,
        key,
        hit,
        latency_ms,
    })
}

/// Reads the stream at `url` until shutdown, reconnecting after errors; a
/// `rediss://` URL uses the TLS setup of `backend`.
pub async fn consume_stream(
    config: StreamConfig,
    url: String,
    backend: BackendConfig,
    usage: Arc<Usage>,
    shutdown: Cancel,
) {
    let consumer = config.consumer.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "preheat".into())
    });
    let where_ = format!(
        "stream {} (group {}, consumer {consumer}) at {}",
        config.name,
        config.group,
        crate::support::redact_url(&url)
    );
    loop {
        tokio::select! {
            result = read_stream(&config, &url, &backend, &consumer, &usage) => {
                if let Err(e) = result {
                    let e = tls::explained(e, &crate::support::redact_url(&url), &backend);
                    tracing::warn!("usage events: {where_}: {e:#}; reconnecting in {RECONNECT_DELAY:?}");
                }
            }
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One connection's worth of reading: pending entries first, then new ones.
async fn read_stream(
    config: &StreamConfig,
    url: &str,
    backend: &BackendConfig,
    consumer: &str,
    usage: &Usage,
) -> anyhow::Result<()> {
    let client = tls::client(url, backend)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(&config.name, &config.group, "$").await;
    if let Err(e) = created {
        if e.code() != Some("BUSYGROUP") {
            return Err(e.into());
        }
    }
    tracing::info!(stream = %config.name, group = %config.group, consumer, "reading usage events");
    // "0": this consumer's pending entries (read before a restart, never acknowledged); ">": new ones.
    let mut from = "0";
    loop {
        let options = StreamReadOptions::default()
            .group(&config.group, consumer)
            .count(config.batch)
            .block(1000);
        let reply: StreamReadReply = conn.xread_options(&[&config.name], &[from], &options).await?;
        let entries: Vec<StreamId> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
        if entries.is_empty() {
            from = ">";
            continue;
        }
        let mut events = Vec::with_capacity(entries.len());
        for entry in &entries {
            match event_of(entry).and_then(|event| usage.check(&event).map(|()| event)) {
                Ok(event) => events.push(event),
                Err(e) => {
                    tracing::warn!(stream = %config.name, id = %entry.id, "skipping a malformed usage event: {e}")
                }
            }
        }
        usage.ingest(&events);
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let _: u64 = conn.xack(&config.name, &config.group, &ids).await?;
    }
}

/// Subscribes to the backend's expired/evicted keyspace events until shutdown;
/// with `configure`, first adds `Exe` to the server's `notify-keyspace-events`.
pub async fn watch_keyspace(backend: BackendConfig, configure: bool, usage: Arc<Usage>, shutdown: Cancel) {
    let url = backend.url.clone().unwrap_or_default();
    let address = crate::support::redact_url(&url);
    loop {
        tokio::select! {
            result = keyspace_events(&url, &backend, configure, &usage) => {
                if let Err(e) = result {
                    let e = tls::explained(e, &address, &backend);
                    tracing::warn!("keyspace notifications from {address}: {e:#}; reconnecting in {RECONNECT_DELAY:?}");
                }
            }
            _ = shutdown.cancelled() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_DELAY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn keyspace_events(url: &str, backend: &BackendConfig, configure: bool, usage: &Usage) -> anyhow::Result<()> {
    let client = tls::client(url, backend)?;
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
    tracing::info!(db, "watching expired and evicted keys");
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(key) = message.get_payload::<String>() {
            usage.note_expired(key);
        }
    }
    anyhow::bail!("the subscription ended")
}
