//! The Entry → Write step (TTL, value format, size) and the backend write of a
//! batch with its retries and outcomes.

use super::shared::{Shared, Slot};
use super::tally::{KeyDetail, KeyOutcome};
use crate::backend::{BackendError, Outcome, Write};
use crate::runtime::{Entry, KeySpec, Priority};
use crate::support::backoff;
use rand::Rng;
use std::time::{Duration, SystemTime};

impl Slot {
    /// TTL of a produced value: entry's, else key spec's, else the default; jittered, then capped.
    pub(super) fn ttl(&self, entry: &Entry, spec: &KeySpec) -> Option<Duration> {
        let secs = entry.ttl_seconds.or(spec.ttl_seconds).filter(|&s| s > 0);
        let mut ttl = secs
            .map(|s| Duration::from_secs(s.into()))
            .or(self.config.default_ttl)?;
        if self.config.ttl_jitter_percent > 0 {
            let j = f64::from(self.config.ttl_jitter_percent) / 100.0;
            ttl = ttl.mul_f64(rand::rng().random_range(1.0 - j..=1.0 + j));
        }
        if let Some(max) = self.config.max_ttl {
            ttl = ttl.min(max);
        }
        Some(ttl.max(Duration::from_secs(1)))
    }

    /// The Entry → Write step: the size check of the produced value
    /// (`max_value_bytes`), the TTL (entry's, key spec's or default; jittered,
    /// capped), then the plugin's format: the key the application reads, the
    /// value in its encoding, and, inside it (Rails), an expiry of `now + TTL`,
    /// the same TTL the backend sets. The write carries the stored key; the
    /// plugin's key comes back in the meta when the two differ. A value the
    /// format refuses, or that is over `max_value_bytes` as produced or as
    /// encoded, gives the spec back with the reason.
    pub(super) fn to_write(
        &self,
        spec: KeySpec,
        entry: Entry,
        now: SystemTime,
    ) -> Result<(Write, WriteMeta), (KeySpec, String)> {
        let max = self.config.max_value_bytes.0;
        if entry.value.len() as u64 > max {
            let msg = format!("value is {} bytes, over max_value_bytes = {max}; raise max_value_bytes for this plugin or produce a smaller value", entry.value.len());
            return Err((spec, msg));
        }
        let ttl = self.ttl(&entry, &spec);
        let priority = spec.priority;
        if self.format.is_raw() {
            let write = Write {
                key: spec.key,
                value: entry.value,
                ttl,
            };
            return Ok((
                write,
                WriteMeta {
                    priority,
                    logical: None,
                },
            ));
        }
        let encoded = self
            .format
            .storage_key(&spec.key)
            .and_then(|key| Ok((key, self.format.encode_value(entry.value.to_vec(), ttl, now)?)));
        match encoded {
            Ok((_, value)) if value.len() as u64 > max => {
                let msg = format!("the {} encoding of the value is {} bytes, over max_value_bytes = {max}; raise max_value_bytes for this plugin or produce a smaller value", self.format.name(), value.len());
                Err((spec, msg))
            }
            Ok((key, value)) => Ok((
                Write {
                    key,
                    value: value.into(),
                    ttl,
                },
                WriteMeta {
                    priority,
                    logical: Some(spec.key),
                },
            )),
            Err(e) => Err((spec, format!("format {}: {e}", self.format.name()))),
        }
    }
}

/// What the executor remembers of a write until its outcome is known.
#[derive(Debug)]
pub(super) struct WriteMeta {
    pub(super) priority: Priority,
    /// The plugin's key, when the stored key differs (a format's layout).
    pub(super) logical: Option<String>,
}

impl WriteMeta {
    /// The plugin's key of `write`, for the report.
    fn key<'a>(&'a self, write: &'a Write) -> &'a str {
        self.logical.as_deref().unwrap_or(&write.key)
    }
}

/// How long a write in flight at the deadline may still take before it is
/// given up: a backend that blocks (a locked row, a stalled server) cannot
/// hold the run past `deadline + WRITE_GRACE`.
pub const WRITE_GRACE: Duration = Duration::from_secs(2);

