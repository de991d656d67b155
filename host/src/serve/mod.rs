//! `preheat serve`: the long-lived service. An HTTP API (axum) to start, stop
//! and watch runs, warm single keys or patterns, read and change schedules;
//! Prometheus metrics; a live dashboard fed by Server-Sent Events; cron
//! schedules; graceful shutdown on SIGTERM/SIGINT and config reload on SIGHUP
//! (and, with `--watch`, hot reload of plugins and config).
//!
//! Data flow: requests and schedule fires → `runs::Runs` (one run per plugin at a time)
//! → [`crate::jobs::run_recorded`] → the executor; live [`crate::exec::Progress`] →
//! status/SSE; finished reports → metrics, history, `run_finished` events.

mod api;
mod intel;
mod listen;
mod metrics;
mod openapi;
mod reload;
mod runs;

use crate::config::Config;
use crate::exec::Warmer;
use crate::jobs::History;
use crate::schedule::{Fire, Schedules};
use crate::support::Cancel;
use anyhow::{bail, Context, Result};
use metrics::Metrics;
use runs::{RunRequest, Runs, StartError};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::broadcast;

/// How often the SSE stream carries a progress event per active run.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What the event stream carries.
#[derive(Debug, Clone)]
pub enum Event {
    /// Live state of one run.
    Progress(runs::RunView),
    /// A run ended (its report, without per-key traces).
    RunFinished(runs::FinishedRun),
    /// Schedules changed (updated through the API, or the config was reloaded).
    Schedules(SchedulesChanged),
    /// The service is shutting down: the last event of every stream, sent
    /// after the `run_finished` of the runs it stopped.
    Shutdown(ShuttingDown),
}

/// The `schedules` event: every schedule after a change.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchedulesChanged {
    /// Every plugin's schedule.
    pub schedules: Vec<crate::schedule::ScheduleView>,
}

/// The `shutdown` event, the last of every stream.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShuttingDown {
    /// Why the stream ends.
    pub reason: String,
}

/// The `resource_usage` section of `GET /cache/warming/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ResourceUsage {
    /// This process's resident memory (null where /proc is missing).
    pub rss_bytes: Option<u64>,
    /// Its peak resident memory.
    pub peak_rss_bytes: Option<u64>,
    /// The memory budget of a run.
    pub run_memory_budget_bytes: u64,
    /// Runs in progress.
    pub active_runs: usize,
    /// Seconds since serve started.
    pub uptime_seconds: u64,
}

/// What every request handler and background task of the service shares.
pub struct Shared {
    warmer: RwLock<Arc<Warmer>>,
    config_path: PathBuf,
    runs: Runs,
    metrics: Arc<Metrics>,
    schedules: Arc<Schedules>,
    /// The job history every run of the process records in.
    history: History,
    usage: Option<Arc<crate::usage::Usage>>,
    events: broadcast::Sender<Event>,
    started: Instant,
    shutdown: Cancel,
    /// When connections are closed at the latest (set at SIGTERM/SIGINT).
    shutdown_deadline: std::sync::OnceLock<Instant>,
    /// Room for event streams open at once (`[serve] max_event_streams`).
    event_streams: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// The engine runs start with (replaced on config reload; runs keep theirs).
    pub fn warmer(&self) -> Arc<Warmer> {
        self.warmer.read().unwrap().clone()
    }

    /// The backend of the current config, shared with its runs (connected on first use).
    pub async fn backend(&self) -> Result<crate::backend::Backend> {
        self.warmer().backend().await
    }

    fn publish(&self, event: Event) {
        // No subscribers is fine.
        let _ = self.events.send(event);
    }

    /// Starts a run, logging where it came from.
    pub fn start_run(self: &Arc<Self>, request: RunRequest) -> Result<(String, Vec<String>), StartError> {
        self.runs.start(self, request)
    }

    /// Installs a new config (SIGHUP, `--watch`): later runs and schedules use
    /// it. A config whose schedules are invalid is rejected (`false`) and the old one kept.
    fn install(&self, warmer: Arc<Warmer>) -> bool {
        if let Err(e) = self.schedules.reload(warmer.config()) {
            tracing::error!("config reload rejected, keeping the previous config: {e}");
            return false;
        }
        if let Some(usage) = &self.usage {
            usage.reload(warmer.config());
        }
        let listen = warmer.config().serve.listen;
        if listen != self.warmer().config().serve.listen {
            tracing::warn!(%listen, "[serve] listen changed; it takes effect at the next restart");
        }
        *self.warmer.write().unwrap() = warmer;
        self.publish_schedules();
        true
    }

    /// Tells the event stream every schedule (after a change).
    fn publish_schedules(&self) {
        self.publish(Event::Schedules(SchedulesChanged {
            schedules: self.schedules.list(),
        }));
    }
}

