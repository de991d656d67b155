//! [`UsageTracker`]: what is hot, what is rising or falling, and the seasonal
//! shape of demand, in memory bounded whatever the number of distinct keys.
//!
//! # The model
//!
//! The tracker is fed access events (time, key, hit or miss) in time order
//! and keeps three kinds of state, all bounded by its [`TrackerConfig`]:
//!
//! - **Sliding windows** (default 1 min, 1 h, 1 day). A window of length `L`
//!   split into `B` buckets is a ring of `2B` buckets of `L/B` each; every
//!   bucket has a Space-Saving summary of `summary_capacity` counters and a
//!   count-min sketch. A query merges the newest `B` buckets (the current
//!   window: between `L − L/B` and `L` of history, the newest bucket still
//!   filling) or the `B` before them (the previous window). The error bounds
//!   of [`crate::topk`] hold over the merged window.
//! - **Per-key series**, only for keys that are or were recently among the
//!   `keys.top` busiest of a step (default: the top 200 of each hour). At
//!   the end of every step (`step_ms`, default 1 h) the step's busiest keys
//!   start being tracked; a tracked key counts its accesses exactly from then
//!   on: per minute for the last `minute_history` minutes, by hour of day and
//!   day of week, and per step into a Holt-Winters model
//!   ([`crate::forecast`]). A key out of the top for `keys.evict_after_steps`
//!   steps (default 48: two days, so a key busy once a day stays) is dropped,
//!   and beyond `keys.max` series those of lowest typical demand per step
//!   (over the history kept and at least a day, whatever the time of day:
//!   [`crate::forecast::Forecasters::demand`]) are dropped.
//! - **Per-prefix series** for everything else: a key's prefix is the key up
//!   to its last separator (`:`, `/` or `.` by default; `user:42:cart` →
//!   `user:42`; a key without a separator has the empty prefix). Prefixes are
//!   tracked exactly like keys, under their own limits.
//!
//! Time only moves forward: an event older than the latest one seen is
//! counted at the latest time. The clock is the latest event's time or what
//! [`UsageTracker::advance`] was given: a server calls `advance(now)` before
//! querying so that idle time ends the windows and steps it should.
//!
//! # Priority
//!
//! [`UsageTracker::hot`] ranks a window's keys by estimated accesses (rank 1
//! is the busiest) and gives each a [`Priority`] from its rank and its miss
//! rate (misses over accesses observed while monitored), with
//! [`PriorityRule`]'s thresholds (defaults in parentheses):
//!
//! | rank                  | miss rate ≥ `miss_rate` (10%) | lower  |
//! |-----------------------|-------------------------------|--------|
//! | ≤ `top_rank` (10)     | critical                      | high   |
//! | ≤ `warm_rank` (100)   | high                          | normal |
//! | beyond                | normal                        | low    |
//!
//! A key both busy and missing costs the most latency, so it comes first; a
//! busy key that already hits still deserves a refresh before it expires.

mod predict;
mod series;
mod window;

pub use predict::{predict, Predicted, Prediction};

use crate::calendar::{Cycle, DAY_MS, HOUR_MS, MINUTE_MS};
use crate::event::AccessEvent;
use crate::forecast::{Explanation, HoltWintersParams, Method, Seasons};
use crate::topk::CountMinSketch;
use anyhow::{bail, ensure, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use series::{SeriesSettings, Tracked};
use std::collections::HashMap;
use window::{Span, Window};

/// A sliding window: its length and how many buckets it slides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Length in ms.
    pub length_ms: u64,
    /// Buckets per window (`length_ms` must be a multiple): the window slides
    /// by `length_ms / buckets`, and its history is between `length − length/buckets` and `length`.
    pub buckets: usize,
}

/// Which names get a time series and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingRule {
    /// The busiest names of each step that start or keep being tracked.
    pub top: usize,
    /// Most names tracked at once (those of lowest typical demand go first).
    pub max: usize,
    /// A name out of the top for this many steps stops being tracked.
    pub evict_after_steps: u64,
}

