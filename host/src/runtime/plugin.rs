//! One loaded plugin: a compiled, version-checked component with a pool of
//! ready instances, and the two calls of the interface under the sandbox limits.

use super::compile_cache::CacheOutcome;
use super::engine::Runtime;
use super::guest_output::GuestOutput;
use super::interface::{interface_of, Interface};
use super::limiter::{count_cap_message, MemoryCapExceeded};
use super::log_limit::PluginLog;
use super::sandbox::{HostServices, HostState, Interrupted};
use super::{packing, v0_1, Entry, KeySpec, Page, RunContext, WarmError};
use crate::support::Cancel;
use crate::wit::{v0_1 as old, v0_2 as new};
use anyhow::{bail, Context, Result};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap, WasmBacktrace};

/// The sandbox limits of one plugin, applied to every call.
#[derive(Debug, Clone, Copy)]
pub struct PluginLimits {
    /// Fuel (≈ wasm instructions) per call.
    pub fuel_per_call: u64,
    /// Wall-clock limit per call (instantiation included), however the call blocks.
    pub timeout: Duration,
    /// Cap on all linear memories and tables of one instance together, in bytes.
    pub memory_limit: usize,
}

impl PluginLimits {
    /// The limits a plugin's config sets.
    pub fn of(config: &crate::config::PluginConfig) -> PluginLimits {
        PluginLimits {
            fuel_per_call: config.fuel_per_call,
            timeout: config.timeout,
            memory_limit: config.memory_limit.0 as usize,
        }
    }
}

/// What one successful call cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallStats {
    /// Fuel consumed.
    pub fuel: u64,
    /// Wall-clock time of the call.
    pub elapsed: Duration,
}

/// Why a call produced nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The run was stopped while the call was waiting or running; its keys are abandoned.
    #[error("{0}")]
    Cancelled(String),
    /// The call trapped, ran out of fuel, time or memory, or could not start.
    #[error("{0}")]
    Failed(String),
}

/// A ready-to-call instance and its store.
struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
}

/// A component linked for the interface it speaks, ready to instantiate.
enum Pre {
    V0_1(old::PluginPre<HostState>),
    V0_2(new::PluginPre<HostState>),
}

/// An instance's exports, of the interface it speaks.
enum Bindings {
    V0_1(old::Plugin),
    V0_2(new::Plugin),
}

/// A compiled plugin, ready to be instantiated and called.
pub struct LoadedPlugin {
    name: Arc<str>,
    engine: Engine,
    pre: Pre,
    limits: PluginLimits,
    /// Fuel and epochs are on (see [`Runtime::new_unmetered`]).
    metered: bool,
    services: Arc<HostServices>,
    /// The plugin's log: escaped, capped, rate-limited across its instances.
    log: Arc<PluginLog>,
    idle: Mutex<Vec<Instance>>,
    /// Whether the compiled component came from the on-disk cache.
    pub cache_outcome: CacheOutcome,
    /// Size of the `.wasm` file.
    pub wasm_bytes: usize,
}

impl LoadedPlugin {
    /// [`LoadedPlugin::load`] on a thread of its own, given up after `within`
    /// (compilation cannot be interrupted: the thread is abandoned and finishes,
    /// or dies with the process, on its own). The error names `compile_timeout`.
    pub async fn load_within(
        runtime: &Runtime,
        path: &Path,
        limits: PluginLimits,
        services: Arc<HostServices>,
        within: Duration,
    ) -> Result<LoadedPlugin> {
        let name = services.plugin.clone();
        let (runtime, owned) = (runtime.clone(), path.to_path_buf());
        match off_thread(&name, within, move || LoadedPlugin::load(&runtime, &owned, limits, services)).await {
            Some(loaded) => loaded,
            None => bail!(
                "plugin `{name}`: loading {} took longer than compile_timeout = {within:?} ([run] compile_timeout); compilation was abandoned. Build a smaller component (release profile, strip debug info) or raise compile_timeout",
                path.display()
            ),
        }
    }

