//! Offline evaluation of warming strategies, and seasonal trace generation.
//!
//! # The simulator
//!
//! [`simulate`] replays a trace (sorted by time) interval by interval
//! (`interval_ms`, default 1 h; intervals are aligned to multiples of the
//! interval since the epoch, so hourly intervals start on the hour). Each
//! strategy has its own simulated cache: LRU with `capacity` keys whose
//! entries live `ttl_ms`; a lookup of a missing or expired key is a miss and
//! loads the key; a hit does not extend the TTL. The trace's own `hit` column
//! is ignored.
//!
//! Before each interval, every strategy may warm up to `budget` keys:
//! warming writes the key with a fresh TTL, as the most recently used entry.
//! Every strategy but the oracle is a forecast of each key's requests in the
//! coming interval (`λ`), and they all share one warming policy: a key's
//! expected benefit is `1 − e^(−λ·u)`, the chance that it is requested while
//! not cached, `u` being the fraction of the interval the cache does not
//! already cover (1 when absent or expiring before the interval, 0 when it
//! lives past its end, in between otherwise); the `budget` keys of highest
//! benefit are warmed, skipping any below `min_benefit`. The strategies:
//!
//! - `none`: never warms.
//! - `static`: top-N from the warm-up period (by default the first day):
//!   `λ` = the key's requests then, per interval. Fixed afterwards.
//! - `reactive`: `λ` = the key's requests in the last interval.
//! - `predictive`: a [`UsageTracker`] fed with the strategy's own requests
//!   (with one step per interval and a one-day season); `λ` = each tracked
//!   key's Holt-Winters forecast for the interval ([`crate::predict`]), made
//!   before the interval starts and from past requests only.
//! - `oracle`: knows the interval's requests: warms the keys that would
//!   otherwise miss (absent, or expiring before one of their requests), the
//!   most requested first. An upper bound in practice (it is greedy, not a
//!   proven optimum).
//!
//! Nothing is measured during the warm-up (`warmup_ms` from the start of the first interval,
//! default a day), which every strategy uses to learn; requests, hits and
//! keys warmed are counted from the first interval that starts after it.
//! The report gives each strategy's hit rate and the predictive strategy's
//! share of the oracle's uplift: `(predictive − none) / (oracle − none)`.
//!
//! # The trace generator
//!
//! [`generate`] writes a deterministic (seeded) synthetic trace with Zipf
//! popularity, daily and weekly seasonality, trending keys and noise; see
//! [`GeneratorConfig`] for the model and its parameters.

mod cache;
mod generate;

pub use generate::{generate, GeneratorConfig, Regime};

use crate::calendar::{DAY_MS, HOUR_MS, WEEK_MS};
use crate::event::AccessEvent;
use crate::forecast::HoltWintersParams;
use crate::tracker::{TrackerConfig, Tracking, TrackingRule, UsageTracker};
use anyhow::{ensure, Result};
use cache::Cache;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// The simulated cache and the warming budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Keys the cache holds (LRU beyond) (default 20 000).
    pub capacity: usize,
    /// Lifetime of an entry, in ms (default 1 h).
    pub ttl_ms: u64,
    /// Keys each strategy may warm per interval (default 2000).
    pub budget: usize,
    /// Warming interval, in ms (default 1 h); must divide a day.
    pub interval_ms: u64,
    /// Learning period from the first event, not measured (default 1 day).
    pub warmup_ms: u64,
    /// Smallest expected benefit worth a warm (default 0.3).
    pub min_benefit: f64,
    /// The longest season the predictive strategy looks for, in ms (default 1 week;
    /// 1 day: daily forecasters only); the history its series keep.
    pub season_ms: u64,
    /// Holt-Winters level smoothing of the predictive strategy.
    pub alpha: f64,
    /// Holt-Winters trend smoothing.
    pub beta: f64,
    /// Holt-Winters seasonal smoothing.
    pub gamma: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        let model = HoltWintersParams::default();
        SimConfig {
            capacity: 20_000,
            ttl_ms: HOUR_MS,
            budget: 2000,
            interval_ms: HOUR_MS,
            warmup_ms: DAY_MS,
            min_benefit: 0.3,
            season_ms: WEEK_MS,
            alpha: model.alpha,
            beta: model.beta,
            gamma: model.gamma,
        }
    }
}