/// Thresholds of the priority table (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriorityRule {
    /// Ranks up to this are critical (missing) or high.
    pub top_rank: usize,
    /// Ranks up to this are high (missing) or normal; beyond, normal or low.
    pub warm_rank: usize,
    /// A miss rate at least this counts as missing.
    pub miss_rate: f64,
}

impl Default for PriorityRule {
    fn default() -> Self {
        PriorityRule {
            top_rank: 10,
            warm_rank: 100,
            miss_rate: 0.1,
        }
    }
}

/// The priority levels of the plugin interface.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Warm first.
    Critical,
    /// Warm soon.
    High,
    /// Warm when there is room.
    Normal,
    /// Warm last.
    Low,
}

impl PriorityRule {
    /// The priority of the key at `rank` (1 = busiest) with `miss_rate` (`None`: unknown, taken as 0).
    pub fn classify(&self, rank: usize, miss_rate: Option<f64>) -> Priority {
        let missing = miss_rate.unwrap_or(0.0) >= self.miss_rate;
        match (rank <= self.top_rank, rank <= self.warm_rank, missing) {
            (true, _, true) => Priority::Critical,
            (true, _, false) | (false, true, true) => Priority::High,
            (false, true, false) | (false, false, true) => Priority::Normal,
            (false, false, false) => Priority::Low,
        }
    }
}

/// When a change of rate is reported as a trend.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendRule {
    /// Ignore keys with fewer accesses than this in both windows (noise).
    pub min_count: u64,
    /// Report a key whose rate grew (or shrank) by at least this factor minus 1
    /// (0.5: rising at ≥ 1.5× the previous rate, falling at ≤ 1/1.5 of it).
    pub min_change: f64,
}

impl Default for TrendRule {
    fn default() -> Self {
        TrendRule {
            min_count: 20,
            min_change: 0.5,
        }
    }
}

/// Everything a [`UsageTracker`] is built from. Serde-friendly, every field
/// has a default (see [`TrackerConfig::default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// The sliding windows (default: 1 min in 6 buckets, 1 h in 12, 1 day in 24).
    pub windows: Vec<WindowConfig>,
    /// Counters per Space-Saving summary (each window bucket, each step) (default 512).
    pub summary_capacity: usize,
    /// Count-min sketch relative error per bucket (default 0.002).
    pub sketch_epsilon: f64,
    /// Count-min sketch failure probability (default 0.01).
    pub sketch_delta: f64,
    /// Step of the series and forecasting models, in ms (default 1 h).
    pub step_ms: u64,
    /// Per-minute counts kept per tracked series (default 120: two hours).
    pub minute_history: usize,
    /// Which keys get a series (default: top 200 per step, at most 2000, dropped after 48 steps out of the top).
    pub keys: TrackingRule,
    /// Which prefixes get a series (default: top 50 per step, at most 500, dropped after 48 steps).
    pub prefixes: TrackingRule,
    /// Characters that end a key's prefix (default `:/.`).
    pub separators: String,
    /// Local time's offset from UTC in minutes, for hour-of-day and day-of-week profiles (default 0).
    pub utc_offset_minutes: i32,
    /// The Holt-Winters model of every series (the season is counted in steps).
    pub model: HoltWintersParams,
    /// Steps of accesses per step each series keeps for its seasonal forecasters
    /// (default 168: a week of hours, so that the weekly one exists; at least 1).
    pub history_steps: usize,
    /// Priority thresholds for [`UsageTracker::hot`].
    pub priority: PriorityRule,
    /// Trend thresholds for [`UsageTracker::trends`].
    pub trend: TrendRule,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            windows: vec![
                WindowConfig {
                    length_ms: MINUTE_MS,
                    buckets: 6,
                },
                WindowConfig {
                    length_ms: HOUR_MS,
                    buckets: 12,
                },
                WindowConfig {
                    length_ms: DAY_MS,
                    buckets: 24,
                },
            ],
            summary_capacity: 512,
            sketch_epsilon: 0.002,
            sketch_delta: 0.01,
            step_ms: HOUR_MS,
            minute_history: 120,
            keys: TrackingRule {
                top: 200,
                max: 2000,
                evict_after_steps: 48,
            },
            prefixes: TrackingRule {
                top: 50,
                max: 500,
                evict_after_steps: 48,
            },
            separators: ":/.".to_string(),
            utc_offset_minutes: 0,
            model: HoltWintersParams::default(),
            history_steps: 168,
            priority: PriorityRule::default(),
            trend: TrendRule::default(),
        }
    }
}

