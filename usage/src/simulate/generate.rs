//! The synthetic trace generator (see [`GeneratorConfig`]).

use super::cache::Cache;
use crate::calendar::{Cycle, HOUR_MS};
use crate::event::AccessEvent;
use crate::sample::{standard_normal, zipf_weights, AliasTable};
use anyhow::{ensure, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Names of the key families (prefixes); beyond these, `group12`, `group13`…
const GROUP_NAMES: [&str; 12] = [
    "product", "user", "search", "news", "video", "cart", "report", "feed", "forum", "event", "page", "api",
];

/// The parameters of a synthetic trace.
///
/// The model, hour by hour: key `k` (named `{group}:{k}`) has a Zipf weight
/// `w_k = 1/r^zipf` for a random rank `r`, and is requested at a rate
/// proportional to
///
/// ```text
/// w_k · daily_k(hour) · weekly_g(day) · trend_k(t) · noise_k(hour)
/// daily_k(x)  = (1 − seasonal_share) + seasonal_share · 24 · bump(x − peak_k; σ = peak_width_hours)
/// weekly_g    = the group's weekend factor on Saturday and Sunday, 1 otherwise
/// trend_k(t)  = trend_growth^(days since the key's start day), for trending keys only
/// noise_k     = exp(noise·z − noise²/2), z standard normal, drawn per key and hour
/// ```
///
/// where `bump` is a Gaussian wrapped around the 24-hour clock, so `daily_k`
/// averages 1 over a day. Keys belong to `groups` families; each family
/// peaks at its own hour (spread evenly over the day), each key within
/// `peak_jitter_hours` (σ) of its family's peak, and each family has a
/// weekend factor drawn uniformly from `1 ± weekend_spread`. A share
/// `trending_share` of the keys trend from a random start day. The number of
/// requests in an hour is `requests_per_day / 24` times the hour's total
/// weight relative to an ordinary weekday; a share `random_share` of them go
/// to keys drawn uniformly (one-off noise), the rest by rate. Timestamps are
/// uniform within the hour.
///
/// The `hit` column is what an LRU cache of `capacity` keys with entries
/// living `ttl_ms`, without any warming, would have answered; misses carry a
/// `latency_ms` drawn log-normally around `miss_latency_ms` (none when 0).
/// The same parameters and seed always give the same trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Distinct keys (default 50 000).
    pub keys: usize,
    /// Days of traffic (default 14).
    pub days: u32,
    /// Requests on an ordinary day (default 1 000 000).
    pub requests_per_day: u64,
    /// Zipf exponent of popularity (default 1.0).
    pub zipf: f64,
    /// Random seed (default 1).
    pub seed: u64,
    /// Start of the trace, in ms since the epoch (default 2024-01-01T00:00:00Z, a Monday).
    pub start_ms: u64,
    /// Key families, each with its own peak hour and weekend factor (default 8).
    pub groups: usize,
    /// Share of a key's traffic that follows its daily peak; the rest is flat (default 0.9).
    pub seasonal_share: f64,
    /// Width (σ) of a key's daily peak, in hours (default 1.5).
    pub peak_width_hours: f64,
    /// Spread (σ) of a key's peak hour around its family's, in hours (default 3).
    pub peak_jitter_hours: f64,
    /// Families' weekend factors are drawn from `1 ± weekend_spread` (default 0.6).
    pub weekend_spread: f64,
    /// Share of keys whose popularity grows from a random day on (default 0.01).
    pub trending_share: f64,
    /// Daily growth factor of a trending key (default 1.5).
    pub trend_growth: f64,
    /// σ of the log-normal per-key, per-hour rate noise (default 0.3).
    pub noise: f64,
    /// Share of requests to uniformly random keys (default 0.05).
    pub random_share: f64,
    /// Median latency of a miss in ms, 0 for none (default 40).
    pub miss_latency_ms: f64,
    /// Capacity of the cache behind the `hit` column (default 20 000).
    pub capacity: usize,
    /// TTL of that cache, in ms (default 1 h).
    pub ttl_ms: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            keys: 50_000,
            days: 14,
            requests_per_day: 1_000_000,
            zipf: 1.0,
            seed: 1,
            start_ms: 1_704_067_200_000,
            groups: 8,
            seasonal_share: 0.9,
            peak_width_hours: 1.5,
            peak_jitter_hours: 3.0,
            weekend_spread: 0.6,
            trending_share: 0.01,
            trend_growth: 1.5,
            noise: 0.3,
            random_share: 0.05,
            miss_latency_ms: 40.0,
            capacity: 20_000,
            ttl_ms: HOUR_MS,
        }
    }
}

impl GeneratorConfig {
    /// Checks the parameters; the message names the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.keys >= 1 && self.keys <= u32::MAX as usize,
            "keys must be between 1 and 2^32 − 1"
        );
        ensure!(self.days >= 1, "days must be at least 1");
        ensure!(self.groups >= 1, "groups must be at least 1");
        ensure!(self.zipf >= 0.0, "zipf must be at least 0");
        for (name, value) in [
            ("seasonal_share", self.seasonal_share),
            ("trending_share", self.trending_share),
            ("random_share", self.random_share),
            ("weekend_spread", self.weekend_spread),
        ] {
            ensure!(
                (0.0..=1.0).contains(&value),
                "{name} must be between 0 and 1, got {value}"
            );
        }
        ensure!(self.peak_width_hours > 0.0, "peak_width_hours must be positive");
        ensure!(self.peak_jitter_hours >= 0.0, "peak_jitter_hours must be at least 0");
        ensure!(self.trend_growth >= 1.0, "trend_growth must be at least 1");
        ensure!(self.noise >= 0.0, "noise must be at least 0");
        ensure!(self.miss_latency_ms >= 0.0, "miss_latency_ms must be at least 0");
        ensure!(self.capacity >= 1, "capacity must be at least 1");
        Ok(())
    }

    fn group_name(g: usize) -> String {
        GROUP_NAMES
            .get(g)
            .map_or_else(|| format!("group{g}"), |name| name.to_string())
    }
}

