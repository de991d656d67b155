//! What a Redis server tells about its keys, for usage intelligence: entries
//! of a Stream read with a consumer group, and keyspace notifications of
//! expired and evicted keys. The Redis wire work lives here; `usage/stream.rs`
//! turns what arrives into access events and reconnects.

use super::tls;
use crate::config::{RedisTarget, StreamConfig};
use futures_util::StreamExt;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use std::collections::HashMap;

/// One entry of a Stream: its id (`<ms>-<seq>`) and its fields as text.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    /// The entry id.
    pub id: String,
    /// Field name → value (fields that are not text are left out).
    pub fields: HashMap<String, String>,
}

/// Reads `stream` at `url` with its consumer group (created when missing) as
/// `consumer`, until an error: this consumer's pending entries first (read
/// before a restart, never acknowledged), then new ones. Each batch goes to
/// `take` and is acknowledged after it returns, so an entry is lost only if
/// `take` dropped it. A `rediss://` URL uses the TLS setup of `tls`.
pub async fn read_stream(
    url: &str,
    tls: &RedisTarget,
    stream: &StreamConfig,
    consumer: &str,
    mut take: impl FnMut(Vec<StreamEntry>),
) -> anyhow::Result<()> {
    let client = tls::client(url, tls)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
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
            .block(1000);
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

/// Subscribes to the expired and evicted keys of the server and database at
/// `url`, handing each key to `expired`, until an error or the subscription
/// ends. With `configure`, first adds `Exe` to the server's
/// `notify-keyspace-events` when it lacks them; without, warns that no
/// events will come.
pub async fn watch_expired_keys(
    url: &str,
    tls: &RedisTarget,
    configure: bool,
    mut expired: impl FnMut(String),
) -> anyhow::Result<()> {
    let client = tls::client(url, tls)?;
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
            expired(key);
        }
    }
    anyhow::bail!("the subscription ended")
}
