//! Execution: loads plugins, then runs enumerators and workers against the
//! backend under the run's limits (concurrency, priorities, rate limits,
//! retries, deadline, memory budget), and accounts for every key.
//!
//! Data flow: enumerator tasks (one per plugin) page through `enumerate`,
//! validate and de-duplicate keys (within a bounded window, see `dedup`) and
//! push them into the [`WorkQueue`] a page at a time; `concurrency` worker
//! tasks pop per-plugin batches in priority order, call `produce`, apply sizes
//! and TTLs, and write the batch in one backend round trip. Plugins are called
//! through the [`Producer`] trait (a [`LoadedPlugin`] in every real run).
//!
//! Hot path: nothing is locked or counted per key where a page or a batch will
//! do (counters, progress, the queue), and keys move from the plugin's page to
//! the backend write without being copied.

mod budget;
mod cursors;
mod dedup;
mod producer;
mod progress;
mod retry;
mod tally;

pub use budget::{available_memory, budget_bytes};
pub use producer::{CallResult, Producer};
pub use progress::{BatchProgress, LiveProgress, Progress, ProgressSnapshot};
pub use retry::backoff;

use crate::backend::{Backend, Outcome, Write};
use crate::config::{Config, PluginConfig};
use crate::format::{Format, Store};
use crate::plan::{KeyFilter, KeyRules, WarmItem, WorkQueue};
use crate::report::{Counters, Report};
use crate::runtime::{
    CallError, Cancel, Entry, HostServices, KeySpec, LoadedPlugin, PluginLimits, Priority, RunContext, Runtime,
    WarmError,
};
use crate::sources::SourceSet;
use anyhow::Result;
use budget::ByteBudget;
use cursors::{CursorHistory, MAX_CURSOR_BYTES};
use dedup::RecentKeys;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tally::{KeyDetail, KeyOutcome, Tally};

/// After this many failed calls in a row, a plugin is disabled for the rest of the run.
const MAX_CONSECUTIVE_FAILED_CALLS: u32 = 3;

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
        }
    }
}

/// The engine: a config plus a wasmtime runtime, able to run warming passes.
pub struct Warmer {
    config: Config,
    runtime: Runtime,
    /// Plugins loaded ahead of runs (hot reload keeps the last good version here).
    preloaded: std::sync::Mutex<std::collections::HashMap<String, Arc<LoadedPlugin>>>,
    /// Native producers standing in for plugins by name (benchmarks only).
    native: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn Producer>>>,
}

/// One plugin's place in a run.
struct Slot {
    config: PluginConfig,
    /// The plugin's effective value format, resolved for the backend.
    format: Format,
    plugin: Option<Arc<dyn Producer>>,
    rules: KeyRules,
    ctx: RunContext,
    limiter: Option<DefaultDirectRateLimiter>,
    disabled: AtomicBool,
    failed_calls_in_a_row: AtomicU32,
}

/// What the tasks of one run share.
struct Shared {
    config: Config,
    slots: Vec<Slot>,
    queue: WorkQueue,
    tally: Arc<Tally>,
    /// Hard stop (deadline): calls in flight are interrupted.
    cancel: Cancel,
    /// Graceful stop (on request): calls in flight finish.
    stop: Cancel,
    filter: KeyFilter,
    observer: Option<Arc<dyn RunObserver>>,
    budget: ByteBudget,
    backend: Backend,
    progress: Arc<Progress>,
    key_limit: Option<u64>,
}

