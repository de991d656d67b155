//! The runs of `serve`: starting them (API, schedules, hot reload), one run per
//! plugin at a time, live status for the API and the SSE stream, graceful stop,
//! and what is remembered when they end (last report, metrics, events).

use super::metrics::Metrics;
use super::{Event, Shared};
use crate::exec::{Progress, RunOptions, Warmer};
use crate::plan::KeyFilter;
use crate::report::{Counters, KeyError, Report, RunStatus};
use crate::runtime::KeySpec;
use crate::support::Cancel;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::ToSchema;

/// Finished runs remembered for `finished_run` and `last_run`.
const RECENT_RUNS: usize = 32;

/// What to run.
#[derive(Default)]
pub struct RunRequest {
    /// Plugins to run (all enabled ones when empty).
    pub plugins: Vec<String>,
    /// Strategy name recorded and passed to plugins.
    pub strategy: String,
    /// Keep only these keys of what the plugins enumerate.
    pub filter: KeyFilter,
    /// Warm exactly these (plugin, key) instead of enumerating.
    pub keys: Option<Vec<(String, KeySpec)>>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A plugin name the config does not know (or has disabled).
    #[error("unknown plugin {0:?}: enabled plugins are {1}")]
    UnknownPlugin(String, String),
    /// A plugin of the request is already running.
    #[error("plugin {plugin:?} is already running in run {run_id}; wait for it or POST /cache/warming/stop")]
    Busy {
        /// The busy plugin.
        plugin: String,
        /// The run it is part of.
        run_id: String,
    },
    /// Nothing to run.
    #[error("no enabled plugins to run; enable one in the config")]
    NothingToRun,
    /// The service is shutting down.
    #[error("preheat is shutting down; no new runs")]
    ShuttingDown,
}

/// A run in progress.
struct ActiveRun {
    run_id: String,
    strategy: String,
    plugins: Vec<String>,
    started_at: String,
    progress: Arc<Progress>,
    stop: Cancel,
}

/// Every run of the service: the active ones and the last finished one.
pub struct Runs {
    active: Mutex<Vec<Arc<ActiveRun>>>,
    /// The task of each active run, removed when the run is finished.
    tasks: Mutex<HashMap<String, RunTask>>,
    /// The latest finished runs, oldest first.
    recent: Mutex<std::collections::VecDeque<FinishedRun>>,
    closed: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
    since_start: Mutex<Accumulated>,
}

/// An active run's task, and what turns `true` when the run is finished (its
/// outcome recorded and published), before the history is pruned.
struct RunTask {
    handle: JoinHandle<()>,
    finished: watch::Receiver<bool>,
}

/// Sums over every run finished since the service started.
#[derive(Default)]
struct Accumulated {
    runs: u64,
    totals: crate::report::Counters,
    run_ms: u64,
    produce_us: u64,
    produce_calls: u64,
}

impl Runs {
    /// No runs yet.
    pub fn new(metrics: Arc<Metrics>) -> Runs {
        Runs {
            active: Mutex::default(),
            tasks: Mutex::default(),
            recent: Mutex::default(),
            closed: Default::default(),
            metrics,
            since_start: Mutex::default(),
        }
    }

