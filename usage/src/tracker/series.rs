//! Time series kept for the names (keys or prefixes) that are, or recently
//! were, among the busiest of a step.

use super::TrackingRule;
use crate::calendar::{Cycle, MINUTE_MS};
use crate::forecast::{
    CalibrationTotal, Evidence, Forecasters, HoltWinters, HoltWintersParams, Method, Persistence, Seasons, Surprises,
    METHODS, SHRINK_GROUP_STEPS,
};
use crate::ring::TimeRing;
use crate::topk::SpaceSaving;
use rayon::prelude::*;
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
    /// The number of the name's prefix in [`Tracked::prefixes`] (not saved: numbered
    /// again after a load).
    #[serde(skip)]
    prefix: Option<u32>,
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
    /// The tracked names' prefixes, numbered: each step's passes over every series find
    /// a series' prefix and its family by number, without reading the name (not saved).
    #[serde(skip)]
    prefixes: Prefixes,
}

/// Distinct prefixes by number; at most twice as many as the series, plus 64 (then
/// renumbered from the series that remain).
#[derive(Debug, Clone, Default)]
struct Prefixes {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Prefixes {
    /// The number of `prefix`, new if it has none.
    fn id(&mut self, prefix: &str) -> u32 {
        if let Some(&id) = self.ids.get(prefix) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(prefix.to_string());
        self.ids.insert(prefix.to_string(), id);
        id
    }

