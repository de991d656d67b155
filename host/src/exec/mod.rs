//! Execution: loads plugins, then runs enumerators and workers against the
//! backend under the run's limits (concurrency, priorities, rate limits,
//! retries, deadline, memory budget), and accounts for every key.
//!
//! Data flow, a file per stage: `run.rs` sets a run up (slots, watchdog,
//! tasks) and builds the report; enumerator tasks (`enumerate.rs`, one per
//! plugin) page through `enumerate`, filter, de-duplicate and validate keys
//! (with `plan`'s window and rules) and push them into the
//! [`WorkQueue`](crate::plan::WorkQueue) a page at a time; `concurrency`
//! workers (`work.rs`) pop per-plugin batches in priority order and call
//! `produce`; `write.rs` turns each entry into a write (TTL, format, size)
//! and writes the batch in one backend round trip; `shared.rs` holds what
//! they share and the per-key bookkeeping. Plugins are called through the
//! [`Producer`] trait (a [`LoadedPlugin`] in every real run).
//!
//! Hot path: nothing is locked or counted per key where a page or a batch will
//! do (counters, progress, the queue), and keys move from the plugin's page to
//! the backend write without being copied.

mod budget;
mod enumerate;
mod kept;
mod producer;
mod progress;
mod run;
mod shared;
mod tally;
#[cfg(test)]
mod tests;
mod work;
mod write;

pub use budget::{available_memory, budget_bytes};
pub use producer::{CallResult, Producer};
pub use progress::{BatchProgress, LiveProgress, Progress, ProgressSnapshot};
pub use write::WRITE_GRACE;

use crate::backend::Backend;
use crate::config::{Config, PluginConfig};
use crate::format::{Format, Store};
use crate::plan::KeyFilter;
use crate::report::{Counters, Report, RunShard};
use crate::runtime::{HostServices, KeySpec, LoadedPlugin, PluginLimits, Runtime};
use crate::sources::SourceSet;
use crate::support::Cancel;
use anyhow::Result;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Per-run choices that are not in the config file.
#[derive(Clone)]
pub struct RunOptions {
    /// Strategy name passed to plugins and recorded (`proactive`, `on-demand`, …).
    pub strategy: String,
    /// Live counters for progress display.
    pub progress: Arc<Progress>,
    /// Record every key and call in the report (for `plugin test`).
    pub trace: bool,
    /// Stop enumerating a plugin after this many keys.
    pub key_limit: Option<u64>,
    /// Run id to use (generated when absent).
    pub run_id: Option<String>,
    /// Run only these plugins (all enabled plugins when absent).
    pub only: Option<Vec<String>>,
    /// Keep only the enumerated keys this accepts (`warm-pattern`, API filters).
    pub filter: KeyFilter,
    /// Warm exactly these keys, as (plugin name, key spec), instead of enumerating
    /// (`warm-key`, usage-driven warming); only the plugins named here run.
    pub keys: Option<Vec<(String, KeySpec)>>,
    /// Cancel to stop the run gracefully: batches in flight finish, the rest is abandoned.
    pub stop: Cancel,
    /// Sees calls as they happen (`serve`'s metrics).
    pub observer: Option<Arc<dyn RunObserver>>,
    /// When the run's deadline clock started (`None`: when it starts
    /// executing). [`crate::jobs::run_recorded`] sets it before connecting and
    /// taking the run lock, so the deadline bounds the whole run.
    pub clock_started: Option<Instant>,
    /// The share of a run split across workers this run warms (`--shard`).
    pub shard: Option<RunShard>,
}

/// Watches a run's plugin calls as they happen.
pub trait RunObserver: Send + Sync {
    /// A `produce` call of `plugin` returned for `keys` keys after `elapsed`.
    fn produce_call(&self, plugin: &str, keys: usize, elapsed: Duration);
}

impl RunOptions {
    /// Whether the run includes the enabled plugin `name`: it is in `only` (when
    /// set) and, when keys are given, some key is for it.
    pub fn includes(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|o| o == name))
            && self
                .keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|(p, _)| p == name))
    }
}

/// A fresh run id: unix seconds in hex and a random suffix.
pub fn new_run_id() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{secs:x}-{:06x}", rand::rng().random_range(0..0xffffff))
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            strategy: "proactive".into(),
            progress: Arc::default(),
            trace: false,
            key_limit: None,
            run_id: None,
            only: None,
            filter: KeyFilter::default(),
            keys: None,
            stop: Cancel::default(),
            observer: None,
            clock_started: None,
            shard: None,
        }
    }
}

/// The engine: a config plus a wasmtime runtime, and what its runs share for
/// the life of the process: the backend connection and the loaded plugins.
pub struct Warmer {
    config: Config,
    runtime: Runtime,
    /// The backend, connected on first use (a failed connect is tried again
    /// by the next run); runs, `cache-get` and the API's reads share it.
    backend: tokio::sync::OnceCell<Backend>,
    /// Plugins loaded by earlier runs, by a preload or by a hot reload.
    plugins: kept::KeptPlugins,
    /// Native producers standing in for plugins by name (benchmarks only).
    native: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn Producer>>>,
}

impl Warmer {
    /// Builds the runtime (engine, linker, compile cache) for a validated
    /// config; the backend connects at the first run.
    pub fn new(config: Config) -> Result<Warmer> {
        let runtime = Runtime::new(config.component_cache_dir())?;
        Ok(Warmer {
            config,
            runtime,
            backend: tokio::sync::OnceCell::new(),
            plugins: Default::default(),
            native: Default::default(),
        })
    }