impl SimConfig {
    /// Checks the settings; the message names the field.
    pub fn validate(&self) -> Result<()> {
        ensure!(self.capacity >= 1, "capacity must be at least 1");
        ensure!(self.budget >= 1, "budget must be at least 1");
        ensure!(self.interval_ms >= 1, "interval_ms must be at least 1");
        ensure!(
            DAY_MS.is_multiple_of(self.interval_ms)
                && self.season_ms >= DAY_MS
                && self.season_ms.is_multiple_of(DAY_MS),
            "the interval ({} ms) must divide a day, and the season ({} ms) must be a whole number of days (1d, 1w)",
            self.interval_ms,
            self.season_ms
        );
        ensure!(
            (0.0..=1.0).contains(&self.min_benefit),
            "min_benefit must be between 0 and 1"
        );
        self.tracker_config().validate()
    }

    /// Intervals a warm is valued over: as many as the entry lives (at least one).
    pub fn horizon_intervals(&self) -> u64 {
        self.ttl_ms.div_ceil(self.interval_ms.max(1)).max(1)
    }

    /// The predictive strategy's tracker: one step per interval, a history of
    /// the season, no sliding windows and no per-minute history (only the
    /// forecasts are used); the `4 × budget` busiest keys of each interval are
    /// tracked, at most `32 × budget`, each for a season and a day after it was
    /// last among them.
    pub fn tracker_config(&self) -> TrackerConfig {
        let interval = self.interval_ms.max(1);
        let day = (DAY_MS / interval).max(1) as usize;
        let history = (self.season_ms / interval) as usize;
        TrackerConfig {
            windows: Vec::new(),
            summary_capacity: (8 * self.budget).max(64),
            step_ms: self.interval_ms,
            minute_history: 1,
            keys: TrackingRule {
                top: 4 * self.budget,
                max: 32 * self.budget,
                evict_after_steps: (history + day) as u64,
            },
            prefixes: TrackingRule {
                top: 50,
                max: 500,
                evict_after_steps: (history + day) as u64,
            },
            model: HoltWintersParams {
                alpha: self.alpha,
                beta: self.beta,
                gamma: self.gamma,
                season: day.min(history),
            },
            history_steps: history,
            ..TrackerConfig::default()
        }
    }
}

/// The strategies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// No warming.
    None,
    /// Top keys of the warm-up period.
    Static,
    /// Top keys of the last interval.
    Reactive,
    /// The keys of the same interval one day before.
    SeasonalDay,
    /// The keys of the same interval one week before.
    SeasonalWeek,
    /// The tracker's forecasts (each key's most accurate forecaster).
    Predictive,
    /// Knows the coming interval.
    Oracle,
}

impl Strategy {
    /// Every strategy, in report order.
    pub const ALL: [Strategy; 7] = [
        Strategy::None,
        Strategy::Static,
        Strategy::Reactive,
        Strategy::SeasonalDay,
        Strategy::SeasonalWeek,
        Strategy::Predictive,
        Strategy::Oracle,
    ];

    /// The strategies predictive is measured against: every one that forecasts without
    /// knowing the future.
    pub const BASELINES: [Strategy; 4] = [
        Strategy::Static,
        Strategy::Reactive,
        Strategy::SeasonalDay,
        Strategy::SeasonalWeek,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Static => "static",
            Strategy::Reactive => "reactive",
            Strategy::SeasonalDay => "seasonal-day",
            Strategy::SeasonalWeek => "seasonal-week",
            Strategy::Predictive => "predictive",
            Strategy::Oracle => "oracle",
        }
    }
}