    /// Reads, compiles (or loads from the cache), version-checks and links a plugin.
    /// CPU-heavy on a cache miss and not interruptible: runs take
    /// [`LoadedPlugin::load_within`]; this is for a blocking context (benchmarks).
    pub fn load(
        runtime: &Runtime,
        path: &Path,
        limits: PluginLimits,
        services: Arc<HostServices>,
    ) -> Result<LoadedPlugin> {
        let name = services.plugin.clone();
        let wasm = std::fs::read(path).with_context(|| {
            format!("plugin `{name}`: cannot read {}: check `path` in the config, and build the plugin with `cargo build --release --target wasm32-wasip2`", path.display())
        })?;
        check_component_header(&wasm).with_context(|| format!("plugin `{name}`: {}", path.display()))?;
        let (component, cache_outcome) = runtime
            .cache
            .load(&runtime.engine, &wasm, path)
            .with_context(|| format!("plugin `{name}`"))?;
        let interface = interface_of(&component, &runtime.engine)
            .with_context(|| format!("plugin `{name}` ({})", path.display()))?;
        let instance_pre = runtime
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "plugin `{name}` ({}) imports something this host does not grant",
                    path.display()
                )
            })?;
        let pre = match interface {
            Interface::V0_1 => old::PluginPre::new(instance_pre).map(Pre::V0_1),
            Interface::V0_2 => new::PluginPre::new(instance_pre).map(Pre::V0_2),
        }
        .map_err(anyhow::Error::from)
        .with_context(|| format!("plugin `{name}`"))?;
        Ok(LoadedPlugin {
            log: Arc::new(PluginLog::new(name.clone())),
            name,
            engine: runtime.engine.clone(),
            pre,
            limits,
            metered: runtime.metered,
            services,
            idle: Mutex::new(Vec::new()),
            cache_outcome,
            wasm_bytes: wasm.len(),
        })
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin interface the component was built against.
    pub fn interface(&self) -> Interface {
        match self.pre {
            Pre::V0_1(_) => Interface::V0_1,
            Pre::V0_2(_) => Interface::V0_2,
        }
    }

    /// The host services (backend, prefixes) this plugin was given.
    pub fn services(&self) -> &HostServices {
        &self.services
    }

    /// Creates an instance now, so a broken start-up shows before the run (used by `check`).
    pub async fn warm_up(&self) -> Result<(), CallError> {
        let instance = self.checkout(&Cancel::default()).await?;
        self.idle.lock().unwrap().push(instance);
        Ok(())
    }

    /// Calls `enumerate`: the plugin's own error comes back as `Ok(Err(..))`.
    pub async fn enumerate(
        &self,
        ctx: &RunContext,
        cursor: Option<&str>,
        cancel: &Cancel,
    ) -> Result<(Result<Page, String>, CallStats), CallError> {
        let mut inst = self.checkout(cancel).await?;
        let started = self.arm(&mut inst, cancel);
        let Instance { store, bindings } = &mut inst;
        // The page, or what was wrong with a packed one (not the plugin's own error).
        let result: wasmtime::Result<Result<Result<Page, String>, String>> = match bindings {
            Bindings::V0_2(b) => {
                let call = b.preheat_plugin_warmer().call_enumerate(&mut *store, ctx, cursor);
                self.bounded(call, cancel).await.map(|page| match page {
                    Ok(page) => packing::unpack_keys(page.keys).map(|keys| {
                        Ok(Page {
                            keys,
                            cursor: page.cursor,
                        })
                    }),
                    Err(own) => Ok(Err(own)),
                })
            }
            Bindings::V0_1(b) => {
                let ctx = v0_1::run_context_to(ctx);
                let call = b.preheat_plugin_warmer().call_enumerate(&mut *store, &ctx, cursor);
                let page = self.bounded(call, cancel).await;
                page.map(|page| Ok(page.map(v0_1::page_from)))
            }
        };
        let what = || match cursor {
            Some(c) => format!("enumerate (cursor {c:?})"),
            None => "enumerate (first page)".to_string(),
        };
        let (page, stats) = self.finish(inst, result, started, what)?;
        let page = page.map_err(|why| CallError::Failed(format!("plugin `{}`: {} {why}", self.name, what())))?;
        Ok((page, stats))
    }

    /// Calls `produce` for a batch (packed, for a 0.2 plugin); checks that
    /// exactly one result per key came back, and for 0.2 that the values'
    /// lengths add up.
    pub async fn produce(
        &self,
        ctx: &RunContext,
        keys: &[KeySpec],
        cancel: &Cancel,
    ) -> Result<(Vec<Result<Entry, WarmError>>, CallStats), CallError> {
        let what = || describe_batch(keys);
        let failed = |why: String| CallError::Failed(format!("plugin `{}`: {} {why}", self.name, what()));
        let mut inst = self.checkout(cancel).await?;
        let started = self.arm(&mut inst, cancel);
        let Instance { store, bindings } = &mut inst;
        let result = match bindings {
            Bindings::V0_2(b) => match packing::pack(keys) {
                Ok(batch) => {
                    let call = b.preheat_plugin_warmer().call_produce(&mut *store, ctx, &batch);
                    self.bounded(call, cancel).await.map(packing::unpack)
                }
                Err(why) => Ok(Err(why)),
            },
            Bindings::V0_1(b) => {
                let (ctx, keys) = (v0_1::run_context_to(ctx), v0_1::key_specs_to(keys));
                let call = b.preheat_plugin_warmer().call_produce(&mut *store, &ctx, &keys);
                let results = self.bounded(call, cancel).await;
                results.map(|results| Ok(results.into_iter().map(v0_1::result_from).collect()))
            }
        };
        let (results, stats) = self.finish(inst, result, started, what)?;
        let results = results.map_err(failed)?;
        if results.len() != keys.len() {
            return Err(CallError::Failed(format!(
                "plugin `{}`: {} returned {} results for {} keys; produce must return exactly one result per key, in order",
                self.name,
                what(),
                results.len(),
                keys.len()
            )));
        }
        Ok((results, stats))
    }

    /// Takes an idle instance, or instantiates a new one.
    async fn checkout(&self, cancel: &Cancel) -> Result<Instance, CallError> {
        if cancel.is_cancelled() {
            return Err(CallError::Cancelled("run stopped before the call started".into()));
        }
        if let Some(inst) = self.idle.lock().unwrap().pop() {
            return Ok(inst);
        }
        let output = GuestOutput::new(self.log.clone());
        let mut store = HostState::new_store(&self.engine, self.services.clone(), self.limits.memory_limit, output);
        // What one call may copy out of the guest (results, and the arguments of
        // host calls): a list's elements may all point at the same guest bytes,
        // so without this a 64 MiB instance could make the host copy gigabytes.
        // Anything that does not alias itself fits in the instance's memory.
        store.set_hostcall_fuel(self.limits.memory_limit);
        let started = self.arm_store(&mut store, cancel);
        let instantiated = match &self.pre {
            Pre::V0_1(pre) => self
                .bounded(pre.instantiate_async(&mut store), cancel)
                .await
                .map(Bindings::V0_1),
            Pre::V0_2(pre) => self
                .bounded(pre.instantiate_async(&mut store), cancel)
                .await
                .map(Bindings::V0_2),
        };
        match instantiated {
            Ok(bindings) => Ok(Instance { store, bindings }),
            Err(e) => Err(self.describe_failure(&store, e, started, "instantiation")),
        }
    }

    /// Awaits one call into the plugin, cut at the call's `timeout` or when the
    /// run is cancelled, however the guest blocks: in wasm (the epoch callback
    /// traps it), or in a host or WASI function such as a sleep (the call is
    /// dropped here, and the caller drops its instance).
    async fn bounded<T>(
        &self,
        call: impl Future<Output = wasmtime::Result<T>>,
        cancel: &Cancel,
    ) -> wasmtime::Result<T> {
        let timeout = self.limits.timeout;
        let result = tokio::select! {
            result = call => result,
            _ = tokio::time::sleep(timeout) => Err(wasmtime::Error::new(Interrupted::Timeout(timeout))),
            _ = cancel.cancelled() => Err(wasmtime::Error::new(Interrupted::Cancelled)),
        };
        self.log.end_of_call();
        result
    }

    fn arm(&self, inst: &mut Instance, cancel: &Cancel) -> Instant {
        self.arm_store(&mut inst.store, cancel)
    }

    /// Refills fuel and restarts the call clock.
    fn arm_store(&self, store: &mut Store<HostState>, cancel: &Cancel) -> Instant {
        if self.metered {
            store
                .set_fuel(self.limits.fuel_per_call)
                .expect("fuel is enabled on the engine");
            store.set_epoch_deadline(1);
        }
        let started = Instant::now();
        let state = store.data_mut();
        state.guard.started = started;
        state.guard.timeout = self.limits.timeout;
        state.guard.cancel = cancel.clone();
        state.output.clear_tail();
        started
    }

    /// Returns a healthy instance to the pool, or turns a failure into a [`CallError`].
    fn finish<R>(
        &self,
        inst: Instance,
        result: wasmtime::Result<R>,
        started: Instant,
        what: impl Fn() -> String,
    ) -> Result<(R, CallStats), CallError> {
        match result {
            Ok(value) => {
                // Only when metered: asking an unmetered store builds an error (with a backtrace).
                let fuel = if self.metered {
                    self.limits
                        .fuel_per_call
                        .saturating_sub(inst.store.get_fuel().unwrap_or(0))
                } else {
                    0
                };
                let stats = CallStats {
                    fuel,
                    elapsed: started.elapsed(),
                };
                self.idle.lock().unwrap().push(inst);
                Ok((value, stats))
            }
            // A trapped instance may be in any state: drop it, the next call gets a fresh one.
            Err(e) => Err(self.describe_failure(&inst.store, e, started, &what())),
        }
    }

    fn describe_failure(
        &self,
        store: &Store<HostState>,
        e: wasmtime::Error,
        started: Instant,
        what: &str,
    ) -> CallError {
        let name = &self.name;
        if let Some(Interrupted::Cancelled) = e.downcast_ref::<Interrupted>() {
            return CallError::Cancelled(format!("plugin `{name}`: {what} interrupted: the run was stopped"));
        }
        let reason = if let Some(i) = e.downcast_ref::<Interrupted>() {
            format!("{i}; raise `timeout` for this plugin or do less work per call")
        } else if let Some(m) = e.downcast_ref::<MemoryCapExceeded>() {
            format!("{m}; raise `memory_limit` for this plugin or use less memory per call")
        } else if format!("{e:#}").contains("too much data is being copied") {
            let limit = crate::config::ByteSize(self.limits.memory_limit as u64);
            format!(
                "tried to hand the host more than {limit} in one call (limit: memory_limit = {limit}, which also caps what one call copies out of the guest); return smaller pages or batches, and values that do not overlap"
            )
        } else if let Some(m) = count_cap_message(&format!("{e:#}")) {
            m
        } else if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
            format!(
                "ran out of fuel after {:?}: used all {} units (limit: fuel_per_call = {}); raise `fuel_per_call` or do less work per call",
                started.elapsed(),
                self.limits.fuel_per_call,
                self.limits.fuel_per_call
            )
        } else {
            let tail = store.data().output.tail();
            let mut msg = match (rust_panic(&tail), e.downcast_ref::<Trap>()) {
                (Some(panic), _) => format!("panicked: {panic}"),
                (None, Some(trap)) => format!("trapped: {trap}"),
                (None, None) => format!("failed: {e:#}"),
            };
            if !tail.is_empty() {
                msg.push_str(&format!("\nguest stderr:\n{tail}"));
            }
            if let Some(bt) = e.downcast_ref::<WasmBacktrace>() {
                // Display starts with its own header line; keep just the frames.
                let frames = bt.to_string();
                let frames = frames.split_once('\n').map_or(frames.as_str(), |(_, rest)| rest);
                msg.push_str(&format!("\nwasm backtrace:\n{frames}"));
            }
            msg
        };
        CallError::Failed(format!("plugin `{name}`: {what} {reason}"))
    }
}

