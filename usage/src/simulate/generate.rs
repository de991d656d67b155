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
    /// Peak hours of the families, in turn (family `g` peaks at `peak_hours[g % len]`, plus up
    /// to ±0.5 h); empty: spread evenly over the day (default empty).
    pub peak_hours: Vec<f64>,
    /// Hours by which every peak moves on Saturdays and Sundays (default 0).
    pub weekend_shift_hours: f64,
    /// Flash crowds starting per day, at random hours, each on brand-new keys (default 0).
    pub flash_crowds_per_day: f64,
    /// Keys of one flash crowd, Zipf-popular among themselves (default 50).
    pub flash_keys: usize,
    /// Hours a flash crowd lasts; its rate halves every hour (default 2).
    pub flash_hours: u32,
    /// A flash crowd's requests in its first hour, relative to an ordinary hour's base traffic (default 0.05).
    pub flash_share: f64,
    /// Keys born every day, at random hours, following their family's daily shape (default 0).
    pub drift_keys_per_day: usize,
    /// A day's new keys' requests on their first day, relative to the base traffic (default 0.3).
    pub drift_share: f64,
    /// Factor by which a new key's popularity fades per day after its birth (default 0.5).
    pub drift_fade: f64,
    /// Weekly sets: set `i` is hot every week on day `i % 7` (0 = Monday) at `weekly_hour`,
    /// for `weekly_hours`, and never otherwise (default 0).
    pub weekly_sets: usize,
    /// Keys per weekly set (default 500).
    pub weekly_keys: usize,
    /// Local hour at which a weekly set turns hot (default 8).
    pub weekly_hour: u32,
    /// Hours a weekly set stays hot (default 2).
    pub weekly_hours: u32,
    /// A weekly set's requests per hour while hot, relative to an ordinary hour's base traffic (default 0.3).
    pub weekly_share: f64,
}

/// Named parameter sets of [`GeneratorConfig`] (`preheat simulate --generate --regime NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Regime {
    /// The defaults: families peaking at hours spread over the day, weekend factors, trends.
    Families,
    /// Meal times: families peaking at 08:00, 12:30 and 19:00 on weekdays, 1.5 h later and
    /// with other volumes at weekends; 40 000 keys, 14 days.
    Meals,
    /// Half-flat traffic and 12 flash crowds a day, each on 60 brand-new keys for 3 hours.
    Flash,
    /// Daily drift: 3000 new keys a day, each fading by half a day; a smaller base.
    Drift,
    /// Weekly sets: 7 sets of 500 cold keys, each hot 2 hours a week (set 0: Mondays 08:00),
    /// over families without trends; 21 days.
    Weekly,
    /// Stationary Zipf: no daily or weekly shape, no trends, no noise.
    Zipf,
    /// Everything at once: meal times, flash crowds, drift and weekly sets, no trends; 21 days.
    Mix,
}

impl Regime {
    /// Every regime, in documentation order.
    pub const ALL: [Regime; 7] = [
        Regime::Families,
        Regime::Meals,
        Regime::Flash,
        Regime::Drift,
        Regime::Weekly,
        Regime::Zipf,
        Regime::Mix,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Regime::Families => "families",
            Regime::Meals => "meals",
            Regime::Flash => "flash",
            Regime::Drift => "drift",
            Regime::Weekly => "weekly",
            Regime::Zipf => "zipf",
            Regime::Mix => "mix",
        }
    }

    /// Whether its traffic repeats by time of day or day of week (what seasonal forecasts are for).
    pub fn is_seasonal(self) -> bool {
        matches!(self, Regime::Families | Regime::Meals | Regime::Weekly | Regime::Mix)
    }

    /// Its parameters (with the default seed).
    pub fn config(self) -> GeneratorConfig {
        let base = GeneratorConfig::default();
        let meals = GeneratorConfig {
            keys: 40_000,
            requests_per_day: 250_000,
            groups: 6,
            peak_hours: vec![8.0, 12.5, 19.0],
            peak_jitter_hours: 1.0,
            weekend_shift_hours: 1.5,
            ..base.clone()
        };
        let flash = GeneratorConfig {
            flash_crowds_per_day: 12.0,
            flash_keys: 60,
            flash_hours: 3,
            flash_share: 0.04,
            ..GeneratorConfig::default()
        };
        let drift = GeneratorConfig {
            drift_keys_per_day: 3000,
            drift_share: 0.4,
            drift_fade: 0.5,
            ..GeneratorConfig::default()
        };
        let weekly = GeneratorConfig {
            weekly_sets: 7,
            weekly_keys: 500,
            weekly_hour: 8,
            weekly_hours: 2,
            weekly_share: 0.3,
            ..GeneratorConfig::default()
        };
        match self {
            Regime::Families => base,
            Regime::Meals => meals,
            Regime::Flash => GeneratorConfig {
                keys: 40_000,
                requests_per_day: 250_000,
                seasonal_share: 0.5,
                ..flash
            },
            Regime::Drift => GeneratorConfig {
                keys: 25_000,
                requests_per_day: 200_000,
                ..drift
            },
            Regime::Weekly => GeneratorConfig {
                keys: 40_000,
                days: 21,
                requests_per_day: 200_000,
                trending_share: 0.0,
                ..weekly
            },
            Regime::Zipf => GeneratorConfig {
                keys: 50_000,
                requests_per_day: 300_000,
                seasonal_share: 0.0,
                weekend_spread: 0.0,
                trending_share: 0.0,
                noise: 0.0,
                ..base
            },
            Regime::Mix => GeneratorConfig {
                days: 21,
                requests_per_day: 150_000,
                trending_share: 0.0,
                flash_crowds_per_day: 6.0,
                drift_keys_per_day: 1000,
                drift_share: 0.2,
                weekly_sets: 7,
                weekly_share: 0.15,
                flash_keys: flash.flash_keys,
                flash_hours: flash.flash_hours,
                flash_share: flash.flash_share,
                ..meals
            },
        }
    }
}