impl TrackerConfig {
    /// Checks the settings are consistent; the message names the field.
    pub fn validate(&self) -> Result<()> {
        for (i, w) in self.windows.iter().enumerate() {
            ensure!(
                w.buckets >= 1 && w.length_ms >= w.buckets as u64 && w.length_ms.is_multiple_of(w.buckets as u64),
                "windows[{i}]: length_ms ({}) must be a positive multiple of buckets ({})",
                w.length_ms,
                w.buckets
            );
            ensure!(
                self.windows[..i].iter().all(|o| o.length_ms != w.length_ms),
                "windows[{i}]: two windows of {} ms",
                w.length_ms
            );
        }
        ensure!(self.summary_capacity >= 1, "summary_capacity must be at least 1");
        ensure!(
            self.sketch_epsilon > 0.0
                && self.sketch_epsilon < 1.0
                && self.sketch_delta > 0.0
                && self.sketch_delta < 1.0,
            "sketch_epsilon and sketch_delta must be between 0 and 1 (exclusive)"
        );
        ensure!(self.step_ms >= 1, "step_ms must be at least 1");
        ensure!(self.minute_history >= 1, "minute_history must be at least 1");
        for (name, rule) in [("keys", &self.keys), ("prefixes", &self.prefixes)] {
            ensure!(
                rule.top >= 1 && rule.top <= rule.max && rule.top <= self.summary_capacity,
                "{name}.top ({}) must be between 1 and both {name}.max ({}) and summary_capacity ({})",
                rule.top,
                rule.max,
                self.summary_capacity
            );
            ensure!(
                rule.evict_after_steps >= 1,
                "{name}.evict_after_steps must be at least 1"
            );
        }
        self.model.validate()?;
        ensure!(
            (1..=100_000).contains(&self.history_steps),
            "history_steps must be between 1 and 100000, got {}",
            self.history_steps
        );
        ensure!(
            self.priority.top_rank <= self.priority.warm_rank,
            "priority.top_rank must not exceed priority.warm_rank"
        );
        ensure!(self.trend.min_change > 0.0, "trend.min_change must be positive");
        Ok(())
    }

    fn series_settings(&self) -> SeriesSettings {
        SeriesSettings {
            step_ms: self.step_ms,
            minute_history: self.minute_history,
            offset_minutes: self.utc_offset_minutes,
            model: self.model,
            seasons: self.seasons(),
        }
    }

    /// The lags of the forecasters: a day in steps (at least 1), and the history kept.
    pub fn seasons(&self) -> Seasons {
        Seasons {
            day: (DAY_MS / self.step_ms.max(1)).max(1) as usize,
            history: self.history_steps,
        }
    }
}

/// Keys or prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tracking {
    /// Whole keys.
    Keys,
    /// Key prefixes.
    Prefixes,
}

/// A key of a window's top list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HotEntry {
    /// The key.
    pub key: String,
    /// 1 for the busiest.
    pub rank: usize,
    /// Estimated accesses in the window (at most `error` above the truth).
    pub accesses: u64,
    /// Misses counted while monitored (at most `error` below the truth).
    pub misses: u64,
    /// Hit rate over the accesses observed while monitored.
    pub hit_rate: Option<f64>,
    /// Bound of the estimates' error.
    pub error: u64,
    /// From rank and miss rate (see the module docs).
    pub priority: Priority,
}