/// One strategy's outcome over the measured intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StrategyResult {
    /// The strategy.
    pub strategy: Strategy,
    /// Requests replayed.
    pub requests: u64,
    /// Of which hits.
    pub hits: u64,
    /// `hits / requests` (0 without requests).
    pub hit_rate: f64,
    /// Keys written by warming.
    pub keys_warmed: u64,
    /// Warms whose key's next request hit, and would have missed without the
    /// warm (absent, or expired by then).
    pub warms_used: u64,
    /// Warms whose entry expired, was evicted or was warmed again before any request
    /// of the key (the rest were requested while the entry would have been there anyway).
    pub warms_wasted: u64,
}

/// What [`simulate`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// The settings used.
    pub config: SimConfig,
    /// Events in the trace.
    pub events: u64,
    /// Distinct keys in the trace.
    pub keys: usize,
    /// Time of the first event, in ms since the epoch.
    pub first_ms: u64,
    /// Time of the last event.
    pub last_ms: u64,
    /// Intervals replayed, and of those measured (after the warm-up).
    pub intervals: u64,
    /// Intervals measured.
    pub measured_intervals: u64,
    /// Every strategy, in the order of [`Strategy::ALL`].
    pub strategies: Vec<StrategyResult>,
    /// `(predictive − none) / (oracle − none)` in hit rate; `None` when the oracle gains nothing.
    pub predictive_share_of_oracle_uplift: Option<f64>,
}

impl SimReport {
    /// The result of one strategy.
    pub fn result(&self, strategy: Strategy) -> &StrategyResult {
        self.strategies
            .iter()
            .find(|r| r.strategy == strategy)
            .expect("every strategy is reported")
    }
}

