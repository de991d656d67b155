//! Time series kept for the names (keys or prefixes) that are, or recently
//! were, among the busiest of a step.

use super::TrackingRule;
use crate::calendar::{Cycle, MINUTE_MS};
use crate::forecast::{Evidence, Forecasters, HoltWinters, HoltWintersParams, Seasons, METHODS, SHRINK_GROUP_STEPS};
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
    /// Recent accesses per step and the forecasters chosen among (absent from
    /// states saved before they existed: they start empty).
    #[serde(default)]
    pub(crate) forecasters: Forecasters,
    /// The length of the name's prefix: every step looks up each key's prefix, so it is
    /// found once (not saved: found again after a load).
    #[serde(skip)]
    prefix_len: Option<usize>,
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
            + self.forecasters.memory_bytes()
            - std::mem::size_of::<Forecasters>()
    }

    /// The prefix of `name`, this series' name.
    pub(crate) fn prefix<'n>(&self, name: &'n str, separators: &str) -> &'n str {
        match self.prefix_len {
            Some(len) => &name[..len],
            None => super::prefix_of(name, separators),
        }
    }

    /// The forecast `h ≥ 1` steps after the last closed one, and the method that made it;
    /// `family` is its prefix's series (for a key).
    pub(crate) fn forecast(
        &self,
        h: u64,
        family: Option<&Series>,
        seasons: &Seasons,
    ) -> (f64, crate::forecast::Method) {
        self.forecasters
            .forecast(h, &self.model, family.map(|f| &f.forecasters), seasons)
    }
}

/// Settings shared by every series of a tracker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesSettings {
    pub(crate) step_ms: u64,
    pub(crate) minute_history: usize,
    pub(crate) offset_minutes: i32,
    pub(crate) model: HoltWintersParams,
    pub(crate) seasons: Seasons,
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
    /// `families` are the prefixes' series, when these are keys (not yet closed).
    pub(crate) fn close_step(
        &mut self,
        step: u64,
        settings: &SeriesSettings,
        separators: &str,
        families: Option<&Tracked>,
    ) {
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
                forecasters: Forecasters::default(),
                prefix_len: Some(super::prefix_of(&counter.key, separators).len()),
            };
            // Its accesses before it was tracked are only known for this step, as an estimate.
            series.add(start_ms, counter.count, settings.offset_minutes);
            self.series.insert(counter.key, series);
        }
        for (name, series) in self.series.iter_mut() {
            let y = series.step_count;
            let prefix = series.prefix(name, separators);
            series.prefix_len = Some(prefix.len());
            let family = families.and_then(|f| f.series.get(prefix)).map(|s| &s.forecasters);
            series
                .forecasters
                .observe(step, y, &series.model, family, &settings.seasons);
            series.model.observe(y as f64);
            series.step_count = 0;
        }
        let evict_after = self.rule.evict_after_steps;
        self.series.retain(|_, s| step - s.last_hot_step < evict_after);
        if self.series.len() > self.rule.max {
            // The coldest: the lowest typical demand per step over the history, whatever the time.
            let excess = self.series.len() - self.rule.max;
            let mut order: Vec<(f64, &String)> = self
                .series
                .iter()
                .map(|(name, s)| (s.forecasters.demand(&settings.seasons), name))
                .collect();
            order.select_nth_unstable_by(excess - 1, |a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            let coldest: Vec<String> = order[..excess].iter().map(|(_, name)| (*name).clone()).collect();
            for name in coldest {
                self.series.remove(&name);
            }
        }
        self.step.clear();
        self.choose(step, settings, separators, families);
    }

    /// Every series chooses its method, with as prior the evidence of the series of the
    /// same prefix and age (younger than a day or not), shrunk toward all series of that age.
    fn choose(&mut self, step: u64, settings: &SeriesSettings, separators: &str, families: Option<&Tracked>) {
        let day = settings.seasons.day as u64;
        let step_ms = settings.step_ms;
        let young = move |s: &Series| step.saturating_sub(s.since_ms / step_ms) < day;
        // Each series' group (its prefix) and age, in the map's order, so that the second
        // pass finds its prior and family without looking the prefix up again.
        let mut groups: HashMap<&str, usize> = HashMap::new();
        let mut evidence: Vec<[Evidence; 2]> = Vec::new();
        let mut member: Vec<(usize, usize)> = Vec::with_capacity(self.series.len());
        let mut ages = [Evidence::default(); 2];
        for (name, series) in &self.series {
            let age = usize::from(young(series));
            let group = *groups.entry(series.prefix(name, separators)).or_insert_with(|| {
                evidence.push([Evidence::default(); 2]);
                evidence.len() - 1
            });
            evidence[group][age].add(series.forecasters.evidence());
            ages[age].add(series.forecasters.evidence());
            member.push((group, age));
        }
        let age_means = ages.map(|e| e.means());
        let priors: Vec<[[f64; METHODS]; 2]> = evidence
            .iter()
            .map(|by_age| [0, 1].map(|age| by_age[age].shrunk(&age_means[age], SHRINK_GROUP_STEPS)))
            .collect();
        let mut family_of: Vec<Option<&Forecasters>> = vec![None; priors.len()];
        if let Some(families) = families {
            for (prefix, &group) in &groups {
                family_of[group] = families.series.get(*prefix).map(|s| &s.forecasters);
            }
        }
        drop(groups);
        for ((_, series), (group, age)) in self.series.iter_mut().zip(member) {
            series
                .forecasters
                .choose(priors[group][age], &series.model, family_of[group], &settings.seasons);
        }
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