/// A window's busiest keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotKeys {
    /// The window's length in ms.
    pub window_ms: u64,
    /// Accesses in the window.
    pub accesses: u64,
    /// Misses in the window.
    pub misses: u64,
    /// The busiest keys, busiest first.
    pub entries: Vec<HotEntry>,
}

/// A key whose access rate changed between the previous window and the current one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The key.
    pub key: String,
    /// Estimated accesses in the current window.
    pub current: u64,
    /// Estimated accesses in the previous window.
    pub previous: u64,
    /// Accesses per minute in the current window (it is partly elapsed).
    pub current_per_minute: f64,
    /// Accesses per minute in the previous window.
    pub previous_per_minute: f64,
    /// `current_per_minute / previous_per_minute`; `None` when the key was not seen before.
    pub ratio: Option<f64>,
}

/// Rising and falling keys of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trends {
    /// The window's length in ms.
    pub window_ms: u64,
    /// Keys whose rate grew the most, by how many accesses per minute.
    pub rising: Vec<Trend>,
    /// Keys whose rate dropped the most, by how many accesses per minute.
    pub falling: Vec<Trend>,
}

/// Bounds of a key's accesses in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// Accesses certainly made.
    pub low: u64,
    /// Accesses at most (for a key outside the summary: with probability 1 − δ).
    pub high: u64,
}

/// Average accesses by local hour of day and by day of week; `None` where
/// the series has not been tracked at that time yet.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalProfile {
    /// Accesses per hour at each hour of the day (0–23).
    pub hour_of_day: Vec<Option<f64>>,
    /// Accesses per day on each day of the week (0 = Monday).
    pub day_of_week: Vec<Option<f64>>,
}

/// A tracked key's or prefix's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesView {
    /// The key or prefix.
    pub name: String,
    /// When tracking started, in ms since the epoch.
    pub tracked_since_ms: u64,
    /// Accesses since then.
    pub accesses: u64,
    /// Accesses per minute, oldest first, the last one being the current minute.
    pub per_minute: Vec<u32>,
    /// Seasonal averages.
    pub profile: SeasonalProfile,
    /// Forecast of the accesses in the current step.
    pub forecast: f64,
    /// How that forecast was made, and why that way.
    pub explanation: Explanation,
}

/// Tracks access events; see the module docs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageTracker {
    config: TrackerConfig,
    /// The clock: the latest time seen, in ms.
    clock_ms: u64,
    /// When the first event (or `advance`) arrived.
    first_ms: Option<u64>,
    /// The step in progress.
    step: u64,
    events: u64,
    windows: Vec<Window>,
    keys: Tracked,
    prefixes: Tracked,
}

