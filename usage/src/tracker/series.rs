//! Time series kept for the names (keys or prefixes) that are, or recently
//! were, among the busiest of a step.

use super::TrackingRule;
use crate::calendar::{Cycle, MINUTE_MS};
use crate::forecast::{HoltWinters, HoltWintersParams};
use crate::ring::TimeRing;
use crate::topk::SpaceSaving;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The history of one tracked name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Series {
    /// When tracking started (the start of the step in which it entered the top).
    pub(crate) since_ms: u64,
    /// The last step in which it was among the top of its step.
    last_hot_step: u64,
    /// Accesses in the step in progress.
    step_count: u64,
    /// Accesses since tracking started.
    pub(crate) total: u64,
    /// Accesses per minute for the last minutes.
    pub(crate) minutes: TimeRing<u32>,
    /// Accesses by local hour of day, and by day of week (0 = Monday).
    pub(crate) hour_of_day: Vec<u64>,
    pub(crate) day_of_week: Vec<u64>,
    /// Accesses per step, as a forecasting model.
    pub(crate) model: HoltWinters,
}

impl Series {
    fn add(&mut self, ts_ms: u64, count: u64, offset_minutes: i32) {
        self.step_count += count;
        self.total += count;
        self.hour_of_day[Cycle::HourOfDay.bin(ts_ms, offset_minutes)] += count;
        self.day_of_week[Cycle::DayOfWeek.bin(ts_ms, offset_minutes)] += count;
    }

    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.minutes.len() * 4
            + (self.hour_of_day.capacity() + self.day_of_week.capacity()) * 8
            + self.model.memory_bytes()
    }
}

/// Settings shared by every series of a tracker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesSettings {
    pub(crate) step_ms: u64,
    pub(crate) minute_history: usize,
    pub(crate) offset_minutes: i32,
    pub(crate) model: HoltWintersParams,
}

/// The names being tracked, and the current step's counts of every name
/// (a Space-Saving summary) from which new ones are picked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tracked {
    rule: TrackingRule,
    step: SpaceSaving,
    pub(crate) series: HashMap<String, Series>,
}

impl Tracked {
    pub(crate) fn new(rule: TrackingRule, capacity: usize) -> Self {
        Tracked {
            rule,
            step: SpaceSaving::new(capacity),
            series: HashMap::new(),
        }
    }

    /// Counts one access of `name` at `ts_ms`.
    pub(crate) fn record(&mut self, name: &str, ts_ms: u64, miss: bool, settings: &SeriesSettings) {
        self.step.add(name, 1, u64::from(miss));
        if let Some(series) = self.series.get_mut(name) {
            series.add(ts_ms, 1, settings.offset_minutes);
            let minute = ts_ms / MINUTE_MS;
            series.minutes.advance(minute, |m| *m = 0);
            if let Some(m) = series.minutes.get_mut(minute) {
                *m += 1;
            }
        }
    }

    /// Ends step `step`: the step's top names start (or keep) being tracked,
    /// every model takes the step's count, names out of the top for
    /// `evict_after_steps` steps are dropped, and so are the coldest beyond `max`.
    pub(crate) fn close_step(&mut self, step: u64, settings: &SeriesSettings) {
        let start_ms = step * settings.step_ms;
        for counter in self.step.top(self.rule.top) {
            if let Some(series) = self.series.get_mut(&counter.key) {
                series.last_hot_step = step;
                continue;
            }
            let season = settings.model.season.max(1) as u64;
            let mut series = Series {
                since_ms: start_ms,
                last_hot_step: step,
                step_count: 0,
                total: 0,
                minutes: TimeRing::new(settings.minute_history, || 0),
                hour_of_day: vec![0; Cycle::HourOfDay.bins()],
                day_of_week: vec![0; Cycle::DayOfWeek.bins()],
                model: HoltWinters::with_phase(settings.model, (step % season) as usize),
            };
            // Its accesses before it was tracked are only known for this step, as an estimate.
            series.add(start_ms, counter.count, settings.offset_minutes);
            self.series.insert(counter.key, series);
        }
        for series in self.series.values_mut() {
            series.model.observe(series.step_count as f64);
            series.step_count = 0;
        }
        let evict_after = self.rule.evict_after_steps;
        self.series.retain(|_, s| step - s.last_hot_step < evict_after);
        if self.series.len() > self.rule.max {
            // The coldest: the lowest typical demand per step, whatever the time of day.
            let mut order: Vec<(f64, String)> = self
                .series
                .iter()
                .map(|(name, s)| (s.model.baseline(), name.clone()))
                .collect();
            order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            for (_, name) in order.into_iter().take(self.series.len() - self.rule.max) {
                self.series.remove(&name);
            }
        }
        self.step.clear();
    }

    /// Estimated size in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.step.memory_bytes()
            + self.series.capacity() * (std::mem::size_of::<(String, Series)>() + 1)
            + self
                .series
                .iter()
                .map(|(name, s)| name.capacity() + s.memory_bytes() - std::mem::size_of::<Series>())
                .sum::<usize>()
    }
}