/// Runs `work` on a new thread named after the plugin and waits at most
/// `within` for it; `None` when the time ran out (the thread is left to
/// finish on its own, detached: the process may exit while it still runs).
pub(crate) async fn off_thread<T: Send + 'static>(
    plugin: &str,
    within: Duration,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Option<Result<T>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(format!("preheat-load-{plugin}"))
        .spawn(move || {
            let _ = tx.send(work());
        });
    if let Err(e) = spawned {
        return Some(Err(anyhow::anyhow!(
            "plugin `{plugin}`: cannot start a loading thread: {e}"
        )));
    }
    match tokio::time::timeout(within, rx).await {
        Ok(Ok(result)) => Some(result),
        Ok(Err(_)) => Some(Err(anyhow::anyhow!(
            "plugin `{plugin}`: loading crashed (the compiler panicked); this is a bug, please report it with the component"
        ))),
        Err(_) => None,
    }
}

/// The message and location of a Rust panic in guest stderr:
/// `thread '…' panicked at src/lib.rs:19:9:\nthe message` → `the message (at src/lib.rs:19:9)`.
fn rust_panic(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|l| !l.contains(" panicked at "));
    let location = lines
        .next()?
        .split(" panicked at ")
        .nth(1)?
        .trim_end_matches(':')
        .to_string();
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: run with")).collect();
    Some(format!("{} (at {location})", message.join(" ")))
}