impl UsageTracker {
    /// A tracker with `config` (validated).
    pub fn new(config: TrackerConfig) -> Result<Self> {
        config.validate()?;
        let sketch = CountMinSketch::with_error(config.sketch_epsilon, config.sketch_delta);
        Ok(UsageTracker {
            windows: config
                .windows
                .iter()
                .map(|w| Window::new(*w, config.summary_capacity, &sketch))
                .collect(),
            keys: Tracked::new(config.keys, config.summary_capacity),
            prefixes: Tracked::new(config.prefixes, config.summary_capacity),
            config,
            clock_ms: 0,
            first_ms: None,
            step: 0,
            events: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The clock: the latest event's time or the latest [`advance`](Self::advance).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Events recorded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The step in progress (time divided by `step_ms`).
    pub fn current_step(&self) -> u64 {
        self.step
    }

    /// Records one access event.
    pub fn record(&mut self, event: &AccessEvent) {
        self.observe(event.ts_ms, &event.key, event.hit);
    }

    /// Records one access of `key` at `ts_ms`.
    pub fn observe(&mut self, ts_ms: u64, key: &str, hit: bool) {
        self.advance(ts_ms);
        let ts = self.clock_ms;
        let settings = self.config.series_settings();
        for window in &mut self.windows {
            window.record(key, !hit);
        }
        self.keys.record(key, ts, !hit, &settings);
        let prefix = prefix_of(key, &self.config.separators);
        self.prefixes.record(prefix, ts, !hit, &settings);
        self.events += 1;
    }

    /// Moves the clock to `now_ms` (never backwards): slides the windows and
    /// ends the steps that are over, updating every series' model. After a
    /// long idle time only the first `evict_after_steps` empty steps are
    /// replayed: by then no series is left from before.
    pub fn advance(&mut self, now_ms: u64) {
        let step = now_ms / self.config.step_ms;
        if self.first_ms.is_none() {
            self.first_ms = Some(now_ms);
            self.step = step;
        }
        if now_ms < self.clock_ms {
            return;
        }
        self.clock_ms = now_ms;
        for window in &mut self.windows {
            window.advance(now_ms);
        }
        if step > self.step {
            let settings = self.config.series_settings();
            let replay = self
                .config
                .keys
                .evict_after_steps
                .max(self.config.prefixes.evict_after_steps)
                + 1;
            for closing in self.step..step.min(self.step + replay) {
                self.keys
                    .close_step(closing, &settings, &self.config.separators, Some(&self.prefixes));
                self.prefixes
                    .close_step(closing, &settings, &self.config.separators, None);
            }
            self.step = step;
        }
    }

    /// The prefix of `key` under this tracker's separators.
    pub fn prefix_of<'k>(&self, key: &'k str) -> &'k str {
        prefix_of(key, &self.config.separators)
    }

    fn window(&self, window_ms: u64) -> Result<&Window> {
        match self.windows.iter().find(|w| w.config.length_ms == window_ms) {
            Some(window) => Ok(window),
            None => {
                let known: Vec<String> = self
                    .windows
                    .iter()
                    .map(|w| format!("{} ms", w.config.length_ms))
                    .collect();
                bail!("no window of {window_ms} ms; the windows are: {}", known.join(", "))
            }
        }
    }

    /// The `n` busiest keys of the window of length `window_ms`, with their priorities.
    pub fn hot(&self, window_ms: u64, n: usize) -> Result<HotKeys> {
        let window = self.window(window_ms)?;
        let top = window.top(Span::Current, self.config.summary_capacity);
        let entries = top
            .counters
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, c)| HotEntry {
                key: c.key.clone(),
                rank: i + 1,
                accesses: c.count,
                misses: c.misses,
                hit_rate: c.hit_rate(),
                error: c.error,
                priority: self.config.priority.classify(i + 1, c.hit_rate().map(|h| 1.0 - h)),
            })
            .collect();
        Ok(HotKeys {
            window_ms,
            accesses: top.total,
            misses: top.misses,
            entries,
        })
    }

    /// Bounds of `key`'s accesses in the window of length `window_ms`: from
    /// the summary when it is there, otherwise from the floor and the sketch.
    pub fn estimate(&self, window_ms: u64, key: &str) -> Result<Estimate> {
        let window = self.window(window_ms)?;
        let top = window.top(Span::Current, self.config.summary_capacity);
        Ok(match top.get(key) {
            Some(c) => Estimate {
                low: c.observed(),
                high: c.count,
            },
            None => Estimate {
                low: 0,
                high: top.floor.min(window.sketch(Span::Current).estimate(key)),
            },
        })
    }

    /// The `n` keys whose access rate rose most and the `n` that fell most
    /// between the previous window of length `window_ms` and the current one.
    /// A key is reported when it had at least `trend.min_count` accesses in
    /// one of the two windows and its rate changed by the factor
    /// `1 + trend.min_change`. A key missing from a window's summary is
    /// estimated from the sketch, capped by the summary's floor. Until the
    /// tracker has seen the whole previous window, both lists are empty.
    pub fn trends(&self, window_ms: u64, n: usize) -> Result<Trends> {
        let window = self.window(window_ms)?;
        let mut trends = Trends {
            window_ms,
            rising: Vec::new(),
            falling: Vec::new(),
        };
        if self
            .first_ms
            .is_none_or(|first| first > window.start_ms(Span::Previous))
        {
            return Ok(trends);
        }
        let capacity = self.config.summary_capacity;
        let current = SpanCounts::new(window, Span::Current, capacity);
        let previous = SpanCounts::new(window, Span::Previous, capacity);
        let minutes = |span| window.covered_ms(span, self.clock_ms) as f64 / MINUTE_MS as f64;
        let (current_minutes, previous_minutes) = (minutes(Span::Current), minutes(Span::Previous));
        let rule = self.config.trend;
        let mut keys: Vec<&str> = current
            .counts
            .keys()
            .chain(previous.counts.keys())
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            let (now, before) = (current.estimate(key), previous.estimate(key));
            if now.max(before) < rule.min_count {
                continue;
            }
            let trend = Trend {
                key: key.to_string(),
                current: now,
                previous: before,
                current_per_minute: now as f64 / current_minutes,
                previous_per_minute: before as f64 / previous_minutes,
                ratio: (before > 0).then(|| (now as f64 / current_minutes) / (before as f64 / previous_minutes)),
            };
            let factor = 1.0 + rule.min_change;
            if trend.current_per_minute >= factor * trend.previous_per_minute {
                trends.rising.push(trend);
            } else if trend.previous_per_minute >= factor * trend.current_per_minute {
                trends.falling.push(trend);
            }
        }
        let change = |t: &Trend| t.current_per_minute - t.previous_per_minute;
        trends.rising.sort_by(|a, b| change(b).total_cmp(&change(a)));
        trends.falling.sort_by(|a, b| change(a).total_cmp(&change(b)));
        trends.rising.truncate(n);
        trends.falling.truncate(n);
        Ok(trends)
    }

    fn tracked(&self, kind: Tracking) -> &Tracked {
        match kind {
            Tracking::Keys => &self.keys,
            Tracking::Prefixes => &self.prefixes,
        }
    }

    /// The names (keys or prefixes) tracked now, in no particular order.
    pub fn tracked_names(&self, kind: Tracking) -> impl Iterator<Item = &str> {
        self.tracked(kind).series.keys().map(String::as_str)
    }

    /// Every tracked name's forecast of the steps `aheads` (each `≥ 1`) steps after the
    /// last closed one (1: the current step), summed, by its chosen method (that of the
    /// first of those steps); made on every core, in no particular order.
    pub fn forecasts(
        &self,
        kind: Tracking,
        aheads: std::ops::RangeInclusive<u64>,
    ) -> impl ParallelIterator<Item = (&str, f64, Method)> {
        let seasons = self.config.seasons();
        self.tracked(kind).series.par_iter().map(move |(name, s)| {
            // Only the profile method reads the family: no lookup for the others.
            let family = match s.forecasters.chosen() {
                Method::Profile => self.family(kind, name),
                _ => None,
            };
            let mut method = Method::default();
            let mut sum = 0.0;
            for ahead in aheads.clone() {
                let (count, used) = s.forecast(ahead, family, &seasons);
                if ahead == *aheads.start() {
                    method = used;
                }
                sum += count.max(0.0);
            }
            (name.as_str(), sum, method)
        })
    }

    /// The series of a key's prefix (none for a prefix).
    fn family(&self, kind: Tracking, name: &str) -> Option<&series::Series> {
        match kind {
            Tracking::Keys => self.prefixes.series.get(self.prefix_of(name)),
            Tracking::Prefixes => None,
        }
    }

    /// A step's start as local weekday and time, e.g. "Monday 08:00".
    fn step_name(&self, step: u64) -> String {
        const DAYS: [&str; 7] = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        let start = step * self.config.step_ms;
        let offset = self.config.utc_offset_minutes;
        let local = (start as i64 + i64::from(offset) * MINUTE_MS as i64).max(0) as u64;
        format!(
            "{} {:02}:{:02}",
            DAYS[Cycle::DayOfWeek.bin(start, offset)],
            local / HOUR_MS % 24,
            local / MINUTE_MS % 60
        )
    }

    /// The history of a tracked key or prefix.
    pub fn series(&self, kind: Tracking, name: &str) -> Option<SeriesView> {
        let series = self.tracked(kind).series.get(name)?;
        let offset = self.config.utc_offset_minutes;
        let profile = |cycle: Cycle, sums: &[u64], per_ms: u64| -> Vec<Option<f64>> {
            let observed = cycle.observed_ms(series.since_ms, self.clock_ms.max(series.since_ms), offset);
            sums.iter()
                .zip(observed)
                .map(|(&sum, ms)| (ms > 0).then(|| sum as f64 * per_ms as f64 / ms as f64))
                .collect()
        };
        let minute = self.clock_ms / MINUTE_MS;
        let history = series.minutes.len() as u64;
        Some(SeriesView {
            name: name.to_string(),
            tracked_since_ms: series.since_ms,
            accesses: series.total,
            per_minute: (minute + 1 - history.min(minute + 1)..=minute)
                .map(|m| series.minutes.get(m).copied().unwrap_or(0))
                .collect(),
            profile: SeasonalProfile {
                hour_of_day: profile(Cycle::HourOfDay, &series.hour_of_day, HOUR_MS),
                day_of_week: profile(Cycle::DayOfWeek, &series.day_of_week, DAY_MS),
            },
            forecast: series.forecast(1, self.family(kind, name), &self.config.seasons()).0,
            explanation: series.forecasters.explain(
                1,
                &series.model,
                self.family(kind, name).map(|f| &f.forecasters),
                &self.config.seasons(),
                |step| self.step_name(step),
            ),
        })
    }

    /// Estimated memory held, in bytes: bounded by the configuration, not by
    /// the number of distinct keys (which only enter summaries of fixed size).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.windows.iter().map(Window::memory_bytes).sum::<usize>()
            + self.keys.memory_bytes()
            + self.prefixes.memory_bytes()
    }
}