/// The `resource_usage` section of `GET /cache/warming/stats`: this process's
/// memory (from /proc) and the memory budget of runs.
fn resource_usage(shared: &Shared) -> ResourceUsage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|k| k * 1024)
    };
    ResourceUsage {
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
        run_memory_budget_bytes: crate::exec::budget_bytes(shared.warmer().config().run.memory_budget),
        active_runs: shared.runs.active_views(1).len(),
        uptime_seconds: shared.started.elapsed().as_secs(),
    }
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Runs the service until SIGTERM/SIGINT.
pub async fn serve(config_path: &Path, listen: Option<SocketAddr>, watch: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let listen = listen.unwrap_or(config.serve.listen);
    if config.serve.token.is_none() && !listen.ip().is_loopback() {
        bail!("refusing to listen on {listen} without an API token: mutating endpoints would be open to the network. Set [serve] token = \"…\" (or PREHEAT_API_TOKEN), or listen on 127.0.0.1");
    }
    // Opened once: every run of the process records in it.
    let history = History::open(&config).await;
    if let Some(store) = history.store() {
        crate::jobs::prune_history(store, config.jobs.keep).await;
    } else if matches!(history, History::Unavailable(_)) {
        tracing::warn!("without the job store, schedule overrides made through the API are not persisted");
    }
    let schedules = Arc::new(Schedules::load(&config, history.store().cloned()).await?);
    let usage = match config.usage.enabled {
        true => Some(Arc::new(crate::usage::Usage::open(&config)?)),
        false => None,
    };
    let metrics = Arc::new(Metrics::new());
    let max_event_streams = config.serve.max_event_streams.get();
    let warmer = Arc::new(Warmer::new(config)?);
    let (events, _) = broadcast::channel(256);
    let shared = Arc::new(Shared {
        warmer: RwLock::new(warmer),
        config_path: config_path.to_path_buf(),
        runs: Runs::new(metrics.clone()),
        metrics,
        schedules: schedules.clone(),
        history,
        usage: usage.clone(),
        events,
        started: Instant::now(),
        shutdown: Cancel::default(),
        shutdown_deadline: std::sync::OnceLock::new(),
        event_streams: Arc::new(tokio::sync::Semaphore::new(max_event_streams)),
    });

    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| {
        format!("cannot listen on {listen} (is another preheat serve running? pick another port with --listen)")
    })?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, dashboard = %format!("http://{local}/"), "preheat serve listening");

    if !watch {
        // With --watch, the watch session loads the plugins itself.
        preload(&shared);
    }
    let reloader = tokio::spawn(reload::reload_loop(shared.clone(), watch));
    let ticker = tokio::spawn(progress_ticker(shared.clone()));
    let scheduler = tokio::spawn(schedules.clone().run(
        {
            let shared = shared.clone();
            move |plugin: String| {
                let shared = shared.clone();
                async move { fire(&shared, plugin) }
            }
        },
        shared.shutdown.clone(),
    ));
    tokio::spawn(wait_for_shutdown_signal(shared.clone()));
    if let Some(usage) = &usage {
        intel::start(&shared, usage);
    }

    let app = api::router(shared.clone());
    let serve_config = shared.warmer().config().serve.clone();
    listen::serve_http(listener, app, &serve_config, shared.shutdown.clone(), || {
        *shared.shutdown_deadline.get_or_init(Instant::now)
    })
    .await;
    let _ = scheduler.await;
    if let Some(usage) = &shared.usage {
        if let Err(e) = usage.save() {
            tracing::warn!("usage state not saved: {e:#}");
        }
    }
    ticker.abort();
    reloader.abort();
    tracing::info!("preheat serve stopped");
    Ok(())
}

/// Loads the current config's plugins in the background, so the first run of
/// each (a `warm-key` request, a schedule) does not wait for it.
fn preload(shared: &Shared) {
    let warmer = shared.warmer();
    tokio::spawn(async move { warmer.preload().await });
}

/// A scheduled fire: a proactive run of one plugin, unless it is running already.
fn fire(shared: &Arc<Shared>, plugin: String) -> Fire {
    let request = RunRequest {
        plugins: vec![plugin],
        strategy: "proactive".into(),
        ..RunRequest::default()
    };
    match shared.start_run(request) {
        Ok(_) => Fire::Started,
        Err(StartError::Busy { .. }) => Fire::Busy,
        Err(e) => Fire::Failed(e.to_string()),
    }
}

/// Sends every active run's live state to the event stream twice a second.
async fn progress_ticker(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tick.tick().await;
        if shared.events.receiver_count() == 0 {
            continue;
        }
        let batch_size = shared.warmer().config().run.batch_size.get();
        for view in shared.runs.active_views(batch_size) {
            shared.publish(Event::Progress(view));
        }
    }
}

/// SIGTERM or SIGINT: stop runs gracefully (within `[serve] shutdown_timeout`),
/// send the final event to every stream, and end the server.
async fn wait_for_shutdown_signal(shared: Arc<Shared>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    let bound = shared.warmer().config().serve.shutdown_timeout;
    let deadline = *shared.shutdown_deadline.get_or_init(|| Instant::now() + bound);
    if tokio::time::timeout_at(deadline.into(), shared.runs.shut_down())
        .await
        .is_err()
    {
        tracing::warn!(
            "runs did not stop within [serve] shutdown_timeout ({}); their history rows are marked interrupted at the next start",
            humantime::format_duration(bound)
        );
    }
    shared.publish(Event::Shutdown(ShuttingDown {
        reason: "preheat serve is shutting down".into(),
    }));
    shared.shutdown.cancel();
}
