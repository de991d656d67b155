//! The runs of `serve`: starting them (API, schedules, hot reload), one run per
//! plugin at a time, live status for the API and the SSE stream, graceful stop,
//! and what is remembered when they end (last report, metrics, events).

use super::metrics::Metrics;
use super::{Event, Shared};
use crate::exec::{LiveProgress, Progress, RunOptions, Warmer};
use crate::plan::KeyFilter;
use crate::report::Report;
use crate::runtime::{Cancel, KeySpec};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

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
    tasks: Mutex<HashMap<String, JoinHandle<()>>>,
    /// The latest finished runs, oldest first.
    recent: Mutex<std::collections::VecDeque<Value>>,
    closed: std::sync::atomic::AtomicBool,
    metrics: Arc<Metrics>,
    since_start: Mutex<Accumulated>,
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

    /// Starts a run in the background and returns its id and plugins; refuses
    /// when one of its plugins is running already.
    pub fn start(&self, shared: &Arc<Shared>, request: RunRequest) -> Result<(String, Vec<String>), StartError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
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
        let task = tokio::spawn(run_to_end(shared.clone(), warmer, options));
        self.tasks.lock().unwrap().insert(run_id.clone(), task);
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

    /// Waits for a run to end (no-op when it is not running).
    pub async fn wait(&self, run_id: &str) {
        let task = self.tasks.lock().unwrap().remove(run_id);
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Stops accepting runs, stops every run and waits until they are recorded.
    pub async fn shut_down(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let stopped = self.stop(None);
        if !stopped.is_empty() {
            tracing::warn!(runs = ?stopped, "shutting down: stopping runs in progress (batches in flight finish)");
        }
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().unwrap().drain().map(|(_, t)| t).collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Whether a run is in progress.
    pub fn any_active(&self) -> bool {
        !self.active.lock().unwrap().is_empty()
    }

    /// Live views of the active runs, oldest first.
    pub fn active_views(&self, batch_size: usize) -> Vec<Value> {
        let active = self.active.lock().unwrap().clone();
        active.iter().map(|r| r.view(batch_size)).collect()
    }

    /// The status document of `GET /cache/warming/status`.
    pub fn status(&self, batch_size: usize) -> Value {
        let runs = self.active_views(batch_size);
        let stopping = self.active.lock().unwrap().iter().any(|r| r.stop.is_cancelled());
        let mut doc = match runs.last() {
            Some(current) => current.clone(),
            None => json!({}),
        };
        doc["status"] = json!(match (runs.is_empty(), stopping) {
            (true, _) => "idle",
            (false, true) => "stopping",
            (false, false) => "running",
        });
        doc["runs"] = json!(runs);
        doc["last_run"] = self.recent.lock().unwrap().back().cloned().unwrap_or(Value::Null);
        doc
    }

    /// Records a finished run (before it leaves the active list, so waiters find it).
    fn finished(&self, run_id: &str, report: &Report) -> Value {
        let summary = finished_view(report);
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
    pub fn timing(&self) -> Value {
        let acc = self.since_start.lock().unwrap();
        let last = self.recent.lock().unwrap().back().cloned();
        let finished = acc.totals.finished();
        json!({
            "runs_finished": acc.runs,
            "run_seconds_total": acc.run_ms as f64 / 1000.0,
            "keys_per_second": (acc.run_ms > 0).then(|| finished as f64 * 1000.0 / acc.run_ms as f64),
            "produce_calls": acc.produce_calls,
            "average_produce_call_ms": (acc.produce_calls > 0).then(|| acc.produce_us as f64 / 1000.0 / acc.produce_calls as f64),
            "last_run_duration_ms": last.as_ref().map(|r| r["duration_ms"].clone()),
            "last_run_plugins": last.as_ref().map(|r| r["plugins"].as_array().map(|ps| ps.iter().map(|p| json!({"name": p["name"], "produce_p50_us": p["produce_p50_us"], "produce_p99_us": p["produce_p99_us"]})).collect::<Vec<_>>())),
        })
    }

    /// The `cost_benefit` section of `GET /cache/warming/stats` (misses avoided and
    /// latency saved need usage events; null until then).
    pub fn cost_benefit(&self) -> Value {
        let acc = self.since_start.lock().unwrap();
        json!({
            "keys_warmed": acc.totals.written,
            "keys_already_fresh": acc.totals.skipped_fresh,
            "keys_failed": acc.totals.failed + acc.totals.invalid,
            "bytes_written": acc.totals.bytes_written,
            "producer_seconds": acc.produce_us as f64 / 1e6,
            "fuel_consumed": acc.totals.fuel_consumed,
            "misses_avoided": null,
            "estimated_latency_saved_ms": null,
        })
    }

    /// A recently finished run, by id.
    pub fn finished_run(&self, run_id: &str) -> Option<Value> {
        let recent = self.recent.lock().unwrap();
        recent.iter().rev().find(|r| r["run_id"] == run_id).cloned()
    }
}

/// Runs to the end, then records the outcome and tells the event stream.
async fn run_to_end(shared: Arc<Shared>, warmer: Arc<Warmer>, options: RunOptions) {
    let run_id = options.run_id.clone().unwrap_or_default();
    let report = warmer.run(options).await;
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
}

impl ActiveRun {
    /// The live document of one run (shape of `GET /cache/warming/status`).
    fn view(&self, batch_size: usize) -> Value {
        let live = self.progress.live();
        let c = live.counters;
        let (mut success, mut failed) = (0, 0);
        let mut per_plugin = serde_json::Map::new();
        for (name, counters) in &live.plugins {
            success += counters.written + counters.skipped_fresh + counters.skipped_by_plugin;
            failed += counters.failed + counters.invalid;
            per_plugin.insert(name.clone(), plugin_counters(counters));
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
        json!({
            "run_id": self.run_id,
            "strategy": self.strategy,
            "plugins": self.plugins,
            "started_at": self.started_at,
            "status": if self.stop.is_cancelled() { "stopping" } else { "running" },
            "progress": {
                "total_items": c.enumerated,
                "total_known": c.enumeration_done,
                "completed": c.finished,
                "success": success,
                "failed": failed,
                "percentage": percentage,
            },
            "current_batch": live.batch.map(|b| json!({
                "batch_size": b.size,
                "processed": b.processed,
                "remaining": b.size - b.processed,
                "configured_batch_size": batch_size,
            })),
            "performance": {
                "items_per_second": (rate * 10.0).round() / 10.0,
                "average_time_per_item": average,
                "estimated_completion": eta,
            },
            "errors": errors_view(&live),
            "per_plugin": per_plugin,
        })
    }
}

fn errors_view(live: &LiveProgress) -> Value {
    live.recent_errors
        .iter()
        .map(|e| {
            json!({
                "plugin": e.plugin,
                "key": e.key,
                "error": e.error,
                "retry_count": e.attempts.saturating_sub(1),
            })
        })
        .collect()
}

fn plugin_counters(c: &crate::report::Counters) -> Value {
    json!({
        "enumerated": c.enumerated,
        "written": c.written,
        "skipped_fresh": c.skipped_fresh,
        "skipped_by_plugin": c.skipped_by_plugin,
        "invalid": c.invalid,
        "failed": c.failed,
        "abandoned": c.abandoned,
    })
}

/// `12.3ms`, `1.20s`.
fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.1}ms")
    }
}

