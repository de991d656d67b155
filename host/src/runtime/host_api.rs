//! The host functions a plugin imports (`preheat:plugin/host`).

use super::sandbox::HostState;
use crate::wit::preheat::plugin::{host, types};
use types::{Level, Rows, SqlValue};

impl types::Host for HostState {}

impl host::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        self.output.log(level, &message);
    }

    async fn cache_get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        if !self.services.is_granted(&key) {
            return Err(format!(
                "cache-get {key:?}: the key is outside this plugin's key_prefixes {:?}",
                self.services.key_prefixes
            ));
        }
        crate::format::read_value(
            &self.services.backend,
            &self.services.format,
            &key,
            self.services.max_value_bytes,
        )
        .await
        .map_err(|e| format!("cache-get {key:?}: {e:#}"))
    }

    async fn query(&mut self, source: String, sql: String, params: Vec<SqlValue>) -> Result<Rows, String> {
        let Some(granted) = self.services.sources.get(&source) else {
            let names: Vec<&String> = self.services.sources.keys().collect();
            return Err(format!(
                "source `{source}` is not granted to this plugin (granted: {names:?}); add it to the plugin's `sources` in the config"
            ));
        };
        // A host call must not outlive the plugin's per-call timeout: cut it
        // short; the guest then traps with the timeout at its next epoch check.
        let remaining = self.guard.timeout.saturating_sub(self.guard.started.elapsed());
        let cancel = self.guard.cancel.clone();
        match tokio::time::timeout(remaining, granted.query(&sql, &params, &cancel)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "query on source `{source}` cut short: the call's timeout ran out"
            )),
        }
    }
}
