//! What a plugin instance may do: the store state, its limits, and the call guard
//! that enforces per-call timeouts and run cancellation through epoch callbacks
//! while wasm runs (a call blocked in a host or WASI function is cut by
//! `LoadedPlugin`, which drops it at the same timeout or cancellation).

use super::guest_output::GuestOutput;
use super::limiter::StoreCap;
use crate::backend::Backend;
use crate::support::Cancel;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Host capabilities a plugin's imports reach: its name, the backend it reads with
/// `cache-get` (values up to `max_value_bytes`), the key prefixes and the SQL
/// sources it is granted.
pub struct HostServices {
    /// The plugin's name, tagging its log lines.
    pub plugin: Arc<str>,
    /// The target backend, for `cache-get`.
    pub backend: Backend,
    /// The plugin's value format: `cache-get` reads the stored key and decodes to JSON.
    pub format: crate::format::Format,
    /// Keys the plugin may read and write start with one of these.
    pub key_prefixes: Vec<String>,
    /// Largest value `cache-get` hands the plugin (its `max_value_bytes`).
    pub max_value_bytes: u64,
    /// The SQL sources the plugin may query, by name.
    pub sources: std::collections::BTreeMap<String, Arc<crate::sources::Source>>,
}

impl HostServices {
    /// Whether `key` is under one of the granted prefixes.
    pub fn is_granted(&self, key: &str) -> bool {
        self.key_prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
}

/// Why a call was stopped by the host (returned as the trap's error).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Interrupted {
    #[error("timed out after {0:?} (limit: timeout = {0:?} per call)")]
    Timeout(Duration),
    #[error("interrupted because the run was stopped (deadline reached or stop requested)")]
    Cancelled,
}

/// The deadline of the call in progress.
pub(crate) struct CallGuard {
    pub started: Instant,
    pub timeout: Duration,
    pub cancel: Cancel,
}

/// The data of one plugin instance's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: StoreCap,
    pub(crate) guard: CallGuard,
    pub(crate) services: Arc<HostServices>,
    pub(crate) output: GuestOutput,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    /// A fresh store for one instance: WASI with nothing inherited, limits armed.
    pub(crate) fn new_store(
        engine: &wasmtime::Engine,
        services: Arc<HostServices>,
        memory_limit: usize,
        output: GuestOutput,
    ) -> Store<HostState> {
        // No preopened directories, no network, no environment, no args: the
        // builder grants nothing unless asked. Output goes to the host log.
        let wasi = WasiCtx::builder()
            .stdout(output.stream("stdout"))
            .stderr(output.stream("stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: StoreCap::new(memory_limit),
            guard: CallGuard {
                started: Instant::now(),
                timeout: Duration::from_secs(10),
                cancel: Cancel::default(),
            },
            services,
            output,
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let guard = &ctx.data().guard;
            if guard.cancel.is_cancelled() {
                return Err(wasmtime::Error::new(Interrupted::Cancelled));
            }
            if guard.started.elapsed() >= guard.timeout {
                return Err(wasmtime::Error::new(Interrupted::Timeout(guard.timeout)));
            }
            // Let other tasks run on this worker thread, then check again next tick.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }
}
