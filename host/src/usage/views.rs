//! What usage intelligence answers with: the documents of `GET hot-data`, the
//! `effectiveness` and measured `cost_benefit` of `GET stats`, and schedule
//! suggestions. Typed until `serve` (or `preheat hot-data --json`) serializes them.

use preheat_usage::forecast::Explanation;
use preheat_usage::tracker::{HotEntry, SeasonalProfile, Trend};
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /cache/warming/hot-data`: the hottest keys of a window and the keys
/// whose rate changed; `reason` says why `keys` is empty.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HotData {
    /// The window (`"1h"`); null when usage tracking is off.
    pub window: Option<String>,
    /// Accesses in the window; null without traffic.
    pub accesses: Option<u64>,
    /// Misses in the window; null without traffic.
    pub misses: Option<u64>,
    /// The busiest keys, busiest first.
    pub keys: Vec<HotKey>,
    /// Keys whose rate grew the most.
    pub rising: Vec<Trend>,
    /// Keys whose rate dropped the most.
    pub falling: Vec<Trend>,
    /// Why there are no keys (no traffic, usage tracking off); null otherwise.
    pub reason: Option<String>,
}

impl HotData {
    /// No keys, and why.
    pub fn empty(window: Option<String>, reason: &str) -> HotData {
        HotData {
            window,
            accesses: None,
            misses: None,
            keys: Vec::new(),
            rising: Vec::new(),
            falling: Vec::new(),
            reason: Some(reason.to_string()),
        }
    }
}

/// One hot key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HotKey {
    /// Its place in the window's top list (the tracker's entry).
    #[serde(flatten)]
    pub entry: HotEntry,
    /// The plugin whose `key_patterns` match it; null when none does.
    pub plugin: Option<String>,
    /// Seasonal profile, for the top keys tracked as series.
    pub profile: Option<SeasonalProfile>,
    /// Forecast accesses in the current step, for the same keys.
    pub forecast_this_step: Option<f64>,
    /// How that forecast was made and why ("weekly seasonal: Monday 08:00 had 412 requests").
    pub forecast_explanation: Option<Explanation>,
}

/// How much of the hour's hottest keys the backend holds now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CoverageView {
    /// Keys in the hot set.
    pub hot_keys: usize,
    /// Of which in the cache.
    pub cached: usize,
    /// `cached / hot_keys`.
    pub fraction: Option<f64>,
    /// Up to 10 hot keys not in the cache.
    pub missing: Vec<String>,
}

/// The `effectiveness` section of `GET /cache/warming/stats`: hit rates
/// around runs; null where not measured (and everything null, with `reason`,
/// when usage tracking is off).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Effectiveness {
    /// Hit rate in the windows before measured runs.
    pub hit_rate_before: Option<f64>,
    /// Hit rate in the windows after them.
    pub hit_rate_after: Option<f64>,
    /// `hit_rate_after - hit_rate_before`.
    pub improvement: Option<f64>,
    /// Runs with traffic on both sides.
    pub measured_runs: Option<usize>,
    /// The before/after window (`[usage] effect_window`).
    pub window: Option<String>,
    /// Hit rate of the events of the last 24 hours.
    pub hit_rate_last_24h: Option<f64>,
    /// Events of the last 24 hours.
    pub requests_last_24h: Option<u64>,
    /// Events tracked since the state began.
    pub events_tracked: Option<u64>,
    /// Coverage of the hot set now (null without traffic or backend).
    pub coverage: Option<CoverageView>,
    /// From the Redis server's `INFO stats` samples (null without two samples).
    pub redis: Option<RedisHitRates>,
    /// The last 10 runs' hit rates around them, newest first.
    pub runs: Vec<RunEffectView>,
    /// Why nothing is measured (usage tracking off); null otherwise.
    pub reason: Option<String>,
}

/// One run's hit rates before and after it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunEffectView {
    /// The run.
    pub run_id: String,
    /// Its strategy.
    pub strategy: String,
    /// Hit rate in the window before it.
    pub hit_rate_before: Option<f64>,
    /// Hit rate in the window after it.
    pub hit_rate_after: Option<f64>,
    /// Events in the window before it.
    pub requests_before: u64,
    /// Events in the window after it.
    pub requests_after: u64,
    /// Keys it wrote.
    pub keys_warmed: u64,
}

/// Hit rates from the Redis server's own counters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedisHitRates {
    /// Over the last effect window.
    pub hit_rate_recent: Option<f64>,
    /// Around the latest run whose after-window is over.
    pub last_measured_run: Option<RedisRunHitRates>,
}

/// The Redis server's hit rate around one run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RedisRunHitRates {
    /// The run.
    pub run_id: String,
    /// Before it.
    pub hit_rate_before: Option<f64>,
    /// After it.
    pub hit_rate_after: Option<f64>,
}

/// What usage events say runs saved (null until a run was measured).
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct MeasuredBenefit {
    /// `(miss rate before − miss rate after) × requests after`.
    pub misses_avoided: Option<f64>,
    /// Misses avoided per key warmed.
    pub misses_avoided_per_key: Option<f64>,
    /// Misses avoided × (mean miss latency − mean hit latency).
    pub estimated_latency_saved_ms: Option<f64>,
    /// Latency saved minus producer time.
    pub net_ms: Option<f64>,
}

/// A suggested cron time for a plugin: just before its keys' traffic peaks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Suggestion {
    /// The plugin.
    pub plugin: String,
    /// The hour its traffic peaks, local (`utc_offset_minutes`).
    pub peak_hour_local: usize,
    /// The suggested cron expression (UTC).
    pub cron: String,
    /// Why, in a sentence.
    pub why: String,
    /// Accesses per hour of the day (local) of the prefixes it owns.
    pub hour_of_day: Vec<f64>,
}