    /// Whether serve is shutting down (no run starts any more).
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Starts a run in the background and returns its id and plugins; refuses
    /// when one of its plugins is running already.
    pub fn start(&self, shared: &Arc<Shared>, request: RunRequest) -> Result<(String, Vec<String>), StartError> {
        if self.is_closed() {
            return Err(StartError::ShuttingDown);
        }
        let warmer = shared.warmer();
        let enabled: Vec<String> = warmer.config().enabled_plugins().map(|p| p.name.clone()).collect();
        let mut plugins = request.plugins.clone();
        if let Some(keys) = &request.keys {
            plugins = keys.iter().map(|(p, _)| p.clone()).collect();
            plugins.sort();
            plugins.dedup();
        }
        if plugins.is_empty() {
            plugins = enabled.clone();
        }
        if let Some(unknown) = plugins.iter().find(|p| !enabled.contains(p)) {
            return Err(StartError::UnknownPlugin(unknown.clone(), enabled.join(", ")));
        }
        if plugins.is_empty() {
            return Err(StartError::NothingToRun);
        }
        let mut active = self.active.lock().unwrap();
        for run in active.iter() {
            if let Some(plugin) = plugins.iter().find(|p| run.plugins.contains(p)) {
                return Err(StartError::Busy {
                    plugin: plugin.clone(),
                    run_id: run.run_id.clone(),
                });
            }
        }
        let run_id = crate::exec::new_run_id();
        let options = RunOptions {
            strategy: request.strategy.clone(),
            run_id: Some(run_id.clone()),
            only: Some(plugins.clone()),
            filter: request.filter,
            keys: request.keys,
            observer: Some(self.metrics.clone()),
            ..RunOptions::default()
        };
        let run = Arc::new(ActiveRun {
            run_id: run_id.clone(),
            strategy: request.strategy,
            plugins: plugins.clone(),
            started_at: super::rfc3339(SystemTime::now()),
            progress: options.progress.clone(),
            stop: options.stop.clone(),
        });
        active.push(run);
        drop(active);
        self.metrics.run_started();
        tracing::info!(run_id = %run_id, plugins = ?plugins, "run started");
        let (done, finished) = watch::channel(false);
        // Held while spawning: the run cannot be finished (and removed) before it is in.
        let mut tasks = self.tasks.lock().unwrap();
        let handle = tokio::spawn(run_to_end(shared.clone(), warmer, options, done));
        tasks.insert(run_id.clone(), RunTask { handle, finished });
        drop(tasks);
        Ok((run_id, plugins))
    }

    /// Asks a run (or every run) to stop gracefully; returns the ids asked.
    pub fn stop(&self, run_id: Option<&str>) -> Vec<String> {
        let active = self.active.lock().unwrap();
        active
            .iter()
            .filter(|r| run_id.is_none_or(|id| id == r.run_id))
            .map(|r| {
                r.stop.cancel();
                r.run_id.clone()
            })
            .collect()
    }

    /// Waits until a run is finished: its outcome recorded and published
    /// (no-op when it is not running).
    pub async fn wait(&self, run_id: &str) {
        let finished = self.tasks.lock().unwrap().get(run_id).map(|t| t.finished.clone());
        if let Some(mut finished) = finished {
            // An error: the run's task ended without finishing (it panicked).
            let _ = finished.wait_for(|done| *done).await;
        }
    }