/// Key names ↔ dense ids.
#[derive(Default)]
struct Keys {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Keys {
    fn id(&mut self, name: String) -> u32 {
        let next = self.names.len() as u32;
        *self.ids.entry(name).or_insert_with_key(|name| {
            self.names.push(name.clone());
            next
        })
    }
}

/// A forecast of each key's requests over the coming intervals, from the past only.
trait Forecaster: Send {
    /// Expected requests per key in the `intervals` intervals from `start_ms` (the
    /// warm's horizon: as long as the entry lives).
    fn forecast(&mut self, start_ms: u64, intervals: u64, keys: &Keys) -> Vec<(u32, f64)>;
    /// A request that happened (in this strategy's cache).
    fn observe(&mut self, ts_ms: u64, key: u32, hit: bool, keys: &Keys);
}

/// Never warms.
struct NoWarming;

impl Forecaster for NoWarming {
    fn forecast(&mut self, _: u64, _: u64, _: &Keys) -> Vec<(u32, f64)> {
        Vec::new()
    }
    fn observe(&mut self, _: u64, _: u32, _: bool, _: &Keys) {}
}

/// Requests per key during the learning period, per interval, fixed afterwards.
struct StaticTopN {
    learn_until_ms: u64,
    intervals: f64,
    counts: HashMap<u32, u64>,
    ranked: Option<Vec<(u32, f64)>>,
}

impl Forecaster for StaticTopN {
    fn forecast(&mut self, start_ms: u64, intervals: u64, _: &Keys) -> Vec<(u32, f64)> {
        if start_ms < self.learn_until_ms {
            return Vec::new();
        }
        let learned = self.intervals;
        let ranked = self
            .ranked
            .get_or_insert_with(|| self.counts.iter().map(|(&k, &c)| (k, c as f64 / learned)).collect());
        ranked.iter().map(|&(k, rate)| (k, rate * intervals as f64)).collect()
    }
    fn observe(&mut self, ts_ms: u64, key: u32, _: bool, _: &Keys) {
        if ts_ms < self.learn_until_ms {
            *self.counts.entry(key).or_insert(0) += 1;
        }
    }
}

/// Requests per key in the last interval.
#[derive(Default)]
struct Reactive {
    last: HashMap<u32, u64>,
}

impl Forecaster for Reactive {
    fn forecast(&mut self, _: u64, intervals: u64, _: &Keys) -> Vec<(u32, f64)> {
        self.last.drain().map(|(k, c)| (k, (c * intervals) as f64)).collect()
    }
    fn observe(&mut self, _: u64, key: u32, _: bool, _: &Keys) {
        *self.last.entry(key).or_insert(0) += 1;
    }
}

/// Requests per key in the intervals one lag (a day, a week) before the coming ones.
struct SeasonalNaive {
    lag_ms: u64,
    interval_ms: u64,
    /// The intervals of the last lag, by start time, each with its keys' requests.
    past: VecDeque<(u64, HashMap<u32, u32>)>,
    current: HashMap<u32, u32>,
    current_start: Option<u64>,
}

impl SeasonalNaive {
    fn new(lag_ms: u64, interval_ms: u64) -> Self {
        SeasonalNaive {
            lag_ms,
            interval_ms,
            past: VecDeque::new(),
            current: HashMap::new(),
            current_start: None,
        }
    }
}

impl Forecaster for SeasonalNaive {
    fn forecast(&mut self, start_ms: u64, intervals: u64, _: &Keys) -> Vec<(u32, f64)> {
        if let Some(previous) = self.current_start.replace(start_ms) {
            self.past.push_back((previous, std::mem::take(&mut self.current)));
        }
        let Some(from) = start_ms.checked_sub(self.lag_ms) else {
            return Vec::new();
        };
        while self.past.front().is_some_and(|(at, _)| *at < from) {
            self.past.pop_front();
        }
        let until = from + intervals * self.interval_ms;
        let mut demand: HashMap<u32, f64> = HashMap::new();
        for (_, counts) in self.past.iter().take_while(|(at, _)| *at < until) {
            for (&key, &count) in counts {
                *demand.entry(key).or_insert(0.0) += f64::from(count);
            }
        }
        demand.into_iter().collect()
    }
    fn observe(&mut self, _: u64, key: u32, _: bool, _: &Keys) {
        *self.current.entry(key).or_insert(0) += 1;
    }
}

/// The forecasts of the keys a [`UsageTracker`] tracks, each by its chosen method.
struct Predictive {
    tracker: UsageTracker,
    /// Forecasts below this are not worth a warm even for an absent key (the benefit
    /// `1 − e^(−λ)` would be under `min_benefit`): they are left out.
    worth_from: f64,
}

impl Forecaster for Predictive {
    fn forecast(&mut self, start_ms: u64, intervals: u64, keys: &Keys) -> Vec<(u32, f64)> {
        self.tracker.advance(start_ms);
        self.tracker
            .forecasts(Tracking::Keys, 1..=intervals)
            .filter(|&(_, count, _)| count >= self.worth_from)
            .filter_map(|(name, count, _)| keys.ids.get(name).map(|&id| (id, count)))
            .collect()
    }
    fn observe(&mut self, ts_ms: u64, key: u32, hit: bool, keys: &Keys) {
        self.tracker.observe(ts_ms, &keys.names[key as usize], hit);
    }
}

/// One strategy's cache and counters.
struct Lane {
    forecaster: Option<Box<dyn Forecaster>>,
    cache: Cache,
    result: StrategyResult,
    /// Warmed keys not requested since: when the entry would have expired without
    /// the warm (0: absent), when the warmed entry expires, and whether it counts.
    pending: HashMap<u32, Pending>,
}

/// A warm waiting for the key's next request.
#[derive(Clone, Copy)]
struct Pending {
    expired_without_ms: u64,
    expires_ms: u64,
    measured: bool,
}

/// The keys to warm under the shared policy (see the module docs), least valuable first.
fn by_benefit(cache: &Cache, demand: Vec<(u32, f64)>, start_ms: u64, end_ms: u64, config: &SimConfig) -> Vec<u32> {
    let length = (end_ms - start_ms) as f64;
    let mut scored: Vec<(u32, f64)> = demand
        .into_iter()
        .filter_map(|(key, rate)| {
            let uncovered = match cache.expires_ms(key) {
                Some(expires) if expires >= end_ms => 0.0,
                Some(expires) if expires > start_ms => (end_ms - expires) as f64 / length,
                _ => 1.0,
            };
            let benefit = 1.0 - (-rate * uncovered).exp();
            (benefit >= config.min_benefit && benefit > 0.0).then_some((key, benefit))
        })
        .collect();
    scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(config.budget);
    scored.into_iter().rev().map(|(key, _)| key).collect()
}

/// The oracle's choice: keys of the interval that would miss, most requested first; least valuable first.
fn oracle_choice(cache: &Cache, interval: &[(u64, u32)], budget: usize) -> Vec<u32> {
    let mut needed: HashMap<u32, (bool, u64)> = HashMap::new();
    for &(ts, key) in interval {
        let entry = needed.entry(key).or_insert((false, 0));
        entry.0 |= cache.expires_ms(key).is_none_or(|expires| expires <= ts);
        entry.1 += 1;
    }
    let mut ranked: Vec<(u32, u64)> = needed
        .into_iter()
        .filter(|(_, (miss, _))| *miss)
        .map(|(key, (_, count))| (key, count))
        .collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(budget);
    ranked.into_iter().rev().map(|(key, _)| key).collect()
}

/// Replays `events` (in time order) under every strategy; see the module docs.
pub fn simulate(events: impl IntoIterator<Item = Result<AccessEvent>>, config: &SimConfig) -> Result<SimReport> {
    config.validate()?;
    let mut events = events.into_iter().peekable();
    let first_ms = match events.peek() {
        Some(Ok(event)) => event.ts_ms,
        Some(Err(_)) => return Err(events.next().and_then(Result::err).expect("peeked an error")),
        None => anyhow::bail!("the trace has no events"),
    };
    let measure_from = first_ms / config.interval_ms * config.interval_ms + config.warmup_ms;
    let intervals_per_learning = (config.warmup_ms as f64 / config.interval_ms as f64).max(1.0);
    let mut lanes: Vec<Lane> = Strategy::ALL
        .iter()
        .map(|&strategy| Lane {
            forecaster: match strategy {
                Strategy::None => Some(Box::new(NoWarming) as Box<dyn Forecaster>),
                Strategy::Static => Some(Box::new(StaticTopN {
                    learn_until_ms: measure_from,
                    intervals: intervals_per_learning,
                    counts: HashMap::new(),
                    ranked: None,
                })),
                Strategy::Reactive => Some(Box::new(Reactive::default())),
                Strategy::SeasonalDay => Some(Box::new(SeasonalNaive::new(DAY_MS, config.interval_ms))),
                Strategy::SeasonalWeek => Some(Box::new(SeasonalNaive::new(WEEK_MS, config.interval_ms))),
                Strategy::Predictive => Some(Box::new(Predictive {
                    tracker: UsageTracker::new(config.tracker_config()).expect("validated"),
                    // The rate at which `1 − e^(−λ)` reaches `min_benefit`, a little under
                    // so that rounding never leaves out a key `by_benefit` would keep.
                    worth_from: 0.999 * -(-config.min_benefit).ln_1p(),
                })),
                Strategy::Oracle => None,
            },
            cache: Cache::new(config.capacity, config.ttl_ms),
            result: StrategyResult {
                strategy,
                requests: 0,
                hits: 0,
                hit_rate: 0.0,
                keys_warmed: 0,
                warms_used: 0,
                warms_wasted: 0,
            },
            pending: HashMap::new(),
        })
        .collect();

    let mut keys = Keys::default();
    let (mut count, mut last_ms) = (0u64, first_ms);
    let (mut intervals, mut measured_intervals) = (0u64, 0u64);
    let mut interval: Vec<(u64, u32)> = Vec::new();
    let mut current = first_ms / config.interval_ms;
    loop {
        let next = events.next().transpose()?;
        if let Some(event) = &next {
            ensure!(
                event.ts_ms >= last_ms,
                "event {} ({}) at {} ms is earlier than the one before it ({} ms): sort the trace by ts_ms",
                count + 1,
                event.key,
                event.ts_ms,
                last_ms
            );
        }
        let boundary = next.as_ref().is_none_or(|e| e.ts_ms / config.interval_ms != current);
        if boundary {
            let start = current * config.interval_ms;
            let measured = start >= measure_from;
            intervals += 1;
            measured_intervals += u64::from(measured);
            // The strategies replay the interval each on its own (on every core).
            lanes
                .par_iter_mut()
                .for_each(|lane| replay(lane, &interval, start, measured, &keys, config));
            interval.clear();
            match &next {
                Some(event) => current = event.ts_ms / config.interval_ms,
                None => break,
            }
        }
        let event = next.expect("the loop ends on the last interval");
        last_ms = event.ts_ms;
        count += 1;
        interval.push((event.ts_ms, keys.id(event.key)));
    }

    for lane in &mut lanes {
        let r = &mut lane.result;
        r.hit_rate = if r.requests > 0 {
            r.hits as f64 / r.requests as f64
        } else {
            0.0
        };
    }
    let strategies: Vec<StrategyResult> = lanes.iter().map(|l| l.result).collect();
    let rate = |s: Strategy| strategies.iter().find(|r| r.strategy == s).map_or(0.0, |r| r.hit_rate);
    let uplift = rate(Strategy::Oracle) - rate(Strategy::None);
    Ok(SimReport {
        config: *config,
        events: count,
        keys: keys.names.len(),
        first_ms,
        last_ms,
        intervals,
        measured_intervals,
        predictive_share_of_oracle_uplift: (uplift > 0.0)
            .then(|| (rate(Strategy::Predictive) - rate(Strategy::None)) / uplift),
        strategies,
    })
}

/// Warms a lane's choice at `start`, then replays the interval's requests through its cache.
fn replay(lane: &mut Lane, interval: &[(u64, u32)], start: u64, measured: bool, keys: &Keys, config: &SimConfig) {
    let warm = match &mut lane.forecaster {
        Some(forecaster) => {
            let intervals = config.horizon_intervals();
            let demand = forecaster.forecast(start, intervals, keys);
            by_benefit(
                &lane.cache,
                demand,
                start,
                start + intervals * config.interval_ms,
                config,
            )
        }
        None => oracle_choice(&lane.cache, interval, config.budget),
    };
    // A warm is used when the key's next request hits and would have missed without it,
    // wasted when the entry expires or is evicted before any request.
    for &key in &warm {
        let pending = Pending {
            expired_without_ms: lane.cache.expires_ms(key).unwrap_or(0),
            expires_ms: start + config.ttl_ms,
            measured,
        };
        if let Some(old) = lane.pending.insert(key, pending) {
            lane.result.warms_wasted += u64::from(old.measured);
        }
        lane.cache.put(key, start);
    }
    if measured {
        lane.result.keys_warmed += warm.len() as u64;
    }
    for &(ts, key) in interval {
        let hit = lane.cache.get(key, ts);
        if let Some(warmed) = lane.pending.remove(&key) {
            let used = hit && warmed.expired_without_ms <= ts;
            lane.result.warms_used += u64::from(warmed.measured && used);
            lane.result.warms_wasted += u64::from(warmed.measured && !hit);
        }
        if measured {
            lane.result.requests += 1;
            lane.result.hits += u64::from(hit);
        }
        if let Some(forecaster) = &mut lane.forecaster {
            forecaster.observe(ts, key, hit, keys);
        }
    }
    let end = start + config.interval_ms;
    let mut expired = 0;
    lane.pending.retain(|_, warmed| {
        let live = warmed.expires_ms > end;
        expired += u64::from(!live && warmed.measured);
        live
    });
    lane.result.warms_wasted += expired;
}

#[cfg(test)]
mod tests;