    fn memory_bytes(&self) -> usize {
        self.names.capacity() * std::mem::size_of::<String>()
            + self.ids.capacity() * (std::mem::size_of::<(String, u32)>() + 1)
            + 2 * self.names.iter().map(String::capacity).sum::<usize>()
    }
}

impl Tracked {
    pub(crate) fn new(rule: TrackingRule, capacity: usize) -> Self {
        Tracked {
            rule,
            step: SpaceSaving::new(capacity),
            series: HashMap::new(),
            prefixes: Prefixes::default(),
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
        if self.prefixes.names.is_empty() {
            // Loaded from a saved state (its prefixes are not saved): number them.
            for (name, series) in &mut self.series {
                series.prefix = Some(self.prefixes.id(super::prefix_of(name, separators)));
            }
        }
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
                prefix: Some(self.prefixes.id(super::prefix_of(&counter.key, separators))),
            };
            // Its accesses before it was tracked are only known for this step, as an estimate.
            series.add(start_ms, counter.count, settings.offset_minutes);
            self.series.insert(counter.key, series);
        }
        let family_of: Vec<Option<&Forecasters>> = self
            .prefixes
            .names
            .iter()
            .map(|prefix| {
                families
                    .and_then(|f| f.series.get(prefix.as_str()))
                    .map(|s| &s.forecasters)
            })
            .collect();
        // Names out of the top for too long are dropped, the others take the step's count
        // (each series on its own: on every core).
        let evict_after = self.rule.evict_after_steps;
        self.series.retain(|_, s| step - s.last_hot_step < evict_after);
        self.series.par_iter_mut().for_each(|(_, series)| {
            let y = series.step_count;
            let family = family_of[series.prefix.expect("numbered") as usize];
            series
                .forecasters
                .observe(step, y, &series.model, family, &settings.seasons);
            series.model.observe(y as f64);
            series.step_count = 0;
            if families.is_none() {
                // A prefix: its keys read its shape at the next step, each several times.
                series.forecasters.note_next_shape(&settings.seasons);
            }
        });
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
        choose(&mut self.series, self.prefixes.names.len(), &family_of, step, settings);
        if self.prefixes.names.len() > 2 * self.series.len() + 64 {
            let old = std::mem::take(&mut self.prefixes);
            for series in self.series.values_mut() {
                let prefix = &old.names[series.prefix.expect("numbered") as usize];
                series.prefix = Some(self.prefixes.id(prefix));
            }
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
            + self.prefixes.memory_bytes()
    }
}

/// A family is flat when its series' `level` has a lower mean loss than their `days`, and
/// their `profile`'s is at least this times their `level`'s (not 5% better).
const FLAT_PROFILE_GAIN: f64 = 0.95;

/// Every series chooses its method, with as prior the evidence of the series of the same
/// prefix and age (younger than a day or not), shrunk toward all series of that age;
/// `family_of` is each prefix's family (by number, `prefixes` of them).
fn choose(
    series: &mut HashMap<String, Series>,
    prefixes: usize,
    family_of: &[Option<&Forecasters>],
    step: u64,
    settings: &SeriesSettings,
) {
    let day = settings.seasons.day as u64;
    let step_ms = settings.step_ms;
    let steps_tracked = move |s: &Series| step.saturating_sub(s.since_ms / step_ms);
    let young = move |s: &Series| steps_tracked(s) < day;
    // Each family's calibration by age in whole days tracked, the oldest group holding
    // every series tracked as long as the history or longer.
    let ages_kept = (settings.seasons.history as u64 / day.max(1)).max(1);
    let age_group = move |s: &Series| {
        let days = (steps_tracked(s) / day.max(1)).min(ages_kept);
        s.prefix.expect("numbered") as usize * (ages_kept as usize + 1) + days as usize
    };
    // The sums over each family (and over all series), in one sequential pass: their order
    // is the map's, whatever the number of threads.
    let mut evidence: Vec<[Evidence; 2]> = vec![[Evidence::default(); 2]; prefixes];
    let mut ages = [Evidence::default(); 2];
    let mut surprises = vec![(Surprises::default(), 0usize); prefixes];
    let mut all = Surprises::default();
    let mut calibration = vec![CalibrationTotal::default(); prefixes * (ages_kept as usize + 1)];
    for s in series.values() {
        let prefix = s.prefix.expect("numbered") as usize;
        let age = usize::from(young(s));
        evidence[prefix][age].add(s.forecasters.evidence());
        ages[age].add(s.forecasters.evidence());
        surprises[prefix].0.add(s.forecasters.surprises());
        surprises[prefix].1 += 1;
        all.add(s.forecasters.surprises());
        calibration[age_group(s)].add(s.forecasters.calibration());
    }
    // A flat family (see `FLAT_PROFILE_GAIN`): its series of all ages together.
    let flat: Vec<bool> = evidence
        .iter()
        .map(|[a, b]| {
            let mut family = *a;
            family.add(b);
            let means = family.means();
            let level = Method::Level.index();
            let (days, profile) = (Method::Days.index(), Method::Profile.index());
            [level, days, profile].iter().all(|&m| family.scored[m] > 0.0)
                && means[level] < means[days]
                && means[profile] >= FLAT_PROFILE_GAIN * means[level]
        })
        .collect();
    // Each family's persistence: its series' surprises and their share of all series'.
    let persistence: Vec<Persistence> = surprises
        .iter()
        .map(|(family, members)| {
            let mut shrunk = *family;
            shrunk.add(&all.scaled(*members as f64 / series.len().max(1) as f64));
            shrunk.persistence()
        })
        .collect();
    let age_means = ages.map(|e| e.means());
    let priors: Vec<[[f64; METHODS]; 2]> = evidence
        .iter()
        .map(|by_age| [0, 1].map(|age| by_age[age].shrunk(&age_means[age], SHRINK_GROUP_STEPS)))
        .collect();
    series.par_iter_mut().for_each(|(_, s)| {
        let group = s.prefix.expect("numbered") as usize;
        let prior = priors[group][usize::from(young(s))];
        s.forecasters.set_flat_family(flat[group]);
        s.forecasters.set_persistence(persistence[group]);
        s.forecasters.set_scale(calibration[age_group(s)].total().ratio());
        s.forecasters
            .choose(prior, &s.model, family_of[group], &settings.seasons);
    });
}