/// The document of a finished run (`last_run`, the `run_finished` event, `warm-key`'s answer).
#[derive(Serialize)]
struct FinishedRun<'a> {
    run_id: &'a str,
    strategy: &'a str,
    status: crate::report::RunStatus,
    started_at: &'a str,
    duration_ms: u64,
    deadline_hit: bool,
    stopped: bool,
    error: &'a Option<String>,
    history_error: &'a Option<String>,
    totals: &'a crate::report::Counters,
    plugins: Vec<Value>,
    errors: &'a [crate::report::KeyError],
}

/// A finished run as JSON (the report without per-key traces).
pub fn finished_view(report: &Report) -> Value {
    let doc = FinishedRun {
        run_id: &report.run_id,
        strategy: &report.strategy,
        status: report.status,
        started_at: &report.started_at,
        duration_ms: report.duration_ms,
        deadline_hit: report.deadline_hit,
        stopped: report.stopped,
        error: &report.error,
        history_error: &report.history_error,
        totals: &report.totals,
        plugins: report
            .plugins
            .iter()
            .map(|p| json!({"name": p.name, "counters": p.counters, "error": p.error, "produce_calls": p.produce_calls, "produce_p50_us": p.produce_p50_us, "produce_p99_us": p.produce_p99_us}))
            .collect(),
        errors: &report.errors,
    };
    serde_json::to_value(doc).expect("a report serializes")
}