    /// Stops accepting runs, stops every run and waits until they are recorded.
    pub async fn shut_down(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let stopped = self.stop(None);
        if !stopped.is_empty() {
            tracing::warn!(runs = ?stopped, "shutting down: stopping runs in progress (batches in flight finish)");
        }
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().unwrap().drain().map(|(_, t)| t.handle).collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Whether a run is in progress.
    pub fn any_active(&self) -> bool {
        !self.active.lock().unwrap().is_empty()
    }

    /// Live views of the active runs, oldest first.
    pub fn active_views(&self, batch_size: usize) -> Vec<RunView> {
        let active = self.active.lock().unwrap().clone();
        active.iter().map(|r| r.view(batch_size)).collect()
    }

    /// The status document of `GET /cache/warming/status`.
    pub fn status(&self, batch_size: usize) -> StatusView {
        let runs = self.active_views(batch_size);
        let stopping = self.active.lock().unwrap().iter().any(|r| r.stop.is_cancelled());
        StatusView {
            status: match (runs.is_empty(), stopping) {
                (true, _) => Activity::Idle,
                (false, true) => Activity::Stopping,
                (false, false) => Activity::Running,
            },
            current: runs.last().map(|r| r.run.clone()),
            runs,
            last_run: self.recent.lock().unwrap().back().cloned(),
        }
    }

    /// Records a finished run (before it leaves the active list, so waiters find it).
    fn finished(&self, run_id: &str, report: &Report) -> FinishedRun {
        let summary = FinishedRun::of(report);
        {
            let mut recent = self.recent.lock().unwrap();
            if recent.len() == RECENT_RUNS {
                recent.pop_front();
            }
            recent.push_back(summary.clone());
        }
        self.metrics.run_finished(report);
        {
            let mut acc = self.since_start.lock().unwrap();
            acc.runs += 1;
            acc.totals.add(&report.totals);
            acc.run_ms += report.duration_ms;
            acc.produce_us += report.plugins.iter().map(|p| p.produce_total_us).sum::<u64>();
            acc.produce_calls += report.plugins.iter().map(|p| p.produce_calls).sum::<u64>();
        }
        self.active.lock().unwrap().retain(|r| r.run_id != run_id);
        self.tasks.lock().unwrap().remove(run_id);
        summary
    }

    /// The `timing` section of `GET /cache/warming/stats`.
    pub fn timing(&self) -> Timing {
        let acc = self.since_start.lock().unwrap();
        let last = self.recent.lock().unwrap().back().cloned();
        let finished = acc.totals.finished();
        Timing {
            runs_finished: acc.runs,
            run_seconds_total: acc.run_ms as f64 / 1000.0,
            keys_per_second: (acc.run_ms > 0).then(|| finished as f64 * 1000.0 / acc.run_ms as f64),
            produce_calls: acc.produce_calls,
            average_produce_call_ms: (acc.produce_calls > 0)
                .then(|| acc.produce_us as f64 / 1000.0 / acc.produce_calls as f64),
            last_run_duration_ms: last.as_ref().map(|r| r.duration_ms),
            last_run_plugins: last.map(|r| {
                r.plugins
                    .into_iter()
                    .map(|p| PluginTiming {
                        name: p.name,
                        produce_p50_us: p.produce_p50_us,
                        produce_p99_us: p.produce_p99_us,
                    })
                    .collect()
            }),
        }
    }

    /// The `cost_benefit` section of `GET /cache/warming/stats`, with what usage
    /// events measured (null without them).
    pub fn cost_benefit(&self, measured: crate::usage::MeasuredBenefit) -> CostBenefit {
        let acc = self.since_start.lock().unwrap();
        CostBenefit {
            keys_warmed: acc.totals.written,
            keys_already_fresh: acc.totals.skipped_fresh,
            keys_failed: acc.totals.failed + acc.totals.invalid,
            bytes_written: acc.totals.bytes_written,
            producer_seconds: acc.produce_us as f64 / 1e6,
            fuel_consumed: acc.totals.fuel_consumed,
            measured,
        }
    }

    /// A recently finished run, by id.
    pub fn finished_run(&self, run_id: &str) -> Option<FinishedRun> {
        let recent = self.recent.lock().unwrap();
        recent.iter().rev().find(|r| r.run_id == run_id).cloned()
    }
}

/// Runs to the end, then records the outcome and tells the event stream.
async fn run_to_end(shared: Arc<Shared>, warmer: Arc<Warmer>, options: RunOptions, done: watch::Sender<bool>) {
    let run_id = options.run_id.clone().unwrap_or_default();
    let (report, prune) = crate::jobs::run_recorded(&warmer, &shared.history, options).await;
    tracing::info!(
        run_id = %run_id,
        status = ?report.status,
        written = report.totals.written,
        enumerated = report.totals.enumerated,
        duration_ms = report.duration_ms,
        "run finished"
    );
    if let Some(usage) = &shared.usage {
        usage.run_finished(&report);
    }
    let summary = shared.runs.finished(&run_id, &report);
    shared.publish(Event::RunFinished(summary));
    done.send_replace(true);
    // After the answer (a warm-key request waits for `done`), not before it.
    prune.run().await;
}

impl ActiveRun {
    /// The live document of one run (shape of `GET /cache/warming/status`).
    fn view(&self, batch_size: usize) -> RunView {
        let live = self.progress.live();
        let c = live.counters;
        let (mut success, mut failed) = (0, 0);
        let mut per_plugin = BTreeMap::new();
        for (name, counters) in live.plugins {
            success += counters.written + counters.skipped_fresh + counters.skipped_by_plugin;
            failed += counters.failed + counters.invalid;
            per_plugin.insert(name, counters);
        }
        let percentage = match c.enumerated {
            0 if c.enumeration_done => 100.0,
            0 => 0.0,
            // Floor, so a run still going never shows 100%.
            total => (c.finished as f64 * 1000.0 / total as f64).floor() / 10.0,
        };
        let secs = live.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { c.finished as f64 / secs } else { 0.0 };
        let eta = (c.enumeration_done && rate > 0.0).then(|| {
            let left = c.enumerated.saturating_sub(c.finished) as f64 / rate;
            super::rfc3339(SystemTime::now() + Duration::from_secs_f64(left))
        });
        let average = (c.finished > 0).then(|| format_ms(live.elapsed.as_secs_f64() * 1000.0 / c.finished as f64));
        RunView {
            status: match self.stop.is_cancelled() {
                true => RunState::Stopping,
                false => RunState::Running,
            },
            run: RunDetails {
                run_id: self.run_id.clone(),
                strategy: self.strategy.clone(),
                plugins: self.plugins.clone(),
                started_at: self.started_at.clone(),
                progress: ProgressCounts {
                    total_items: c.enumerated,
                    total_known: c.enumeration_done,
                    completed: c.finished,
                    success,
                    failed,
                    percentage,
                },
                current_batch: live.batch.map(|b| BatchView {
                    batch_size: b.size,
                    processed: b.processed,
                    remaining: b.size - b.processed,
                    configured_batch_size: batch_size,
                }),
                performance: Performance {
                    items_per_second: (rate * 10.0).round() / 10.0,
                    average_time_per_item: average,
                    estimated_completion: eta,
                },
                errors: live
                    .recent_errors
                    .into_iter()
                    .map(|e| LiveError {
                        retry_count: e.attempts.saturating_sub(1),
                        plugin: e.plugin,
                        key: e.key,
                        error: e.error,
                    })
                    .collect(),
                per_plugin,
            },
        }
    }
}

/// `12.3ms`, `1.20s`.
fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// Whether the service is doing anything (`GET status`'s `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    /// No run in progress.
    Idle,
    /// Runs in progress, none asked to stop.
    Running,
    /// A run was asked to stop and is finishing its batches.
    Stopping,
}