impl Warmer {
    /// Builds the runtime (engine, linker, compile cache) for a validated config.
    pub fn new(config: Config) -> Result<Warmer> {
        let runtime = Runtime::new(config.component_cache_dir())?;
        Ok(Warmer {
            config,
            runtime,
            preloaded: Default::default(),
            native: Default::default(),
        })
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

    /// Makes runs use `plugin` for its name instead of loading it from disk
    /// (the swap of a hot reload: runs in flight keep the version they have).
    pub fn install(&self, plugin: Arc<LoadedPlugin>) {
        self.preloaded.lock().unwrap().insert(plugin.name().to_string(), plugin);
    }

    /// The installed version of a plugin, if it was loaded from `path`.
    pub fn installed(&self, name: &str, path: &std::path::Path) -> Option<Arc<LoadedPlugin>> {
        let config = self.config.plugins.iter().find(|p| p.name == name && p.path == path)?;
        self.preloaded.lock().unwrap().get(&config.name).cloned()
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

    /// [`Warmer::load_plugin`], given up when the run's deadline (`deadline_at`) comes first.
    async fn load_until(
        &self,
        config: &PluginConfig,
        backend: Backend,
        sources: &SourceSet,
        deadline_at: tokio::time::Instant,
    ) -> Result<Arc<LoadedPlugin>> {
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(deadline_at) => Err(anyhow::anyhow!(
                "plugin `{}` not run: the run's deadline = {:?} ([run] deadline) passed while it was loading; loading and compiling count against the deadline: fill the compile cache ahead of time (`preheat check`), build a smaller component, or raise deadline",
                config.name,
                self.config.run.deadline
            )),
            loaded = self.load_plugin(config, backend, sources) => loaded,
        }
    }

    /// Connects to the configured backend and runs every enabled plugin,
    /// recorded in the job history under the run lock (see [`crate::jobs`]).
    pub async fn run(&self, options: RunOptions) -> Report {
        crate::jobs::run_recorded(self, options).await
    }

    /// The report of a run whose backend could not be reached.
    pub fn backend_unavailable(&self, error: &anyhow::Error, options: &RunOptions, took: Duration) -> Report {
        let mut report = Report::failed(error);
        report.strategy = options.strategy.clone();
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

    /// Runs every enabled plugin against an already connected backend.
    pub async fn run_with_backend(&self, backend: Backend, mut options: RunOptions) -> Report {
        let started = options.clock_started.unwrap_or_else(Instant::now);
        // The deadline is absolute: connecting sources and loading plugins count.
        let deadline_at = tokio::time::Instant::from_std(started + self.config.run.deadline);
        let started_at = SystemTime::now();
        let run_id = options.run_id.clone().unwrap_or_else(new_run_id);
        let configs: Vec<PluginConfig> = self
            .config
            .enabled_plugins()
            .filter(|p| options.includes(&p.name))
            .cloned()
            .collect();
        let given_keys = options.keys.take();
        let tally = Arc::new(Tally::new(
            configs.iter().map(|c| c.name.clone()).collect(),
            options.trace,
        ));
        options.progress.attach(tally.clone());
        let sources = SourceSet::connect(&self.config.sources).await;
        let mut slots = Vec::with_capacity(configs.len());
        for (i, config) in configs.into_iter().enumerate() {
            let native = self.native.lock().unwrap().get(&config.name).cloned();
            let preloaded = self.preloaded.lock().unwrap().get(&config.name).cloned();
            let loaded = match (native, preloaded) {
                (Some(producer), _) => Ok(producer),
                (None, Some(plugin)) => Ok(plugin as Arc<dyn Producer>),
                (None, None) => self
                    .load_until(&config, backend.clone(), &sources, deadline_at)
                    .await
                    .map(|p| p as Arc<dyn Producer>),
            };
            let format = Format::new(self.config.format_of(&config), Store::of(&self.config.backend))
                .map_err(|e| anyhow::anyhow!("plugin `{}` not run: format: {e}", config.name));
            let (plugin, format) = match (loaded, format) {
                (Ok(p), Ok(f)) => (Some(p), f),
                (Err(e), _) | (_, Err(e)) => {
                    tally.plugin_error(i, format!("{e:#}"));
                    (None, Format::Raw)
                }
            };
            slots.push(Slot::new(config, plugin, format, &run_id, &options.strategy));
        }
        let run = &self.config.run;
        let batch_limits = slots.iter().map(|s| s.batch_limit(run.batch_size.get())).collect();
        let capacity = (4 * run.concurrency.get() * run.batch_size.get()).max(1024);
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            queue: WorkQueue::new(batch_limits, capacity),
            slots,
            tally,
            cancel: Cancel::default(),
            stop: options.stop.clone(),
            filter: options.filter.clone(),
            observer: options.observer.clone(),
            budget: ByteBudget::new(budget_bytes(run.memory_budget)),
            backend: backend.clone(),
            progress: options.progress.clone(),
            key_limit: options.key_limit,
        });

        let deadline_hit = Arc::new(AtomicBool::new(false));
        let watchdog = tokio::spawn({
            let shared = shared.clone();
            let deadline_hit = deadline_hit.clone();
            let deadline = run.deadline;
            async move {
                tokio::time::sleep_until(deadline_at).await;
                tracing::warn!(deadline = ?deadline, "run deadline reached: stopping dispatch, interrupting calls in flight");
                deadline_hit.store(true, Ordering::SeqCst);
                shared.cancel.cancel();
                for item in shared.queue.close() {
                    shared.finish(item.plugin, &item.spec, KeyOutcome::Abandoned, KeyDetail::default());
                }
            }
        });

        let stopper = tokio::spawn({
            let shared = shared.clone();
            async move {
                shared.stop.cancelled().await;
                tracing::warn!("stop requested: batches in flight finish, the rest is abandoned");
                for item in shared.queue.close() {
                    shared.finish(item.plugin, &item.spec, KeyOutcome::Abandoned, KeyDetail::default());
                }
            }
        });

        // Given keys, split by slot; `None` means the plugins enumerate.
        let mut given: Option<Vec<Vec<KeySpec>>> = given_keys.map(|keys| {
            let mut per_slot: Vec<Vec<KeySpec>> = shared.slots.iter().map(|_| Vec::new()).collect();
            for (name, spec) in keys {
                if let Some(i) = shared.slots.iter().position(|s| s.config.name == name) {
                    per_slot[i].push(spec);
                }
            }
            per_slot
        });
        let mut tasks = Vec::new();
        for i in (0..shared.slots.len()).filter(|&i| shared.slots[i].plugin.is_some()) {
            shared.queue.add_producer();
            tasks.push(match given.as_mut() {
                Some(per_slot) => tokio::spawn(feed_keys(shared.clone(), i, std::mem::take(&mut per_slot[i]))),
                None => tokio::spawn(enumerate_plugin(shared.clone(), i)),
            });
        }
        let enumeration = async {
            for t in tasks {
                let _ = t.await;
            }
            shared.progress.set_enumeration_done();
        };
        let workers: Vec<_> = (0..run.concurrency.get())
            .map(|_| tokio::spawn(worker(shared.clone())))
            .collect();
        enumeration.await;
        for w in workers {
            if let Err(e) = w.await {
                tracing::error!("worker task failed: {e}");
            }
        }
        watchdog.abort();
        stopper.abort();

        let (plugins, errors, errors_omitted, keys, calls) = shared.tally.finish();
        let mut totals = Counters::default();
        for p in &plugins {
            totals.add(&p.counters);
        }
        let mut report = Report {
            status: crate::report::RunStatus::Completed,
            run_id,
            strategy: options.strategy,
            started_at: humantime::format_rfc3339_millis(started_at).to_string(),
            duration_ms: started.elapsed().as_millis() as u64,
            // The tokens, not the helper tasks, say what happened: workers and
            // enumerators see a stop or cancel at once and may finish the run
            // before the helper task got to run.
            deadline_hit: deadline_hit.load(Ordering::SeqCst),
            stopped: shared.stop.is_cancelled(),
            backend: backend.describe(),
            error: None,
            history_error: None,
            totals,
            plugins,
            errors,
            errors_omitted,
            keys,
            calls,
        };
        report.settle_status();
        if !report.balanced() {
            tracing::error!(totals = ?report.totals, "accounting invariant broken: enumerated != sum of outcomes (this is a preheat bug)");
        }
        report
    }
}

