//! What the executor calls to list keys and build values: a [`Producer`].
//!
//! In a run every producer is a [`LoadedPlugin`] (a sandboxed WebAssembly
//! component). The trait exists so the same executor can drive a native Rust
//! producer, which is how the benchmarks (`host/benches`) separate the cost
//! of WebAssembly from the cost of the rest of the pipeline. It is not a
//! plugin API: plugins are components.

use crate::runtime::{CallError, CallStats, Entry, KeySpec, LoadedPlugin, Page, RunContext, WarmError};
use crate::support::Cancel;
use futures_util::future::BoxFuture;

/// What one call returns: the plugin's answer and its cost, or why there is none.
pub type CallResult<T> = Result<(T, CallStats), CallError>;

/// The two calls of the plugin interface, as the executor makes them.
///
/// The contract is [`LoadedPlugin`]'s: `enumerate` pages with a cursor (a
/// plugin's own error is `Ok(Err(..))`); `produce` returns exactly one result
/// per key, in order; a failed call is a [`CallError`].
pub trait Producer: Send + Sync {
    /// The plugin's name.
    fn name(&self) -> &str;

    /// Lists one page of keys, starting at `cursor`.
    fn enumerate<'a>(
        &'a self,
        ctx: &'a RunContext,
        cursor: Option<&'a str>,
        cancel: &'a Cancel,
    ) -> BoxFuture<'a, CallResult<Result<Page, String>>>;

    /// Builds the values of a batch of keys.
    fn produce<'a>(
        &'a self,
        ctx: &'a RunContext,
        keys: &'a [KeySpec],
        cancel: &'a Cancel,
    ) -> BoxFuture<'a, CallResult<Vec<Result<Entry, WarmError>>>>;
}

impl Producer for LoadedPlugin {
    fn name(&self) -> &str {
        LoadedPlugin::name(self)
    }

    fn enumerate<'a>(
        &'a self,
        ctx: &'a RunContext,
        cursor: Option<&'a str>,
        cancel: &'a Cancel,
    ) -> BoxFuture<'a, CallResult<Result<Page, String>>> {
        Box::pin(LoadedPlugin::enumerate(self, ctx, cursor, cancel))
    }

    fn produce<'a>(
        &'a self,
        ctx: &'a RunContext,
        keys: &'a [KeySpec],
        cancel: &'a Cancel,
    ) -> BoxFuture<'a, CallResult<Vec<Result<Entry, WarmError>>>> {
        Box::pin(LoadedPlugin::produce(self, ctx, keys, cancel))
    }
}
