//! The host functions a plugin imports (`preheat:plugin/host`).

use super::bindings::preheat::plugin::{host, types};
use super::sandbox::HostState;
use types::Level;

impl types::Host for HostState {}

impl host::Host for HostState {
    async fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.services.plugin;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }

    async fn cache_get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        if !self.services.is_granted(&key) {
            return Err(format!(
                "cache-get {key:?}: the key is outside this plugin's key_prefixes {:?}",
                self.services.key_prefixes
            ));
        }
        self.services
            .backend
            .get(&key)
            .await
            .map_err(|e| format!("cache-get {key:?}: {e:#}"))
    }
}