/// A span's merged summary (indexed by key) and sketch.
struct SpanCounts {
    counts: HashMap<String, u64>,
    floor: u64,
    sketch: CountMinSketch,
}

impl SpanCounts {
    fn new(window: &Window, span: Span, capacity: usize) -> SpanCounts {
        let top = window.top(span, capacity);
        SpanCounts {
            counts: top.counters.into_iter().map(|c| (c.key, c.count)).collect(),
            floor: top.floor,
            sketch: window.sketch(span),
        }
    }

    /// The summary's count, or for a key outside it the sketch's estimate capped by the floor.
    fn estimate(&self, key: &str) -> u64 {
        match self.counts.get(key) {
            Some(&count) => count,
            None => self.floor.min(self.sketch.estimate(key)),
        }
    }
}

/// `key` up to its last separator (empty when it has none).
fn prefix_of<'k>(key: &'k str, separators: &str) -> &'k str {
    // Called for every event and every series each step: ASCII separators (the usual
    // case) are compared byte by byte; a separator byte is never inside a multi-byte
    // character, so the split is on a character boundary.
    let end = if separators.is_ascii() {
        let separators = separators.as_bytes();
        key.bytes().rposition(|b| separators.contains(&b))
    } else {
        key.rfind(|c| separators.contains(c))
    };
    end.map_or("", |i| &key[..i])
}

#[cfg(test)]
mod tests;