/// Writes produced values, retrying transient backend errors with backoff:
/// the whole batch when the backend failed it, only the writes that did not
/// land when it answered per write ([`Outcome::Unsent`]), so a key written
/// before a failover is not sent again (and found fresh by its own write).
/// `meta` holds each write's key priority, plugin key and attempt number.
pub(super) async fn write_batch(shared: &Shared, p: usize, writes: Vec<Write>, meta: Vec<(WriteMeta, u32)>) {
    let policy = shared.slots[p].config.write_policy;
    let max = shared.config.run.max_attempts.get() as u32;
    let (mut writes, mut meta) = (writes, meta);
    let mut attempt = 1;
    loop {
        let written = tokio::select! {
            written = shared.backend.write_batch(policy, &writes) => written,
            _ = async {
                shared.cancel.cancelled().await;
                tokio::time::sleep(WRITE_GRACE).await;
            } => Err(BackendError {
                transient: false,
                message: format!("the write was still waiting on the backend {WRITE_GRACE:?} after the run's deadline; given up (whether it landed is unknown)"),
            }),
        };
        let error = match written {
            Ok(outcomes) => {
                let unsent;
                (writes, meta, unsent) = settle(shared, p, outcomes, writes, meta);
                match unsent {
                    None => return,
                    Some(e) => e,
                }
            }
            Err(e) => e,
        };
        if error.transient && attempt < max && !shared.cancel.is_cancelled() {
            tracing::warn!(plugin = %shared.tally.name(p), attempt, writes = writes.len(), error = %error, "backend write failed; retrying");
            shared.tally.add(p, |c| c.retried += writes.len() as u64);
            tokio::select! {
                _ = tokio::time::sleep(backoff(shared.config.run.retry_base_delay, attempt)) => {}
                _ = shared.cancel.cancelled() => {}
            }
            attempt += 1;
            continue;
        }
        let outcome = if shared.cancel.is_cancelled() {
            KeyOutcome::Abandoned
        } else {
            KeyOutcome::Failed
        };
        let msg = format!("{error} (after {attempt} write attempts)");
        for (write, (m, a)) in writes.iter().zip(&meta) {
            shared.finish_key(p, m.key(write), m.priority, outcome, KeyDetail::error(msg.clone(), *a));
        }
        return;
    }
}