/// The state of one active run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Warming.
    Running,
    /// Asked to stop: batches in flight finish, the rest is abandoned.
    Stopping,
}

/// A run's keys so far.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgressCounts {
    /// Keys enumerated so far (all of them once `total_known`).
    pub total_items: u64,
    /// Whether enumeration is over, so `total_items` is final.
    pub total_known: bool,
    /// Keys with a final outcome.
    pub completed: u64,
    /// Written, fresh, or skipped by the plugin.
    pub success: u64,
    /// Failed or invalid.
    pub failed: u64,
    /// `completed / total_items` in percent, floored to 0.1.
    pub percentage: f64,
}

/// The latest batch handed to a plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchView {
    /// Keys in the batch.
    pub batch_size: u64,
    /// Of which processed.
    pub processed: u64,
    /// Of which left.
    pub remaining: u64,
    /// `[run] batch_size`.
    pub configured_batch_size: usize,
}

/// A run's speed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Performance {
    /// Keys finished per second since the run started.
    pub items_per_second: f64,
    /// Mean wall time per finished key (`"12.3ms"`); null before the first.
    pub average_time_per_item: Option<String>,
    /// When the run should end at this rate (RFC 3339); null until enumeration is over.
    pub estimated_completion: Option<String>,
}

/// A recent key error of a run in progress.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveError {
    /// The plugin that owns the key.
    pub plugin: String,
    /// The key.
    pub key: String,
    /// What went wrong.
    pub error: String,
    /// Attempts beyond the first.
    pub retry_count: u32,
}

/// What a run in progress is and how far it got.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunDetails {
    /// The run's id.
    pub run_id: String,
    /// Strategy name.
    pub strategy: String,
    /// Its plugins.
    pub plugins: Vec<String>,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Keys so far.
    pub progress: ProgressCounts,
    /// The latest batch; null before the first.
    pub current_batch: Option<BatchView>,
    /// Speed and expected end.
    pub performance: Performance,
    /// The latest key errors, oldest first.
    pub errors: Vec<LiveError>,
    /// Outcome counters per plugin.
    pub per_plugin: BTreeMap<String, Counters>,
}

/// One active run (an entry of `status.runs`, the `progress` SSE event).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    /// running or stopping.
    pub status: RunState,
    /// The rest of the run.
    #[serde(flatten)]
    pub run: RunDetails,
}

/// `GET /cache/warming/status`: the newest active run's fields at the top
/// (absent when idle), every active run, and the last finished run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatusView {
    /// idle, running, or stopping (some run was asked to stop).
    pub status: Activity,
    /// The newest active run's fields (none when idle).
    #[serde(flatten)]
    #[schema(schema_with = optional_run_details)]
    pub current: Option<RunDetails>,
    /// Every active run, oldest first.
    pub runs: Vec<RunView>,
    /// The latest finished run; null before the first.
    pub last_run: Option<FinishedRun>,
}