    /// A warmer whose runs write to `backend` instead of the configured one
    /// (`plugin test`'s memory backend, in-process tests).
    pub fn with_backend(config: Config, backend: Backend) -> Result<Warmer> {
        let warmer = Warmer::new(config)?;
        warmer
            .backend
            .set(backend)
            .map_err(|_| anyhow::anyhow!("the backend was already set"))?;
        Ok(warmer)
    }

    /// The backend, connected now if no earlier call did; fails fast with the
    /// address and the fix.
    pub async fn backend(&self) -> Result<Backend> {
        self.backend
            .get_or_try_init(|| Backend::connect(&self.config.backend))
            .await
            .cloned()
    }

    /// Makes runs call `producer` for the plugin of that name instead of its
    /// component: the benchmarks use it to run a native Rust producer behind
    /// this same executor and so measure what WebAssembly costs. Not a plugin API.
    #[doc(hidden)]
    pub fn install_producer(&self, producer: Arc<dyn Producer>) {
        self.native
            .lock()
            .unwrap()
            .insert(producer.name().to_string(), producer);
    }

    /// Makes runs use `plugin` for its name, whatever happens to its file,
    /// until the next install (the swap of a hot reload: runs in flight keep
    /// the version they have).
    pub fn install(&self, plugin: Arc<LoadedPlugin>) {
        self.plugins.pin(plugin);
    }

    /// The kept version of a plugin, if this warmer's config loads it from `path`.
    pub fn installed(&self, name: &str, path: &std::path::Path) -> Option<Arc<LoadedPlugin>> {
        self.config.plugins.iter().find(|p| p.name == name && p.path == path)?;
        self.plugins.kept(name)
    }

    /// The config this warmer runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Loads one plugin (compiling it, or taking it from the compile cache)
    /// within `[run] compile_timeout`, granting it the backend and its sources
    /// from `sources`.
    pub async fn load_plugin(
        &self,
        config: &PluginConfig,
        backend: Backend,
        sources: &SourceSet,
    ) -> Result<Arc<LoadedPlugin>> {
        let granted = sources
            .grant(&config.sources)
            .map_err(|e| anyhow::anyhow!("plugin `{}` not run: {e}", config.name))?;
        let limits = PluginLimits::of(config);
        let format = Format::new(self.config.format_of(config), Store::of(&self.config.backend))
            .map_err(|e| anyhow::anyhow!("plugin `{}` not run: format: {e}", config.name))?;
        let services = Arc::new(HostServices {
            plugin: config.name.as_str().into(),
            backend,
            format,
            key_prefixes: config.key_prefixes.clone(),
            max_value_bytes: config.max_value_bytes.0,
            sources: granted,
        });
        let within = self.config.run.compile_timeout;
        let plugin = LoadedPlugin::load_within(&self.runtime, &config.path, limits, services, within).await?;
        Ok(Arc::new(plugin))
    }

    /// The plugin for a run: the kept version when its file has not changed,
    /// otherwise loaded now (connecting `sources` on first need) and kept.
    async fn plugin(
        &self,
        config: &PluginConfig,
        backend: &Backend,
        sources: &tokio::sync::OnceCell<SourceSet>,
    ) -> Result<Arc<LoadedPlugin>> {
        self.plugins
            .get_or_load(&config.name, &config.path, async {
                let sources = sources.get_or_init(|| SourceSet::connect(&self.config.sources)).await;
                self.load_plugin(config, backend.clone(), sources).await
            })
            .await
    }

    /// [`Warmer::plugin`], given up when the run's deadline (`deadline_at`) comes first.
    async fn plugin_until(
        &self,
        config: &PluginConfig,
        backend: &Backend,
        sources: &tokio::sync::OnceCell<SourceSet>,
        deadline_at: tokio::time::Instant,
    ) -> Result<Arc<LoadedPlugin>> {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline_at) => Err(anyhow::anyhow!(
                "plugin `{}` not run: the run's deadline = {:?} ([run] deadline) passed while it was loading; loading and compiling count against the deadline: fill the compile cache ahead of time (`preheat check`), build a smaller component, or raise deadline",
                config.name,
                self.config.run.deadline
            )),
            loaded = self.plugin(config, backend, sources) => loaded,
        }
    }

    /// Loads every enabled plugin that is not kept yet, so the first run of
    /// each starts at once (`serve` does this in the background at start and
    /// after a reload). Failures are logged; runs report them again.
    pub async fn preload(&self) {
        let backend = match self.backend().await {
            Ok(backend) => backend,
            Err(e) => return tracing::warn!("plugins not preloaded: {e:#}"),
        };
        let sources = tokio::sync::OnceCell::new();
        for config in self.config.enabled_plugins() {
            if let Err(e) = self.plugin(config, &backend, &sources).await {
                tracing::warn!(plugin = %config.name, "not preloaded: {e:#}");
            }
        }
    }

    /// The report of a run whose backend could not be reached.
    pub fn backend_unavailable(&self, error: &anyhow::Error, options: &RunOptions, took: Duration) -> Report {
        let mut report = Report::failed(error);
        report.strategy = options.strategy.clone();
        report.shard = options.shard.clone();
        report.duration_ms = took.as_millis() as u64;
        report.plugins = self
            .config
            .enabled_plugins()
            .map(|p| crate::report::PluginReport {
                name: p.name.clone(),
                counters: Counters::default(),
                produce_calls: 0,
                produce_p50_us: None,
                produce_p99_us: None,
                produce_total_us: 0,
                error: Some("not run: the backend is unavailable".into()),
            })
            .collect();
        report.settle_status();
        report
    }
}
