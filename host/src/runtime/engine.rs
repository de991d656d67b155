//! The wasmtime engine, its epoch ticker and the linker shared by all plugins.

use super::compile_cache::CompileCache;
use super::sandbox::HostState;
use crate::wit::{v0_1, v0_2};
use anyhow::Result;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

/// How often the epoch advances; the resolution of per-call timeouts and cancellation.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine, linker and compile cache; one per process, shared by every plugin.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) cache: CompileCache,
    /// Fuel and epoch interruption are on (always, except to benchmark what they cost).
    pub(crate) metered: bool,
}

impl Runtime {
    /// Builds an engine with fuel and epoch interruption on, and starts its epoch ticker.
    pub fn new(cache_dir: PathBuf) -> Result<Runtime> {
        Runtime::build(cache_dir, true)
    }

    /// An engine **without** fuel metering and epoch interruption: calls have no
    /// fuel limit, and a call spinning in wasm is not stopped (only one blocked
    /// in a host or WASI call is). Only for the benchmark that measures what
    /// those limits cost (`host/benches`); never used to run plugins.
    #[doc(hidden)]
    pub fn new_unmetered(cache_dir: PathBuf) -> Result<Runtime> {
        Runtime::build(cache_dir, false)
    }

    fn build(cache_dir: PathBuf, metered: bool) -> Result<Runtime> {
        let mut config = Config::new();
        config.consume_fuel(metered).epoch_interruption(metered);
        // File and line in trap backtraces when a plugin was built with debug info.
        config.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        // Both interface versions' host functions: a 0.1 and a 0.2 plugin link against the same linker.
        v0_2::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(anyhow::Error::from)?;
        v0_1::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state).map_err(anyhow::Error::from)?;
        if metered {
            spawn_epoch_ticker(&engine);
        }
        let cache = CompileCache::new(cache_dir, &engine);
        Ok(Runtime {
            engine,
            linker,
            cache,
            metered,
        })
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("preheat-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .expect("spawning the epoch ticker thread");
}