/// "produce (batch of N keys: first, …)" for messages.
fn describe_batch(keys: &[KeySpec]) -> String {
    match keys {
        [] => "produce (empty batch)".to_string(),
        [one] => format!("produce (key {:?})", one.key),
        [first, ..] => format!("produce (batch of {} keys starting at {:?})", keys.len(), first.key),
    }
}

/// Refuses files that are not components before handing them to the compiler.
fn check_component_header(wasm: &[u8]) -> Result<()> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        bail!("not a WebAssembly file (no \\0asm header); point `path` at the .wasm built for wasm32-wasip2");
    }
    if wasm[4..8] == [1, 0, 0, 0] {
        bail!("is a core WebAssembly module, not a component: build it with `--target wasm32-wasip2` (wasm32-wasip1 and wasm32-unknown-unknown produce modules)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_found_in_guest_stderr() {
        let stderr = "thread '<unnamed>' (1) panicked at src/lib.rs:19:9:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(rust_panic(stderr).unwrap(), "boom (at src/lib.rs:19:9)");
        assert_eq!(rust_panic("just a log line"), None);
    }

    #[test]
    fn non_components_are_refused_with_the_fix() {
        let err = check_component_header(b"hello world").unwrap_err().to_string();
        assert!(err.contains("not a WebAssembly file"), "{err}");
        let err = check_component_header(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(err.contains("wasm32-wasip2"), "{err}");
        assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
