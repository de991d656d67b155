//! The host functions a plugin imports (`preheat:plugin/host`), as 0.2 types
//! them; `v0_1` serves 0.1's through the same functions.

use super::sandbox::HostState;
use crate::backend::{Backend, BackendError, Bounded};
use crate::format::Format;
use crate::wit::preheat::plugin::{host, types};
use std::time::SystemTime;
use types::{HostError, Level, Rows, SqlValue};

impl types::Host for HostState {}

impl host::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        self.output.log(level, &message);
    }

    async fn cache_get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        cache_get(self, key).await
    }

    async fn query(&mut self, source: String, sql: String, params: Vec<SqlValue>) -> Result<Rows, HostError> {
        query(self, source, sql, params).await
    }
}

/// `cache-get`: the key's value as the plugin's format reads it (see [`read_value`]).
pub(super) async fn cache_get(state: &mut HostState, key: String) -> Result<Option<Vec<u8>>, HostError> {
    let services = &state.services;
    if !services.is_granted(&key) {
        return Err(HostError::denied(format!(
            "cache-get {key:?}: the key is outside this plugin's key_prefixes {:?}",
            services.key_prefixes
        )));
    }
    read_value(&services.backend, &services.format, &key, services.max_value_bytes)
        .await
        .map_err(|e| HostError {
            kind: e.kind,
            message: format!("cache-get {key:?}: {}", e.message),
        })
}

/// `query`: a read-only query on a granted source, cut short at the call's timeout.
pub(super) async fn query(
    state: &mut HostState,
    source: String,
    sql: String,
    params: Vec<SqlValue>,
) -> Result<Rows, HostError> {
    let Some(granted) = state.services.sources.get(&source) else {
        let names: Vec<&String> = state.services.sources.keys().collect();
        return Err(HostError::denied(format!(
            "source `{source}` is not granted to this plugin (granted: {names:?}); add it to the plugin's `sources` in the config"
        )));
    };
    // A host call must not outlive the plugin's per-call timeout: cut it
    // short; the guest then traps with the timeout at its next epoch check.
    let remaining = state.guard.timeout.saturating_sub(state.guard.started.elapsed());
    let cancel = state.guard.cancel.clone();
    match tokio::time::timeout(remaining, granted.query(&sql, &params, &cancel)).await {
        Ok(result) => result,
        Err(_) => Err(HostError::limit(format!(
            "query on source `{source}` cut short: the call's timeout ran out (the plugin's `timeout`)"
        ))),
    }
}

/// What a plugin's `cache-get` of its key returns: the stored bytes when the
/// format is raw, else the decoded value as JSON (`None` for a Rails entry whose
/// own expiry has passed, which Rails reads as a miss). A stored value over
/// `max` bytes is refused without being transferred, and so is one whose
/// JSON is over `max` (decoding is bounded by the format's decode budget).
async fn read_value(backend: &Backend, format: &Format, key: &str, max: u64) -> Result<Option<Vec<u8>>, HostError> {
    let stored_key = format
        .storage_key(key)
        .map_err(|e| HostError::invalid(format!("{e:#}")))?;
    let stored = match backend.get_at_most(&stored_key, max).await {
        Ok(Bounded::Absent) => return Ok(None),
        Ok(Bounded::Value(stored)) => stored,
        Ok(Bounded::TooLarge { bytes }) => return Err(HostError::limit(format!(
            "the value is {bytes} bytes, over max_value_bytes = {max} for this plugin; it was not read (raise max_value_bytes for this plugin, or read smaller keys)"
        ))),
        Err(BackendError { transient: true, message }) => return Err(HostError::transient(message)),
        Err(BackendError { transient: false, message }) => return Err(HostError::invalid(message)),
    };
    if format.is_raw() {
        return Ok(Some(stored));
    }
    let decoded = format
        .decode(&stored)
        .map_err(|e| HostError::invalid(format!("{stored_key:?} is not a {} value: {e}", format.name())))?;
    if decoded.is_expired(SystemTime::now()) {
        return Ok(None);
    }
    let json = decoded.value.to_json();
    if json.len() as u64 > max {
        return Err(HostError::limit(format!(
            "{stored_key:?} decodes to {} bytes of JSON, over max_value_bytes = {max} for this plugin (compression or links made it grow); not handed to the plugin",
            json.len()
        )));
    }
    Ok(Some(json.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteSize, RailsFormat, RailsVersion};
    use std::time::{Duration, UNIX_EPOCH};

    #[tokio::test]
    async fn cache_get_reads_the_stored_key_and_hands_back_json() {
        use crate::backend::{MemoryBackend, Write};
        use crate::config::WritePolicy;
        let memory = std::sync::Arc::new(MemoryBackend::new(1 << 20));
        let backend = Backend::Memory(memory.clone());
        let rails = Format::Rails(RailsFormat {
            namespace: Some("app".into()),
            cache_format_version: RailsVersion::V6_1,
            compress: true,
            compress_threshold: ByteSize(1024),
        });
        let write = |key: &str, value: Vec<u8>| Write {
            key: key.into(),
            value: value.into(),
            ttl: Some(Duration::from_secs(60)),
        };
        let fresh = rails
            .encode_value(br#"{"n":1}"#.to_vec(), Some(Duration::from_secs(60)), SystemTime::now())
            .unwrap();
        let stale = rails
            .encode_value(
                b"2".to_vec(),
                Some(Duration::from_secs(1)),
                UNIX_EPOCH + Duration::from_secs(10),
            )
            .unwrap();
        memory.write_batch(
            WritePolicy::Always,
            &[
                write("app:k.fresh", fresh),
                write("app:k.stale", stale),
                write("app:k.junk", b"junk".to_vec()),
            ],
        );
        assert_eq!(
            read_value(&backend, &rails, "k.fresh", 1 << 20).await.unwrap(),
            Some(br#"{"n":1}"#.to_vec())
        );
        // Compressed to a few hundred bytes, 100 KB of JSON: refused under a 64 KiB cap.
        let zeros = format!("[{}0]", "0,".repeat(50_000));
        let bomb = rails
            .encode_value(zeros.into_bytes(), Some(Duration::from_secs(60)), SystemTime::now())
            .unwrap();
        assert!(bomb.len() < 4096, "{}", bomb.len());
        memory.write_batch(WritePolicy::Always, &[write("app:k.bomb", bomb)]);
        let err = read_value(&backend, &rails, "k.bomb", 64 << 10).await.unwrap_err();
        assert_eq!(err.kind, types::HostErrorKind::Limit);
        let err = err.message;
        assert!(
            err.contains("decodes to 100003 bytes of JSON, over max_value_bytes = 65536"),
            "{err}"
        );
        assert_eq!(
            read_value(&backend, &rails, "k.stale", 1 << 20).await.unwrap(),
            None,
            "past its own expiry: a miss, as Rails reads it"
        );
        assert_eq!(read_value(&backend, &rails, "k.none", 1 << 20).await.unwrap(), None);
        let err = read_value(&backend, &rails, "k.junk", 1 << 20).await.unwrap_err();
        assert_eq!(err.kind, types::HostErrorKind::Invalid);
        let err = err.message;
        assert!(err.contains("app:k.junk") && err.contains("rails 6.1"), "{err}");
        assert_eq!(
            read_value(&backend, &Format::Raw, "app:k.junk", 1 << 20).await.unwrap(),
            Some(b"junk".to_vec())
        );
    }
}
