//! Runtime: loads plugins as wasmtime components and calls them inside the sandbox.
//!
//! [`Runtime`] owns the engine (fuel, epochs, the compile cache); a
//! [`LoadedPlugin`] is one compiled, version-checked component with a pool of
//! instances, called through [`LoadedPlugin::enumerate`] and
//! [`LoadedPlugin::produce`]. Every call runs under the plugin's fuel, time
//! and memory limits (time however the call blocks; memory for the whole
//! instance), loading under `compile_timeout`, and what a plugin logs is
//! escaped, capped and rate-limited; a failing call is reported as a
//! [`CallError`] and never takes the host down.

mod compile_cache;
mod engine;
mod guest_output;
mod host_api;
mod inspect;
mod limiter;
mod log_limit;
mod plugin;
mod sandbox;

pub use crate::wit::preheat::plugin::types::{
    Entry, KeySpec, Level, Page, Priority, Rows, RunContext, SqlValue, WarmError,
};
pub use compile_cache::CacheOutcome;
pub use engine::{Runtime, INTERFACE_VERSION};
pub use inspect::{inspect, Inspection};
pub use limiter::{MAX_CORE_INSTANCES, MAX_MEMORIES, MAX_TABLES};
pub use log_limit::{LOG_BURST, LOG_LINES_PER_SECOND, MAX_LOG_MESSAGE_BYTES, SUMMARY_INTERVAL};
pub use plugin::{CallError, CallStats, LoadedPlugin, PluginLimits};
pub use sandbox::HostServices;
