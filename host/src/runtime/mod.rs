//! Runtime: loads plugins as wasmtime components and calls them inside the sandbox.
//!
//! [`Runtime`] owns the engine (fuel, epochs, the compile cache); a
//! [`LoadedPlugin`] is one compiled, version-checked component with a pool of
//! instances, called through [`LoadedPlugin::enumerate`] and
//! [`LoadedPlugin::produce`]. Plugins of both interface versions are served
//! ([`Interface`]): the host's types are 0.2's, a 0.1 plugin's are converted
//! at the boundary (`v0_1`), and 0.2's packed pages and batches are built and
//! checked in `packing`. Every call runs under the plugin's fuel, time
//! and memory limits (time however the call blocks; memory for the whole
//! instance), loading under `compile_timeout`, and what a plugin logs is
//! escaped, capped and rate-limited; a failing call is reported as a
//! [`CallError`] and never takes the host down.

mod compile_cache;
mod engine;
mod guest_output;
mod host_api;
mod inspect;
mod interface;
mod limiter;
mod log_limit;
mod packing;
mod plugin;
mod sandbox;
mod v0_1;

pub use crate::wit::preheat::plugin::types::{
    HostError, HostErrorKind, KeySpec, Level, Priority, Rows, RunContext, Shard, SqlValue, WarmError,
};
pub use compile_cache::CacheOutcome;
pub use engine::Runtime;
pub use inspect::{inspect, Inspection};
pub use interface::{Interface, INTERFACE_VERSION, LEGACY_INTERFACE_VERSION};
pub use limiter::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
pub use log_limit::{LOG_BURST, LOG_LINES_PER_SECOND, MAX_LOG_MESSAGE_BYTES, SUMMARY_INTERVAL};
pub use packing::MAX_PAGE_KEYS;
pub use plugin::{CallError, CallStats, LoadedPlugin, PluginLimits};
pub use sandbox::HostServices;

/// One page of a plugin's `enumerate`: its keys, and the cursor of the next
/// page (none on the last).
#[derive(Debug, Clone)]
pub struct Page {
    /// The keys, in the order the plugin listed them.
    pub keys: Vec<KeySpec>,
    /// Handed back to the next `enumerate` call; none on the last page.
    pub cursor: Option<String>,
}

/// A value a plugin produced for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes, as the plugin made them (the format encodes them for
    /// the backend); a 0.2 plugin's values of one batch share one buffer.
    pub value: bytes::Bytes,
    /// Overrides the key spec's ttl when present.
    pub ttl_seconds: Option<u32>,
}