impl Slot {
    fn new(
        config: PluginConfig,
        plugin: Option<Arc<dyn Producer>>,
        format: Format,
        run_id: &str,
        strategy: &str,
    ) -> Slot {
        let limiter = NonZeroU32::new(config.rate_limit).map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Slot {
            rules: KeyRules::for_plugin(&config),
            ctx: RunContext {
                run_id: run_id.to_string(),
                strategy: strategy.to_string(),
                settings: config.settings_as_strings(),
            },
            config,
            format,
            plugin,
            limiter,
            disabled: AtomicBool::new(false),
            failed_calls_in_a_row: AtomicU32::new(0),
        }
    }

    /// Keys per batch: the run's batch size, lowered to the rate limit (one second of keys).
    fn batch_limit(&self, batch_size: usize) -> usize {
        match self.config.rate_limit {
            0 => batch_size,
            rate => batch_size.min(rate as usize),
        }
    }

    /// TTL of a produced value: entry's, else key spec's, else the default; jittered, then capped.
    fn ttl(&self, entry: &Entry, spec: &KeySpec) -> Option<Duration> {
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

    /// The Entry → Write step: the TTL (entry's, key spec's or default; jittered,
    /// capped), then the plugin's format: the key the application reads, the
    /// value in its encoding, and, inside it (Rails), an expiry of `now + TTL`,
    /// the same TTL the backend sets. The write carries the stored key; the
    /// plugin's key comes back in the meta when the two differ. A value the
    /// format refuses, or whose encoding is over `max_value_bytes`, gives the
    /// spec back with the reason.
    fn to_write(&self, spec: KeySpec, entry: Entry, now: SystemTime) -> Result<(Write, WriteMeta), (KeySpec, String)> {
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
            .and_then(|key| Ok((key, self.format.encode_value(entry.value, ttl, now)?)));
        let max = self.config.max_value_bytes.0;
        match encoded {
            Ok((_, value)) if value.len() as u64 > max => {
                let msg = format!("the {} encoding of the value is {} bytes, over max_value_bytes = {max}; raise max_value_bytes for this plugin or produce a smaller value", self.format.name(), value.len());
                Err((spec, msg))
            }
            Ok((key, value)) => Ok((
                Write { key, value, ttl },
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
struct WriteMeta {
    priority: Priority,
    /// The plugin's key, when the stored key differs (a format's layout).
    logical: Option<String>,
}

impl WriteMeta {
    /// The plugin's key of `write`, for the report.
    fn key<'a>(&'a self, write: &'a Write) -> &'a str {
        self.logical.as_deref().unwrap_or(&write.key)
    }
}

impl Shared {
    /// Whether the run was stopped (deadline or request): nothing new starts.
    fn halted(&self) -> bool {
        self.cancel.is_cancelled() || self.stop.is_cancelled()
    }

    /// Completes once the run is stopped (deadline or request).
    async fn halt(&self) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Records a key's final outcome in the tally and the progress counters.
    fn finish(&self, plugin: usize, spec: &KeySpec, outcome: KeyOutcome, detail: KeyDetail) {
        self.finish_key(plugin, &spec.key, spec.priority, outcome, detail);
    }

    /// [`Shared::finish`] for a key whose spec was taken apart.
    fn finish_key(&self, plugin: usize, key: &str, priority: Priority, outcome: KeyOutcome, detail: KeyDetail) {
        self.tally.key_outcome(plugin, key, priority, outcome, detail);
        self.progress.add_finished(1, u64::from(outcome == KeyOutcome::Written));
    }

    fn finish_all(&self, plugin: usize, specs: &[KeySpec], attempts: &[u32], outcome: KeyOutcome, error: &str) {
        for (spec, &a) in specs.iter().zip(attempts) {
            let detail = if error.is_empty() {
                KeyDetail::default()
            } else {
                KeyDetail::error(error, a)
            };
            self.finish(plugin, spec, outcome, detail);
        }
    }

    /// Counts a failed call; disables the plugin after too many in a row.
    fn call_failed(&self, plugin: usize, error: &str) {
        let slot = &self.slots[plugin];
        let in_a_row = slot.failed_calls_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
        if in_a_row >= MAX_CONSECUTIVE_FAILED_CALLS && !slot.disabled.swap(true, Ordering::SeqCst) {
            let msg = format!("disabled after {in_a_row} failed calls in a row; last error: {error}");
            self.tally.plugin_error(plugin, msg.clone());
            let pending = self.queue.remove_plugin(plugin);
            for item in pending {
                self.finish(
                    plugin,
                    &item.spec,
                    KeyOutcome::Failed,
                    KeyDetail::error(format!("not attempted: plugin {msg}"), item.attempts),
                );
            }
        }
    }
}

/// Queues the keys a run was given for one plugin (instead of enumerating it).
async fn feed_keys(shared: Arc<Shared>, p: usize, keys: Vec<KeySpec>) {
    queue_keys(&shared, p, keys, &mut RecentKeys::new(), &mut 0).await;
    shared.queue.producer_done();
}

/// Pages through one plugin's `enumerate`, feeding valid, new keys to the queue
/// a page at a time (counters and the queue are touched once per page, not per key).
async fn enumerate_plugin(shared: Arc<Shared>, p: usize) {
    let slot = &shared.slots[p];
    let plugin = slot.plugin.as_ref().expect("only loaded plugins are enumerated");
    let mut seen = RecentKeys::new();
    let mut cursors = CursorHistory::new();
    let mut cursor: Option<String> = None;
    let mut listed: u64 = 0;
    while !shared.halted() && !slot.disabled.load(Ordering::SeqCst) {
        let page = match plugin.enumerate(&slot.ctx, cursor.as_deref(), &shared.cancel).await {
            Err(CallError::Cancelled(_)) => break,
            Err(CallError::Failed(msg)) => {
                shared.tally.plugin_error(p, msg);
                break;
            }
            Ok((result, stats)) => {
                let n = result.as_ref().map(|page| page.keys.len()).unwrap_or(0);
                shared
                    .tally
                    .call(p, "enumerate", n, stats.fuel, stats.elapsed.as_micros() as u64);
                match result {
                    Ok(page) => page,
                    Err(msg) => {
                        shared.tally.plugin_error(
                            p,
                            format!("plugin `{}`: enumerate returned an error: {msg}", plugin.name()),
                        );
                        break;
                    }
                }
            }
        };
        if queue_keys(&shared, p, page.keys, &mut seen, &mut listed).await {
            break;
        }
        match page.cursor {
            None => break,
            Some(next) if next.len() > MAX_CURSOR_BYTES => {
                shared.tally.plugin_error(p, format!("plugin `{}`: enumerate returned a cursor of {} bytes, over the {MAX_CURSOR_BYTES}-byte limit; keep cursors short (an offset or the last id)", plugin.name(), next.len()));
                break;
            }
            Some(next) if !cursors.first_time(&next) => {
                let shown = crate::report::clip(&next, 80);
                shared.tally.plugin_error(p, format!("plugin `{}`: enumerate returned the cursor {shown:?} it had returned before in this run (a cursor cycle); stopped to avoid an endless loop", plugin.name()));
                break;
            }
            next => cursor = next,
        }
    }
    shared.queue.producer_done();
}

/// Counts, filters, de-duplicates, validates and queues one page of a plugin's
/// keys; `listed` counts the plugin's keys so far. Returns whether the key limit was reached.
async fn queue_keys(shared: &Shared, p: usize, keys: Vec<KeySpec>, seen: &mut RecentKeys, listed: &mut u64) -> bool {
    let slot = &shared.slots[p];
    let (mut new, mut duplicates, mut limit_reached) = (0u64, 0u64, false);
    let mut items = Vec::with_capacity(keys.len());
    let mut invalid = Vec::new();
    for spec in keys {
        if shared.key_limit.is_some_and(|limit| *listed >= limit) {
            limit_reached = true;
            break;
        }
        if !shared.filter.accepts(&spec) {
            continue;
        }
        if !seen.insert(&spec.key) {
            duplicates += 1;
            continue;
        }
        *listed += 1;
        new += 1;
        match slot.rules.check_spec(&spec) {
            Ok(()) => items.push(WarmItem {
                plugin: p,
                spec,
                attempts: 0,
            }),
            Err(reason) => invalid.push((spec, reason)),
        }
    }
    shared.tally.add(p, |c| {
        c.enumerated += new;
        c.duplicates += duplicates;
    });
    shared.progress.add_enumerated(new);
    for (spec, reason) in invalid {
        let detail = KeyDetail::error(format!("invalid key: {reason}"), 0);
        shared.finish(p, &spec, KeyOutcome::Invalid, detail);
    }
    for item in shared.queue.push_all(items).await {
        shared.finish(p, &item.spec, KeyOutcome::Abandoned, KeyDetail::default());
    }
    limit_reached
}

/// Takes batches until the run is over.
async fn worker(shared: Arc<Shared>) {
    while let Some((p, batch)) = shared.queue.pop_batch().await {
        process_batch(&shared, p, batch).await;
        shared.queue.producer_done();
    }
}

/// Produces and writes one batch of one plugin, recording every key's outcome.
async fn process_batch(shared: &Arc<Shared>, p: usize, batch: Vec<WarmItem>) {
    let slot = &shared.slots[p];
    let (specs, attempts): (Vec<KeySpec>, Vec<u32>) = batch.into_iter().map(|i| (i.spec, i.attempts + 1)).unzip();
    if slot.disabled.load(Ordering::SeqCst) {
        return shared.finish_all(
            p,
            &specs,
            &attempts,
            KeyOutcome::Failed,
            "not attempted: the plugin was disabled after repeated failures",
        );
    }
    let plugin = slot.plugin.as_ref().expect("only loaded plugins have queued keys");
    // What this call can hand the host at most: every value at its cap, and no
    // more than the instance's memory holds (the runtime checks both before
    // copying). After the call the reservation shrinks to what was produced.
    let worst_case = (specs.len() as u64 * slot.config.max_value_bytes.0).min(slot.config.memory_limit.0);
    let mut permit = tokio::select! {
        permit = async {
            if let Some(limiter) = &slot.limiter {
                let n = NonZeroU32::new(specs.len() as u32).expect("batches are never empty");
                limiter.until_n_ready(n).await.expect("batches are capped at the rate limit");
            }
            shared.budget.reserve(worst_case).await
        } => permit,
        _ = shared.halt() => return shared.finish_all(p, &specs, &attempts, KeyOutcome::Abandoned, ""),
    };
    let _batch = shared.progress.batch_started(specs.len());

    let (results, stats) = match plugin.produce(&slot.ctx, &specs, &shared.cancel).await {
        Ok(ok) => ok,
        Err(CallError::Cancelled(_)) => return shared.finish_all(p, &specs, &attempts, KeyOutcome::Abandoned, ""),
        Err(CallError::Failed(msg)) => {
            shared.finish_all(p, &specs, &attempts, KeyOutcome::Failed, &msg);
            return shared.call_failed(p, &msg);
        }
    };
    slot.failed_calls_in_a_row.store(0, Ordering::SeqCst);
    shared
        .tally
        .call(p, "produce", specs.len(), stats.fuel, stats.elapsed.as_micros() as u64);
    if let Some(observer) = &shared.observer {
        observer.produce_call(&slot.config.name, specs.len(), stats.elapsed);
    }

    let max_value = slot.config.max_value_bytes.0;
    let now = SystemTime::now();
    let mut writes = Vec::with_capacity(specs.len());
    let mut written_meta = Vec::with_capacity(specs.len());
    let mut produced_bytes = 0u64;
    for ((spec, attempt), result) in specs.into_iter().zip(attempts).zip(results) {
        match result {
            Ok(entry) if entry.value.len() as u64 > max_value => {
                let msg = format!("value is {} bytes, over max_value_bytes = {max_value}; raise max_value_bytes for this plugin or produce a smaller value", entry.value.len());
                shared.finish(p, &spec, KeyOutcome::Failed, KeyDetail::error(msg, attempt));
            }
            Ok(entry) => {
                produced_bytes += entry.value.len() as u64;
                // The key moves into the write; the rest of the spec is not needed any more.
                match slot.to_write(spec, entry, now) {
                    Ok((write, meta)) => {
                        written_meta.push((meta, attempt));
                        writes.push(write);
                    }
                    Err((spec, msg)) => shared.finish(p, &spec, KeyOutcome::Failed, KeyDetail::error(msg, attempt)),
                }
            }
            Err(WarmError::Skip(reason)) => shared.finish(
                p,
                &spec,
                KeyOutcome::SkippedByPlugin,
                KeyDetail {
                    error: Some(reason),
                    attempts: attempt,
                    ..Default::default()
                },
            ),
            Err(WarmError::Fail(reason)) => shared.finish(
                p,
                &spec,
                KeyOutcome::Failed,
                KeyDetail::rejected(format!("plugin failed the key: {reason}"), attempt),
            ),
            Err(WarmError::Retry(reason)) => schedule_retry(shared, p, spec, attempt, &reason),
        }
    }
    ByteBudget::shrink(&mut permit, produced_bytes);
    if !writes.is_empty() {
        write_batch(shared, p, writes, written_meta).await;
    }
    drop(permit);
}

/// Requeues a key the plugin asked to retry, after a backoff; fails it when out of attempts.
fn schedule_retry(shared: &Arc<Shared>, p: usize, spec: KeySpec, attempt: u32, reason: &str) {
    let max = shared.config.run.max_attempts.get() as u32;
    if attempt >= max {
        let msg = format!("gave up after {attempt} attempts; last: {reason}");
        return shared.finish(p, &spec, KeyOutcome::Failed, KeyDetail::error(msg, attempt));
    }
    shared.tally.add(p, |c| c.retried += 1);
    shared.queue.add_producer();
    let delay = retry::backoff(shared.config.run.retry_base_delay, attempt);
    let shared = shared.clone();
    tokio::spawn(async move {
        let item = WarmItem {
            plugin: p,
            spec,
            attempts: attempt,
        };
        let requeued = tokio::select! {
            _ = tokio::time::sleep(delay) => shared.queue.push_now(item.clone()),
            _ = shared.halt() => false,
        };
        if !requeued {
            shared.finish(p, &item.spec, KeyOutcome::Abandoned, KeyDetail::default());
        }
        shared.queue.producer_done();
    });
}

/// Writes produced values, retrying transient backend errors with backoff.
/// `meta` holds each write's key priority, plugin key and attempt number.
async fn write_batch(shared: &Shared, p: usize, writes: Vec<Write>, meta: Vec<(WriteMeta, u32)>) {
    let policy = shared.slots[p].config.write_policy;
    let max = shared.config.run.max_attempts.get() as u32;
    let mut attempt = 1;
    let outcomes = loop {
        match shared.backend.write_batch(policy, &writes).await {
            Ok(outcomes) => break outcomes,
            Err(e) if e.transient && attempt < max && !shared.cancel.is_cancelled() => {
                tracing::warn!(plugin = %shared.tally.name(p), attempt, error = %e, "backend write failed; retrying");
                shared.tally.add(p, |c| c.retried += writes.len() as u64);
                tokio::select! {
                    _ = tokio::time::sleep(retry::backoff(shared.config.run.retry_base_delay, attempt)) => {}
                    _ = shared.cancel.cancelled() => {}
                }
                attempt += 1;
            }
            Err(e) => {
                let outcome = if shared.cancel.is_cancelled() {
                    KeyOutcome::Abandoned
                } else {
                    KeyOutcome::Failed
                };
                let msg = format!("{e} (after {attempt} write attempts)");
                for (write, (m, a)) in writes.iter().zip(&meta) {
                    shared.finish_key(p, m.key(write), m.priority, outcome, KeyDetail::error(msg.clone(), *a));
                }
                return;
            }
        }
    };
    if shared.tally.tracing() {
        for ((outcome, write), (m, a)) in outcomes.into_iter().zip(&writes).zip(&meta) {
            let detail = KeyDetail {
                value_bytes: Some(write.value.len()),
                ttl_seconds: write.ttl.map(|t| t.as_secs()),
                attempts: *a,
                ..Default::default()
            };
            let (outcome, detail) = match outcome {
                Outcome::Written => (KeyOutcome::Written, detail),
                Outcome::Fresh => (KeyOutcome::Fresh, detail),
                Outcome::Rejected(msg) => (
                    KeyOutcome::Failed,
                    KeyDetail {
                        error: Some(msg),
                        ..detail
                    },
                ),
            };
            shared.finish_key(p, m.key(write), m.priority, outcome, detail);
        }
        return;
    }
    // The common case, counted in bulk: one lock per batch, not per key.
    let (mut written, mut bytes, mut fresh) = (0u64, 0u64, 0u64);
    for ((outcome, write), (m, a)) in outcomes.into_iter().zip(&writes).zip(&meta) {
        match outcome {
            Outcome::Written => {
                written += 1;
                bytes += write.value.len() as u64;
            }
            Outcome::Fresh => fresh += 1,
            Outcome::Rejected(msg) => shared.finish_key(
                p,
                m.key(write),
                m.priority,
                KeyOutcome::Failed,
                KeyDetail::error(msg, *a),
            ),
        }
    }
    shared.tally.settled(p, written, bytes, fresh);
    shared.progress.add_finished(written + fresh, written);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn slot(edit: impl FnOnce(&mut PluginConfig)) -> Slot {
        let mut config = PluginConfig::for_path("p", PathBuf::from("p.wasm"), vec!["k.".into()]);
        edit(&mut config);
        Slot::new(config, None, Format::Raw, "run", "proactive")
    }

    fn entry(ttl: Option<u32>) -> Entry {
        Entry {
            value: vec![],
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
            value: v.to_vec(),
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
            (write.key.as_str(), meta.logical, write.value),
            ("k.1", None, b"7".to_vec())
        );
    }

    #[test]
    fn rate_limits_cap_the_batch_size() {
        assert_eq!(slot(|c| c.rate_limit = 50).batch_limit(256), 50);
        assert_eq!(slot(|_| {}).batch_limit(256), 256);
    }
}
