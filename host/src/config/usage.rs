//! `[usage]`: usage intelligence in `serve` — where access events come from,
//! how they are tracked, and the reactive and predictive warming they drive.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[usage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Accept and track access events (`POST /cache/warming/events`, the stream).
    pub enabled: bool,
    /// Where the tracker's state (windows, series, models) is saved; default
    /// `usage-state.json` in the state directory.
    pub state_file: Option<PathBuf>,
    /// How often the state is saved (also at shutdown).
    #[serde(with = "humantime_serde")]
    pub save_every: Duration,
    /// Window before and after a run over which its hit-rate effect is measured.
    #[serde(with = "humantime_serde")]
    pub effect_window: Duration,
    /// Apply schedule suggestions (cron times just before each plugin's traffic
    /// peak) to plugins that have a schedule, hourly; otherwise they are only
    /// shown by `GET /cache/warming/schedule`.
    pub apply_schedule_suggestions: bool,
    /// The tracker: windows, sketches, series, Holt-Winters parameters (see docs/USAGE.md).
    pub tracker: preheat_usage::TrackerConfig,
    /// `[usage.stream]`: read events from a Redis Stream with a consumer group.
    pub stream: Option<StreamConfig>,
    /// `[usage.keyspace]`: Redis keyspace notifications of expired/evicted keys.
    pub keyspace: KeyspaceConfig,
    /// `[usage.reactive]`: warm hot keys that miss.
    pub reactive: ReactiveConfig,
    /// `[usage.predictive]`: warm keys forecast to be hot before their step starts.
    pub predictive: PredictiveConfig,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            enabled: true,
            state_file: None,
            save_every: Duration::from_secs(60),
            effect_window: Duration::from_secs(600),
            apply_schedule_suggestions: false,
            tracker: preheat_usage::TrackerConfig::default(),
            stream: None,
            keyspace: KeyspaceConfig::default(),
            reactive: ReactiveConfig::default(),
            predictive: PredictiveConfig::default(),
        }
    }
}

/// `[usage.stream]`: the application `XADD`s events (fields `key`, `hit` = 1|0,
/// optional `ts_ms`, `latency_ms`); preheat reads them in a consumer group and
/// acknowledges them once tracked, so a restart loses nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Redis URL of the stream (default: the backend's URL).
    pub url: Option<String>,
    /// Stream key.
    #[serde(default = "default_stream")]
    pub name: String,
    /// Consumer group (created when missing).
    #[serde(default = "default_group")]
    pub group: String,
    /// Consumer name within the group (default: the host name).
    pub consumer: Option<String>,
    /// Entries read per call.
    #[serde(default = "default_stream_batch")]
    pub batch: usize,
}

fn default_stream() -> String {
    "preheat:events".into()
}
fn default_group() -> String {
    "preheat".into()
}
fn default_stream_batch() -> usize {
    1000
}

/// `[usage.keyspace]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyspaceConfig {
    /// Subscribe to `expired` and `evicted` events of the backend's Redis: a hot
    /// key that expires or is evicted is refreshed at once.
    pub enabled: bool,
    /// Also turn the server's `notify-keyspace-events` on (adds `Exe`); off by
    /// default: preheat never changes server settings unless told to.
    pub configure: bool,
}

/// `[usage.reactive]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReactiveConfig {
    /// Run reactive warming.
    pub enabled: bool,
    /// How often hot keys are checked.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The window keys must be hot in (one of the tracker's windows).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Accesses in the window that make a key hot.
    pub min_accesses: u64,
    /// Most keys warmed per round.
    pub max_keys: usize,
}

impl Default for ReactiveConfig {
    fn default() -> Self {
        ReactiveConfig {
            enabled: false,
            interval: Duration::from_secs(30),
            window: Duration::from_secs(60),
            min_accesses: 10,
            max_keys: 500,
        }
    }
}

/// `[usage.predictive]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PredictiveConfig {
    /// Run predictive warming.
    pub enabled: bool,
    /// How often forecasts are checked.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Warm keys forecast for the step that starts within this time.
    #[serde(with = "humantime_serde")]
    pub lead_time: Duration,
    /// Most keys warmed per step.
    pub max_keys: usize,
    /// Forecast accesses in the step that make a key worth warming.
    pub min_predicted: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            enabled: false,
            interval: Duration::from_secs(60),
            lead_time: Duration::from_secs(600),
            max_keys: 500,
            min_predicted: 1.0,
        }
    }
}
