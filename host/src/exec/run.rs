//! One run, start to end: the plugins' slots (loaded, or the reason they are
//! not), the shared state, the deadline watchdog and the stop listener, the
//! enumerator and worker tasks, then the report.

use super::budget::{budget_bytes, ByteBudget};
use super::enumerate::{enumerate_plugin, feed_keys};
use super::shared::{Shared, Slot};
use super::tally::{KeyDetail, KeyOutcome, Tally};
use super::work::worker;
use super::{new_run_id, Producer, RunOptions, Warmer};
use crate::backend::Backend;
use crate::config::{PluginConfig, Sharding};
use crate::format::{Format, Store};
use crate::plan::WorkQueue;
use crate::report::{Counters, Report};
use crate::runtime::{Interface, KeySpec, LoadedPlugin, Shard};
use crate::support::Cancel;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

impl Warmer {
    /// Runs every enabled plugin included by `options` (not recorded: see
    /// [`crate::jobs::run_recorded`]); a backend that cannot be reached fails the run.
    pub async fn execute(&self, options: RunOptions) -> Report {
        let started = options.clock_started.unwrap_or_else(Instant::now);
        match self.backend().await {
            Ok(backend) => self.run_on(backend, options).await,
            Err(e) => self.backend_unavailable(&e, &options, started.elapsed()),
        }
    }

    /// [`Warmer::execute`] on the warmer's backend, already connected.
    pub(crate) async fn run_on(&self, backend: Backend, mut options: RunOptions) -> Report {
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
        // Connected only when a plugin has to be loaded.
        let sources = tokio::sync::OnceCell::new();
        let mut slots = Vec::with_capacity(configs.len());
        for (i, config) in configs.into_iter().enumerate() {
            let native = self.native.lock().unwrap().get(&config.name).cloned();
            let loaded = match native {
                Some(producer) => Ok(producer),
                None => self
                    .plugin_until(&config, &backend, &sources, deadline_at)
                    .await
                    .and_then(|p| {
                        sees_its_shard(&config, &p, options.shard.is_some()).map(|()| p as Arc<dyn Producer>)
                    }),
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
            let shard = options.shard.as_ref().map(|s| Shard {
                index: s.index,
                count: s.count,
            });
            slots.push(Slot::new(config, plugin, format, &run_id, &options.strategy, shard));
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
            retry_room: Arc::new(tokio::sync::Semaphore::new(capacity)),
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
        // No more workers than given keys (a warm-key run has one).
        let workers = match &given {
            Some(per_slot) => per_slot
                .iter()
                .map(Vec::len)
                .sum::<usize>()
                .clamp(1, run.concurrency.get()),
            None => run.concurrency.get(),
        };
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
        let workers: Vec<_> = (0..workers).map(|_| tokio::spawn(worker(shared.clone()))).collect();
        enumeration.await;
        for w in workers {
            if let Err(e) = w.await {
                tracing::error!("worker task failed: {e}");
            }
        }
        // A helper whose token fired finishes recording what it drained from
        // the queue (the workers may have seen the closed queue first); one
        // whose token did not has nothing to do.
        for (helper, fired) in [
            (stopper, shared.stop.is_cancelled()),
            (watchdog, shared.cancel.is_cancelled()),
        ] {
            if fired {
                let _ = helper.await;
            } else {
                helper.abort();
            }
        }
        // Keys waiting out a retry's backoff hold a permit until they are
        // requeued or their outcome is recorded (a halt ends the wait).
        let all = u32::try_from(capacity).expect("[run] bounds keep the queue capacity within u32");
        drop(shared.retry_room.acquire_many(all).await);

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
            shard: options.shard,
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

/// A sharded run of a plugin that keeps to its share itself
/// (`sharding = "plugin"`) needs one that sees the shard: built for 0.2.
fn sees_its_shard(config: &PluginConfig, plugin: &LoadedPlugin, sharded: bool) -> anyhow::Result<()> {
    if sharded && config.sharding == Sharding::Plugin && plugin.interface() == Interface::V0_1 {
        anyhow::bail!(
            "plugin `{}` not run: it has `sharding = \"plugin\"`, but it is built for interface {}, whose run context has no shard, so it would list every key in every shard; rebuild it against preheat-guest (interface {}) or set `sharding = \"host\"`",
            config.name,
            crate::runtime::LEGACY_INTERFACE_VERSION,
            crate::runtime::INTERFACE_VERSION
        );
    }
    Ok(())
}
