//! Events from Redis, as access events: a Stream read with a consumer group
//! (entries are acknowledged only once tracked, so a restart loses nothing:
//! pending entries are read again first), and keyspace notifications of
//! expired and evicted keys. The Redis side is `backend/events.rs`; this
//! turns entries into events and reconnects after errors.

use super::{now_ms, Usage};
use crate::backend::events::{read_stream, watch_expired_keys, EventSource, StreamEntry};
use crate::backend::tls;
use crate::config::StreamConfig;
use crate::support::Cancel;
use preheat_usage::AccessEvent;
use std::sync::Arc;
use std::time::Duration;

/// Wait after a Redis error before reconnecting.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// An event from a stream entry's fields (`key`, `hit` 1|0|true|false, optional `ts_ms`, `latency_ms`).
fn event_of(entry: &StreamEntry) -> Result<AccessEvent, String> {
    stream_event(&entry.id, |name| entry.fields.get(name).cloned())
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

/// Reads the stream from `source` until shutdown, reconnecting after errors.
pub async fn consume_stream(config: StreamConfig, source: EventSource, usage: Arc<Usage>, shutdown: Cancel) {
    let consumer = config.consumer.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "preheat".into())
    });
    let address = source.describe();
    let where_ = format!(
        "stream {} (group {}, consumer {consumer}) at {address}",
        config.name, config.group
    );
    loop {
        tokio::select! {
            result = read_stream(&source, &config, &consumer, |entries| track(&config, &usage, entries)) => {
                if let Err(e) = result {
                    let e = tls::explained(e, &address, source.tls());
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

/// Tracks a batch of stream entries; malformed ones are skipped with a warning.
fn track(config: &StreamConfig, usage: &Usage, entries: Vec<StreamEntry>) {
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
}

/// Subscribes to the expired/evicted keyspace events of `source` (one
/// server, or every master of a cluster) until shutdown; with `configure`,
/// first adds `Exe` to each server's `notify-keyspace-events`.
pub async fn watch_keyspace(source: EventSource, configure: bool, usage: Arc<Usage>, shutdown: Cancel) {
    let address = source.describe();
    loop {
        tokio::select! {
            result = watch_expired_keys(&source, configure, |key| usage.note_expired(key)) => {
                if let Err(e) = result {
                    let e = tls::explained(e, &address, source.tls());
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
