//! What the tasks of one run share: each plugin's [`Slot`] and the run's
//! [`Shared`] state, and the bookkeeping every stage calls (a key's outcome,
//! a failed call, whether the run was halted).

use super::budget::ByteBudget;
use super::tally::{KeyDetail, KeyOutcome, Tally};
use super::{Producer, Progress, RunObserver};
use crate::backend::Backend;
use crate::config::{Config, PluginConfig, Sharding};
use crate::format::Format;
use crate::plan::{KeyFilter, KeyRules, WorkQueue};
use crate::runtime::{KeySpec, Priority, RunContext, Shard};
use crate::support::Cancel;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// After this many failed calls in a row, a plugin is disabled for the rest of the run.
const MAX_CONSECUTIVE_FAILED_CALLS: u32 = 3;

/// One plugin's place in a run.
pub(super) struct Slot {
    pub(super) config: PluginConfig,
    /// The plugin's effective value format, resolved for the backend.
    pub(super) format: Format,
    pub(super) plugin: Option<Arc<dyn Producer>>,
    pub(super) rules: KeyRules,
    pub(super) ctx: RunContext,
    /// In a sharded run whose share the host keeps (`sharding = "host"`):
    /// the shard whose keys this plugin's listing is cut to.
    pub(super) share: Option<Shard>,
    pub(super) limiter: Option<DefaultDirectRateLimiter>,
    pub(super) disabled: AtomicBool,
    pub(super) failed_calls_in_a_row: AtomicU32,
}

/// What the tasks of one run share.
pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) slots: Vec<Slot>,
    pub(super) queue: WorkQueue,
    pub(super) tally: Arc<Tally>,
    /// Hard stop (deadline): calls in flight are interrupted.
    pub(super) cancel: Cancel,
    /// Graceful stop (on request): calls in flight finish.
    pub(super) stop: Cancel,
    pub(super) filter: KeyFilter,
    pub(super) observer: Option<Arc<dyn RunObserver>>,
    pub(super) budget: ByteBudget,
    /// Room for keys waiting out a retry's backoff (the queue's capacity).
    pub(super) retry_room: Arc<tokio::sync::Semaphore>,
    pub(super) backend: Backend,
    pub(super) progress: Arc<Progress>,
    pub(super) key_limit: Option<u64>,
}

impl Slot {
    pub(super) fn new(
        config: PluginConfig,
        plugin: Option<Arc<dyn Producer>>,
        format: Format,
        run_id: &str,
        strategy: &str,
        shard: Option<Shard>,
    ) -> Slot {
        // The plugin sees the shard only when it keeps to its share itself.
        let (seen, share) = match config.sharding {
            Sharding::Plugin => (shard, None),
            Sharding::Host => (None, shard),
        };
        let limiter = NonZeroU32::new(config.rate_limit).map(|rate| RateLimiter::direct(Quota::per_second(rate)));
        Slot {
            rules: KeyRules::for_plugin(&config),
            ctx: RunContext {
                run_id: run_id.to_string(),
                strategy: strategy.to_string(),
                settings: config.settings_as_strings(),
                shard: seen,
            },
            share,
            config,
            format,
            plugin,
            limiter,
            disabled: AtomicBool::new(false),
            failed_calls_in_a_row: AtomicU32::new(0),
        }
    }

    /// Keys per batch: the run's batch size, lowered to the rate limit (one second of keys).
    pub(super) fn batch_limit(&self, batch_size: usize) -> usize {
        match self.config.rate_limit {
            0 => batch_size,
            rate => batch_size.min(rate as usize),
        }
    }
}

impl Shared {
    /// Whether the run was stopped (deadline or request): nothing new starts.
    pub(super) fn halted(&self) -> bool {
        self.cancel.is_cancelled() || self.stop.is_cancelled()
    }

    /// Completes once the run is stopped (deadline or request).
    pub(super) async fn halt(&self) {
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            _ = self.stop.cancelled() => {}
        }
    }

    /// Records a key's final outcome in the tally and the progress counters.
    pub(super) fn finish(&self, plugin: usize, spec: &KeySpec, outcome: KeyOutcome, detail: KeyDetail) {
        self.finish_key(plugin, &spec.key, spec.priority, outcome, detail);
    }

    /// [`Shared::finish`] for a key whose spec was taken apart.
    pub(super) fn finish_key(
        &self,
        plugin: usize,
        key: &str,
        priority: Priority,
        outcome: KeyOutcome,
        detail: KeyDetail,
    ) {
        self.tally.key_outcome(plugin, key, priority, outcome, detail);
        self.progress.add_finished(1, u64::from(outcome == KeyOutcome::Written));
    }

    pub(super) fn finish_all(
        &self,
        plugin: usize,
        specs: &[KeySpec],
        attempts: &[u32],
        outcome: KeyOutcome,
        error: &str,
    ) {
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
    pub(super) fn call_failed(&self, plugin: usize, error: &str) {
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