impl std::str::FromStr for Regime {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Regime> {
        Regime::ALL.into_iter().find(|r| r.name() == name).ok_or_else(|| {
            let known: Vec<&str> = Regime::ALL.iter().map(|r| r.name()).collect();
            anyhow::anyhow!("unknown regime {name:?}; the regimes are: {}", known.join(", "))
        })
    }
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
            peak_hours: Vec::new(),
            weekend_shift_hours: 0.0,
            flash_crowds_per_day: 0.0,
            flash_keys: 50,
            flash_hours: 2,
            flash_share: 0.05,
            drift_keys_per_day: 0,
            drift_share: 0.3,
            drift_fade: 0.5,
            weekly_sets: 0,
            weekly_keys: 500,
            weekly_hour: 8,
            weekly_hours: 2,
            weekly_share: 0.3,
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
        ensure!(
            self.peak_hours.iter().all(|h| (0.0..24.0).contains(h)),
            "peak_hours must be between 0 and 24, got {:?}",
            self.peak_hours
        );
        for (name, value) in [
            ("flash_crowds_per_day", self.flash_crowds_per_day),
            ("flash_share", self.flash_share),
            ("drift_share", self.drift_share),
            ("weekly_share", self.weekly_share),
        ] {
            ensure!(value >= 0.0, "{name} must be at least 0, got {value}");
        }
        ensure!(
            self.drift_fade > 0.0 && self.drift_fade <= 1.0,
            "drift_fade must be in (0, 1], got {}",
            self.drift_fade
        );
        ensure!(
            self.flash_keys >= 1 && self.flash_hours >= 1,
            "flash_keys and flash_hours must be at least 1"
        );
        ensure!(
            self.weekly_keys >= 1 && self.weekly_hours >= 1 && self.weekly_hour < 24,
            "weekly_keys and weekly_hours must be at least 1, weekly_hour below 24"
        );
        Ok(())
    }

    fn group_name(g: usize) -> String {
        GROUP_NAMES
            .get(g)
            .map_or_else(|| format!("group{g}"), |name| name.to_string())
    }
}

/// When a key is requested, besides its weight.
enum Life {
    /// A base key: its family's daily shape, weekend factor, maybe a trend.
    Base {
        /// Day (fractional) from which it trends, for trending keys.
        trend_from_day: Option<f64>,
    },
    /// A flash crowd's key: hot from `from_hour` (since the start) for `hours`, halving every hour.
    Flash { from_hour: u64, hours: u32 },
    /// A key born at `born_hour` (since the start), with its family's daily shape, fading daily.
    Drift { born_hour: u64 },
    /// A weekly set's key: hot on `day` (0 = Monday) from the config's `weekly_hour`.
    Weekly { day: usize },
}