/// Records the outcome of every write that has one; gives back the writes
/// that did not land ([`Outcome::Unsent`]), with the first reason, to retry.
fn settle(
    shared: &Shared,
    p: usize,
    outcomes: Vec<Outcome>,
    writes: Vec<Write>,
    meta: Vec<(WriteMeta, u32)>,
) -> (Vec<Write>, Vec<(WriteMeta, u32)>, Option<BackendError>) {
    let (mut unsent_writes, mut unsent_meta, mut unsent) = (Vec::new(), Vec::new(), None);
    // The common case, counted in bulk: one lock per batch, not per key.
    let (mut written, mut bytes, mut fresh) = (0u64, 0u64, 0u64);
    let tracing = shared.tally.tracing();
    for ((outcome, write), (m, a)) in outcomes.into_iter().zip(writes).zip(meta) {
        let detail = |error: Option<String>| KeyDetail {
            value_bytes: Some(write.value.len()),
            ttl_seconds: write.ttl.map(|t| t.as_secs()),
            attempts: a,
            error,
            ..Default::default()
        };
        match outcome {
            Outcome::Unsent(e) => {
                unsent.get_or_insert(e);
                unsent_writes.push(write);
                unsent_meta.push((m, a));
            }
            Outcome::Written if tracing => {
                shared.finish_key(p, m.key(&write), m.priority, KeyOutcome::Written, detail(None))
            }
            Outcome::Fresh if tracing => {
                shared.finish_key(p, m.key(&write), m.priority, KeyOutcome::Fresh, detail(None))
            }
            Outcome::Written => {
                written += 1;
                bytes += write.value.len() as u64;
            }
            Outcome::Fresh => fresh += 1,
            Outcome::Rejected(msg) if tracing => {
                shared.finish_key(p, m.key(&write), m.priority, KeyOutcome::Failed, detail(Some(msg)))
            }
            Outcome::Rejected(msg) => shared.finish_key(
                p,
                m.key(&write),
                m.priority,
                KeyOutcome::Failed,
                KeyDetail::error(msg, a),
            ),
        }
    }
    if written + fresh > 0 {
        shared.tally.settled(p, written, bytes, fresh);
        shared.progress.add_finished(written + fresh, written);
    }
    (unsent_writes, unsent_meta, unsent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PluginConfig;
    use crate::format::{Format, Store};
    use std::path::PathBuf;

    fn slot(edit: impl FnOnce(&mut PluginConfig)) -> Slot {
        let mut config = PluginConfig::for_path("p", PathBuf::from("p.wasm"), vec!["k.".into()]);
        edit(&mut config);
        Slot::new(config, None, Format::Raw, "run", "proactive", None)
    }

    fn entry(ttl: Option<u32>) -> Entry {
        Entry {
            value: Default::default(),
            ttl_seconds: ttl,
        }
    }

    fn spec(ttl: Option<u32>) -> KeySpec {
        KeySpec {
            key: "k.1".into(),
            priority: crate::runtime::Priority::Normal,
            ttl_seconds: ttl,
            tags: vec![],
            arg: None,
        }
    }

    #[test]
    fn ttl_prefers_entry_then_key_spec_then_default_and_is_capped() {
        let s = slot(|c| c.max_ttl = Some(Duration::from_secs(600)));
        assert_eq!(s.ttl(&entry(Some(60)), &spec(Some(120))), Some(Duration::from_secs(60)));
        assert_eq!(s.ttl(&entry(None), &spec(Some(120))), Some(Duration::from_secs(120)));
        assert_eq!(
            s.ttl(&entry(None), &spec(None)),
            Some(Duration::from_secs(600)),
            "1h default capped at 10m"
        );
        assert_eq!(s.ttl(&entry(Some(86_400)), &spec(None)), Some(Duration::from_secs(600)));
        let no_default = slot(|c| c.default_ttl = None);
        assert_eq!(no_default.ttl(&entry(None), &spec(None)), None);
    }

    #[test]
    fn ttl_jitter_spreads_within_the_percentage() {
        let s = slot(|c| c.ttl_jitter_percent = 10);
        let ttls: Vec<Duration> = (0..200)
            .map(|_| s.ttl(&entry(Some(1000)), &spec(None)).unwrap())
            .collect();
        assert!(ttls
            .iter()
            .all(|t| *t >= Duration::from_secs(900) && *t <= Duration::from_secs(1100)));
        assert!(ttls.iter().any(|t| *t != ttls[0]), "jitter must vary the TTL");
    }

    #[test]
    fn to_write_applies_the_format_and_keeps_the_plugin_key_for_reports() {
        let rails = crate::config::FormatConfig::Rails(crate::config::RailsFormat {
            namespace: Some("app".into()),
            cache_format_version: crate::config::RailsVersion::V7_1,
            compress: false,
            compress_threshold: crate::config::ByteSize(1024),
        });
        let format = Format::new(&rails, Store::Redis).unwrap();
        let mut s = slot(|c| c.max_value_bytes = crate::config::ByteSize(40));
        s.format = format;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let produced = |v: &[u8]| Entry {
            value: bytes::Bytes::copy_from_slice(v),
            ttl_seconds: Some(60),
        };
        let (write, meta) = s.to_write(spec(None), produced(b"7"), now).unwrap();
        assert_eq!(write.key, "app:k.1");
        assert_eq!(meta.key(&write), "k.1");
        assert_eq!(write.ttl, Some(Duration::from_secs(60)));
        assert_eq!(
            &write.value[3..11],
            &1060.0f64.to_le_bytes(),
            "entry expiry = now + TTL"
        );
        // A hostile plugin: a small value whose encoding is over max_value_bytes, and a key Rails 7.1 cannot store.
        let (back, msg) = s
            .to_write(spec(None), produced(b"[1,2,3,4,5,6,7,8,9,10,11,12]"), now)
            .unwrap_err();
        assert_eq!(back.key, "k.1");
        assert!(
            msg.contains("rails 7.1 encoding") && msg.contains("max_value_bytes"),
            "{msg}"
        );
        let long = KeySpec {
            key: format!("k.{}", "x".repeat(1100)),
            ..spec(None)
        };
        let (_, msg) = s.to_write(long, produced(b"1"), now).unwrap_err();
        assert!(msg.contains("1024"), "{msg}");
        let raw = slot(|_| {});
        let (write, meta) = raw.to_write(spec(None), produced(b"7"), now).unwrap();
        assert_eq!(
            (write.key.as_str(), meta.logical, &write.value[..]),
            ("k.1", None, &b"7"[..])
        );
    }

    #[test]
    fn rate_limits_cap_the_batch_size() {
        assert_eq!(slot(|c| c.rate_limit = 50).batch_limit(256), 50);
        assert_eq!(slot(|_| {}).batch_limit(256), 256);
    }
}