/// One key's fixed traits.
struct KeyModel {
    name: String,
    weight: f64,
    group: usize,
    peak_hour: f64,
    /// Day (fractional) from which it trends, for trending keys.
    trend_from_day: Option<f64>,
}

/// A Gaussian of width `sigma` wrapped around the 24-hour clock, as a density per hour.
fn daily_bump(hour: f64, peak: f64, sigma: f64) -> f64 {
    let norm = 1.0 / (sigma * (std::f64::consts::TAU).sqrt());
    (-2..=2)
        .map(|wrap| {
            let d = hour - peak + 24.0 * f64::from(wrap);
            norm * (-0.5 * (d / sigma).powi(2)).exp()
        })
        .sum()
}

/// Writes the trace described by `config` to `sink`, in time order; returns the number of events.
pub fn generate(config: &GeneratorConfig, mut sink: impl FnMut(&AccessEvent) -> Result<()>) -> Result<u64> {
    config.validate()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let group_peaks: Vec<f64> = (0..config.groups)
        .map(|g| (g as f64 * 24.0 / config.groups as f64 + rng.random_range(-0.5..0.5)).rem_euclid(24.0))
        .collect();
    let weekend: Vec<f64> = (0..config.groups)
        .map(|_| 1.0 + config.weekend_spread * rng.random_range(-1.0..=1.0))
        .collect();
    let mut weights = zipf_weights(config.keys, config.zipf);
    weights.shuffle(&mut rng);
    let models: Vec<KeyModel> = weights
        .iter()
        .enumerate()
        .map(|(k, &weight)| {
            let group = rng.random_range(0..config.groups);
            let peak_hour =
                (group_peaks[group] + config.peak_jitter_hours * standard_normal(&mut rng)).rem_euclid(24.0);
            let trend_from_day =
                (rng.random::<f64>() < config.trending_share).then(|| rng.random_range(0.0..f64::from(config.days)));
            KeyModel {
                name: format!("{}:{k}", GeneratorConfig::group_name(group)),
                weight,
                group,
                peak_hour,
                trend_from_day,
            }
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();

    // Latencies have their own stream, so the requests depend only on the traffic parameters.
    let mut latency_rng = StdRng::seed_from_u64(config.seed ^ 0x6c61_7465_6e63_7921);
    let mut cache = Cache::new(config.capacity, config.ttl_ms);
    let mut table = AliasTable::default();
    let mut rates = vec![0.0; config.keys];
    let mut hour_events: Vec<(u64, u32)> = Vec::new();
    let mut written = 0;
    for hour in 0..u64::from(config.days) * 24 {
        let start = config.start_ms + hour * HOUR_MS;
        let local_hour = Cycle::HourOfDay.bin(start, 0) as f64 + 0.5;
        let weekend_day = Cycle::DayOfWeek.bin(start, 0) >= 5;
        let day = (hour as f64 + 0.5) / 24.0;
        for (rate, key) in rates.iter_mut().zip(&models) {
            let daily = (1.0 - config.seasonal_share)
                + config.seasonal_share * 24.0 * daily_bump(local_hour, key.peak_hour, config.peak_width_hours);
            let weekly = if weekend_day { weekend[key.group] } else { 1.0 };
            let trend = key
                .trend_from_day
                .map_or(1.0, |from| config.trend_growth.powf((day - from).max(0.0)));
            let noise = (config.noise * standard_normal(&mut rng) - config.noise * config.noise / 2.0).exp();
            *rate = key.weight * daily * weekly * trend * noise;
        }
        let expected = config.requests_per_day as f64 / 24.0 * rates.iter().sum::<f64>() / total_weight;
        let n = expected.floor() as u64 + u64::from(rng.random::<f64>() < expected.fract());
        if n == 0 {
            continue;
        }
        table.rebuild(&rates);
        hour_events.clear();
        for _ in 0..n {
            let key = if rng.random::<f64>() < config.random_share {
                rng.random_range(0..config.keys)
            } else {
                table.sample(&mut rng)
            };
            hour_events.push((start + rng.random_range(0..HOUR_MS), key as u32));
        }
        hour_events.sort_unstable();
        for &(ts_ms, key) in &hour_events {
            let hit = cache.get(key, ts_ms);
            let latency_ms = (!hit && config.miss_latency_ms > 0.0).then(|| {
                let drawn = config.miss_latency_ms * (0.5 * standard_normal(&mut latency_rng)).exp();
                (drawn * 10.0).round() / 10.0
            });
            sink(&AccessEvent {
                ts_ms,
                key: models[key as usize].name.clone(),
                hit,
                latency_ms,
            })?;
            written += 1;
        }
    }
    Ok(written)
}