/// One key's fixed traits.
struct KeyModel {
    name: String,
    weight: f64,
    group: usize,
    peak_hour: f64,
    life: Life,
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

/// Zipf weights over `n` keys scaled to add up to `total`.
fn scaled_zipf(n: usize, s: f64, total: f64) -> Vec<f64> {
    let weights = zipf_weights(n, s);
    let sum: f64 = weights.iter().sum();
    weights.into_iter().map(|w| w * total / sum).collect()
}

/// The keys of the episodes (flash crowds, drift, weekly sets), drawn from their own random
/// stream so that a config without episodes gives the same trace as before they existed.
fn episode_keys(config: &GeneratorConfig, base_weight: f64, group_peaks: &[f64], seed: u64) -> Vec<KeyModel> {
    let mut rng = StdRng::seed_from_u64(seed);
    let hours = u64::from(config.days) * 24;
    let mut keys = Vec::new();
    let peak = |rng: &mut StdRng, group: usize| {
        (group_peaks[group] + config.peak_jitter_hours * standard_normal(rng)).rem_euclid(24.0)
    };
    // Flash crowds: a Poisson-ish count per day at uniformly random hours.
    let crowds = (config.flash_crowds_per_day * f64::from(config.days)).round() as usize;
    for c in 0..crowds {
        let from_hour = rng.random_range(0..hours);
        let group = rng.random_range(0..config.groups);
        for (i, weight) in scaled_zipf(config.flash_keys, config.zipf, config.flash_share * base_weight)
            .into_iter()
            .enumerate()
        {
            keys.push(KeyModel {
                name: format!("{}:flash{c}-{i}", GeneratorConfig::group_name(group)),
                weight,
                group,
                peak_hour: 0.0,
                life: Life::Flash {
                    from_hour,
                    hours: config.flash_hours,
                },
            });
        }
    }
    // Daily drift: each day's new keys carry `drift_share` of the base traffic on their first day.
    if config.drift_keys_per_day > 0 {
        for day in 0..u64::from(config.days) {
            let weights = scaled_zipf(config.drift_keys_per_day, config.zipf, config.drift_share * base_weight);
            for (i, weight) in weights.into_iter().enumerate() {
                let group = rng.random_range(0..config.groups);
                keys.push(KeyModel {
                    name: format!("{}:new{day}-{i}", GeneratorConfig::group_name(group)),
                    weight,
                    group,
                    peak_hour: peak(&mut rng, group),
                    life: Life::Drift {
                        born_hour: day * 24 + rng.random_range(0..24),
                    },
                });
            }
        }
    }
    // Weekly sets: the same keys every week, in their own family `newsletter{set}`.
    for set in 0..config.weekly_sets {
        for (i, weight) in scaled_zipf(config.weekly_keys, config.zipf, config.weekly_share * base_weight)
            .into_iter()
            .enumerate()
        {
            keys.push(KeyModel {
                name: format!("newsletter{set}:{i}"),
                weight,
                group: 0,
                peak_hour: 0.0,
                life: Life::Weekly { day: set % 7 },
            });
        }
    }
    keys
}

/// Writes the trace described by `config` to `sink`, in time order; returns the number of events.
pub fn generate(config: &GeneratorConfig, mut sink: impl FnMut(&AccessEvent) -> Result<()>) -> Result<u64> {
    config.validate()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let group_peaks: Vec<f64> = (0..config.groups)
        .map(|g| {
            let centre = match config.peak_hours.as_slice() {
                [] => g as f64 * 24.0 / config.groups as f64,
                hours => hours[g % hours.len()],
            };
            (centre + rng.random_range(-0.5..0.5)).rem_euclid(24.0)
        })
        .collect();
    let weekend: Vec<f64> = (0..config.groups)
        .map(|_| 1.0 + config.weekend_spread * rng.random_range(-1.0..=1.0))
        .collect();
    let mut weights = zipf_weights(config.keys, config.zipf);
    weights.shuffle(&mut rng);
    let mut models: Vec<KeyModel> = weights
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
                life: Life::Base { trend_from_day },
            }
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    models.extend(episode_keys(
        config,
        total_weight,
        &group_peaks,
        config.seed ^ 0x6570_6973_6f64_6573,
    ));

    // Latencies have their own stream, so the requests depend only on the traffic parameters.
    let mut latency_rng = StdRng::seed_from_u64(config.seed ^ 0x6c61_7465_6e63_7921);
    let mut cache = Cache::new(config.capacity, config.ttl_ms);
    let mut table = AliasTable::default();
    let mut rates = vec![0.0; models.len()];
    let mut hour_events: Vec<(u64, u32)> = Vec::new();
    let mut written = 0;
    for hour in 0..u64::from(config.days) * 24 {
        let start = config.start_ms + hour * HOUR_MS;
        let weekday = Cycle::DayOfWeek.bin(start, 0);
        let weekend_day = weekday >= 5;
        let hour_of_day = Cycle::HourOfDay.bin(start, 0) as u32;
        let local_hour = f64::from(hour_of_day) + 0.5;
        let shift = if weekend_day { config.weekend_shift_hours } else { 0.0 };
        let day = (hour as f64 + 0.5) / 24.0;
        let daily = |key: &KeyModel| {
            (1.0 - config.seasonal_share)
                + config.seasonal_share * 24.0 * daily_bump(local_hour, key.peak_hour + shift, config.peak_width_hours)
        };
        for (rate, key) in rates.iter_mut().zip(&models) {
            *rate = match key.life {
                Life::Base { trend_from_day } => {
                    let weekly = if weekend_day { weekend[key.group] } else { 1.0 };
                    let trend = trend_from_day.map_or(1.0, |from| config.trend_growth.powf((day - from).max(0.0)));
                    let noise = (config.noise * standard_normal(&mut rng) - config.noise * config.noise / 2.0).exp();
                    key.weight * daily(key) * weekly * trend * noise
                }
                Life::Flash { from_hour, hours } if (from_hour..from_hour + u64::from(hours)).contains(&hour) => {
                    key.weight * 0.5f64.powi((hour - from_hour) as i32)
                }
                Life::Drift { born_hour } if hour >= born_hour => {
                    key.weight * daily(key) * config.drift_fade.powf((hour - born_hour) as f64 / 24.0)
                }
                Life::Weekly { day }
                    if day == weekday
                        && (config.weekly_hour..config.weekly_hour + config.weekly_hours).contains(&hour_of_day) =>
                {
                    key.weight
                }
                _ => 0.0,
            };
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
