//! What a plugin instance may do: the store state, its limits, and the call guard
//! that enforces per-call timeouts and run cancellation through epoch callbacks.

use super::guest_output::GuestOutput;
use crate::backend::Backend;
use crate::config::ByteSize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A run-wide stop signal: once set, calls in flight are interrupted at the
/// next epoch tick, and tasks awaiting [`Cancel::cancelled`] wake up.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<(AtomicBool, tokio::sync::Notify)>);

impl Cancel {
    /// Signals every call and task watching this flag to stop.
    pub fn cancel(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0 .0.load(Ordering::SeqCst)
    }

    /// Completes once [`Cancel::cancel`] has been called.
    pub async fn cancelled(&self) {
        let notified = self.0 .1.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_cancelled() {
            notified.await;
        }
    }
}

/// Host capabilities a plugin's imports reach: its name, the backend it reads with
/// `cache-get`, the key prefixes and the SQL sources it is granted.
pub struct HostServices {
    /// The plugin's name, tagging its log lines.
    pub plugin: Arc<str>,
    /// The target backend, for `cache-get`.
    pub backend: Backend,
    /// The plugin's value format: `cache-get` reads the stored key and decodes to JSON.
    pub format: crate::format::Format,
    /// Keys the plugin may read and write start with one of these.
    pub key_prefixes: Vec<String>,
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

/// A denied memory growth (returned as the trap's error).
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit exceeded: the guest asked to grow linear memory to {requested} bytes ({}), over memory_limit = {limit} bytes ({})",
    ByteSize(*requested as u64),
    ByteSize(*limit as u64)
)]
pub(crate) struct MemoryCapExceeded {
    pub requested: usize,
    pub limit: usize,
}

/// Caps linear memory and tables of one instance, trapping with a clear message.
pub(crate) struct MemoryCap {
    pub limit: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryCapExceeded {
                requested: desired,
                limit: self.limit,
            }));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
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
    pub(crate) limiter: MemoryCap,
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
            limiter: MemoryCap { limit: memory_limit },
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