/// [`RunDetails`] with none of its fields required: `status` has them only while a run is active.
fn optional_run_details() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::Schema;
    let mut schema = <RunDetails as utoipa::PartialSchema>::schema();
    if let utoipa::openapi::RefOr::T(Schema::Object(object)) = &mut schema {
        object.required.clear();
    }
    schema
}

/// One plugin's part of a finished run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinishedPlugin {
    /// Plugin name.
    pub name: String,
    /// Outcome counters.
    pub counters: Counters,
    /// Set when the plugin failed as a whole.
    pub error: Option<String>,
    /// `produce` calls that returned.
    pub produce_calls: u64,
    /// Median `produce` call time, µs.
    pub produce_p50_us: Option<u64>,
    /// 99th percentile `produce` call time, µs.
    pub produce_p99_us: Option<u64>,
}

/// A finished run: the report without per-key traces (`last_run`, the
/// `run_finished` event, `warm-key`'s and `stop`'s answers).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FinishedRun {
    /// The run's id.
    pub run_id: String,
    /// Strategy name.
    pub strategy: String,
    /// How it ended.
    pub status: RunStatus,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// Wall-clock duration.
    pub duration_ms: u64,
    /// Whether the deadline stopped it.
    pub deadline_hit: bool,
    /// Whether it was stopped on request.
    pub stopped: bool,
    /// Why it failed as a whole, or was skipped.
    pub error: Option<String>,
    /// Set when the job history could not be written.
    pub history_error: Option<String>,
    /// Sum over plugins.
    pub totals: Counters,
    /// Per plugin.
    pub plugins: Vec<FinishedPlugin>,
    /// Keys that went wrong (capped).
    pub errors: Vec<KeyError>,
}

impl FinishedRun {
    /// A finished run's document, from its report.
    pub fn of(report: &Report) -> FinishedRun {
        FinishedRun {
            run_id: report.run_id.clone(),
            strategy: report.strategy.clone(),
            status: report.status,
            started_at: report.started_at.clone(),
            duration_ms: report.duration_ms,
            deadline_hit: report.deadline_hit,
            stopped: report.stopped,
            error: report.error.clone(),
            history_error: report.history_error.clone(),
            totals: report.totals.clone(),
            plugins: report
                .plugins
                .iter()
                .map(|p| FinishedPlugin {
                    name: p.name.clone(),
                    counters: p.counters.clone(),
                    error: p.error.clone(),
                    produce_calls: p.produce_calls,
                    produce_p50_us: p.produce_p50_us,
                    produce_p99_us: p.produce_p99_us,
                })
                .collect(),
            errors: report.errors.clone(),
        }
    }
}

/// The `timing` section of `GET /cache/warming/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timing {
    /// Runs finished since the service started.
    pub runs_finished: u64,
    /// Their wall time, summed.
    pub run_seconds_total: f64,
    /// Keys finished per second of run time; null before the first run.
    pub keys_per_second: Option<f64>,
    /// `produce` calls that returned.
    pub produce_calls: u64,
    /// Their mean wall time; null before the first.
    pub average_produce_call_ms: Option<f64>,
    /// The last run's duration; null before the first.
    pub last_run_duration_ms: Option<u64>,
    /// The last run's call times per plugin; null before the first.
    pub last_run_plugins: Option<Vec<PluginTiming>>,
}

/// One plugin's `produce` call times in the last run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginTiming {
    /// Plugin name.
    pub name: String,
    /// Median call time, µs.
    pub produce_p50_us: Option<u64>,
    /// 99th percentile call time, µs.
    pub produce_p99_us: Option<u64>,
}

/// The `cost_benefit` section of `GET /cache/warming/stats`: what runs cost
/// and, from usage events, what they saved (null until measured).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostBenefit {
    /// Keys written since the service started.
    pub keys_warmed: u64,
    /// Keys left alone because they were fresh.
    pub keys_already_fresh: u64,
    /// Keys failed or invalid.
    pub keys_failed: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Wall time spent in `produce`.
    pub producer_seconds: f64,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// What the usage events measured around runs.
    #[serde(flatten)]
    pub measured: crate::usage::MeasuredBenefit,
}
