//! Choosing, per series, among simple forecasters by their measured recent
//! accuracy.
//!
//! Each tracked series keeps its requests per step for the last
//! `history` steps (a week of hours by default) and offers seven forecasts of a
//! coming step `t`:
//!
//! | method | forecast of `y_t` |
//! |--------|-------------------|
//! | `recent` | `y_{t−1}`: the last step (what reactive warming does) |
//! | `level` | the mean per step, smoothed over the history (a static top-N) |
//! | `day` | `y_{t−d}`: the same step one day before (`d` steps per day) |
//! | `days` | the mean of `y_{t−kd}` over the days in the history (k = 1…7) |
//! | `profile` | the series' own mean at `t`'s time of day over the past days, shrunk toward its level times its family's (prefix's) shape at `t` (the family's `days` over its level), the shape worth [`PROFILE_PRIOR_DAYS`] days of its own, or [`FLAT_PROFILE_PRIOR_DAYS`] in a flat family |
//! | `week` | `y_{t−7d}`: the same step one week before (a history of a week or more) |
//! | `holt-winters` | the series' additive Holt-Winters model (once it has seen a day) |
//!
//! A lag method has nothing to say (and is not scored) until the series has
//! been tracked for its lag.
//!
//! Every step, before the series takes its new count `y`, each method's
//! forecast `λ` of that step is scored with the log-loss of "requested in the
//! step" under Poisson arrivals: `−ln(1 − e^(−λ))` when `y > 0`, `λ` (at most
//! [`MAX_LOSS`]) when `y = 0`, with `λ` at least [`MIN_RATE`]. That is what a
//! warm decides: whether the key will be asked for. Losses decay by
//! `1 − 1/history` per step, so a week-old burst still counts a third.
//!
//! The method a series uses is the one of least *shrunk* mean loss:
//! `(L_f + K·P_f) / (n_f + K)`, with `L_f` its decayed loss, `n_f` its decayed
//! count of scored steps, `K` = [`SHRINK_STEPS`] and `P_f` the prior: the same
//! ratio over every tracked series of the same prefix and the same age
//! (younger or older than a day), itself shrunk by [`SHRINK_GROUP_STEPS`]
//! toward all series of that age. A series with little evidence thus
//! follows its neighbours (a brand-new key, what new keys of its family did),
//! and one whose own record is clear follows it: a flash-crowd key whose crowd
//! ended loses `recent`'s 0 against `level`'s memory at once and stops being
//! warmed, a newsletter key busy each Monday at 08:00 picks `week`.
//!
//! The chosen method's forecast `f_{t+h}` is then moved by the latest step's
//! *surprise* `r = y_t − f_t` (its count minus the chosen method's forecast of
//! it), as far as surprises persist. A series' demand is taken as its forecast
//! times `1 + m`, the factor `m` varying from step to step with variance `s²`
//! and correlation `ρ` between successive steps, seen through Poisson noise;
//! the best linear estimate of the coming factors from `r` gives
//! `max(0, f_{t+h} · (1 + ρ^(h−1) · ρs² · r / (s²·f_t + 1)))`: a busy series
//! (`s²f_t ≫ 1`) carries about `ρ` of its relative surprise, a quiet one, whose
//! surprises are mostly Poisson noise, little. `ρs²` and `s²` are its family's
//! ([`Surprises::persistence`]): `Σ r_{t−1}r_t / Σ f_{t−1}f_t` and
//! `Σ (r_t² − f_t) / Σ f_t²` over its series, decayed like the losses, the sums
//! shrunk halfway toward all families' (the family's series' share of every
//! tracked series' sums is added to its own). Where a busy or quiet
//! spell outlasts a step (an hour's rate seen in 15-minute steps, a day's new keys
//! busier than their family's usual) the forecast follows it; where surprises do
//! not last (stationary traffic) `ρs²` is about 0 and nothing moves.
//!
//! Last, the forecast is scaled by how the series' forecasts have lately compared with what
//! came ([`Calibration`]: its counts and its forecasts of them a step ahead, over about a
//! day): its own record `(y, f)` with its *age group's* ratio `g` as a prior worth
//! [`CALIBRATION_PRIOR`] forecast requests, `(y + K·g) / (f + K)`, at most [`MAX_SCALE`].
//! An age group is the series of one family tracked for the same whole number of days (up
//! to the history's); keys that fade with age, as a day's new keys do, are forecast too
//! high by every method that looks back over days, alike at one age, and their group says
//! by how much where a key's own record lags a day behind.
//!
//! A family (the series of one prefix) is *flat* when, over all its series, `level`
//! has been more accurate than `days`, and `profile` not clearly more accurate than
//! `level` (by less than 5%): its keys' demand does not depend on the time of day, so a
//! key's own count at one hour over a week is noise around its level. Its keys weigh the
//! family's (flat) shape as [`FLAT_PROFILE_PRIOR_DAYS`] days instead of
//! [`PROFILE_PRIOR_DAYS`], and their `profile` is close to their level. In a family whose
//! keys peak at hours of their own, the family's shape is only a blur of theirs, and
//! their own counts decide.

use super::HoltWinters;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The smallest rate a forecast is scored at (a forecast of 0 is not certain).
pub const MIN_RATE: f64 = 0.01;
/// The largest loss of one step (a confident forecast of a step that had no request).
pub const MAX_LOSS: f64 = 10.0;
/// Pseudo-steps of prior evidence a series' own record is weighed against.
pub const SHRINK_STEPS: f64 = 96.0;
/// Pseudo-steps of age-wide evidence a prefix's record is weighed against.
pub const SHRINK_GROUP_STEPS: f64 = 24.0;

/// Forecast requests of a series' own [`Calibration`] that its age group's ratio counts for
/// in the scale of its forecasts ([`Forecasters::set_scale`]).
pub const CALIBRATION_PRIOR: f64 = 100.0;
/// The largest scale of a series' forecasts: a family flooded with requests its forecasts
/// did not expect raises its keys' forecasts at most this many times.
pub const MAX_SCALE: f64 = 10.0;

/// Days of a series' own counts at a time of day that its family's shape counts for in
/// the `profile` forecast: a series with no history there follows its family's shape, one
/// with a week of it mostly its own.
pub const PROFILE_PRIOR_DAYS: f64 = 2.0;

/// [`PROFILE_PRIOR_DAYS`] in a *flat* family, one whose series' `level` has been more
/// accurate than their `days` and their `profile` not clearly more accurate than their
/// `level` ([`Forecasters::set_flat_family`]): there the family's shape (flat) is the truth
/// and a series' own counts at one time of day over a week are mostly noise, so a week of
/// them counts for a fifth of the forecast, not for most of it.
pub const FLAT_PROFILE_PRIOR_DAYS: f64 = 28.0;

/// A forecaster a series can choose.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// The mean of the same step over the past days.
    #[default]
    Days,
    /// The series' own counts at the step's time of day over the past days, shrunk toward
    /// its level times its family's (prefix's) daily profile at the step.
    Profile,
    /// The mean per step over about the history (a week by default).
    Level,
    /// The Holt-Winters model.
    HoltWinters,
    /// The same step one day before.
    Day,
    /// The same step one week before.
    Week,
    /// The last step.
    Recent,
}

/// Number of methods.
pub const METHODS: usize = 7;

impl Method {
    /// Every method; ties go to the first.
    pub const ALL: [Method; METHODS] = [
        Method::Days,
        Method::Profile,
        Method::Level,
        Method::HoltWinters,
        Method::Day,
        Method::Week,
        Method::Recent,
    ];

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Days => "days",
            Method::Profile => "profile",
            Method::Level => "level",
            Method::HoltWinters => "holt-winters",
            Method::Day => "day",
            Method::Week => "week",
            Method::Recent => "recent",
        }
    }

    pub(crate) fn index(self) -> usize {
        Method::ALL.iter().position(|&m| m == self).expect("listed")
    }
}

/// The lengths the methods look back over, in steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seasons {
    /// Steps per day (the `day` lag).
    pub day: usize,
    /// Steps of history kept; `week` needs at least `7 × day`.
    pub history: usize,
}

impl Seasons {
    fn week(&self) -> Option<usize> {
        (self.history >= 7 * self.day).then_some(7 * self.day)
    }
}

/// Decayed evidence of each method's accuracy: loss sums and scored steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Decayed sum of each method's losses (in [`Method::ALL`] order).
    pub loss: [f64; METHODS],
    /// Decayed count of the steps each method was scored on.
    pub scored: [f64; METHODS],
}

impl Evidence {
    /// Adds `other`'s evidence.
    pub fn add(&mut self, other: &Evidence) {
        for i in 0..METHODS {
            self.loss[i] += other.loss[i];
            self.scored[i] += other.scored[i];
        }
    }

    /// Mean losses shrunk toward `prior` by `k` pseudo-steps.
    pub fn shrunk(&self, prior: &[f64; METHODS], k: f64) -> [f64; METHODS] {
        std::array::from_fn(|i| (self.loss[i] + k * prior[i]) / (self.scored[i] + k))
    }

    /// Mean losses; a method never scored is taken to be no better than the worst
    /// one scored ([`MAX_LOSS`] when none was), so it is not chosen on no evidence.
    pub fn means(&self) -> [f64; METHODS] {
        let mean = |i: usize| (self.scored[i] > 0.0).then(|| self.loss[i] / self.scored[i]);
        let worst = (0..METHODS)
            .filter_map(mean)
            .fold(None, |w: Option<f64>, m| Some(w.map_or(m, |w| w.max(m))));
        std::array::from_fn(|i| mean(i).or(worst).unwrap_or(MAX_LOSS))
    }
}

/// The log-loss of "requested in the step" for a forecast `rate` and the step's count `y`.
pub fn loss(rate: f64, y: u64) -> f64 {
    let rate = rate.max(MIN_RATE);
    if y > 0 {
        -(-(-rate).exp()).ln_1p()
    } else {
        rate.min(MAX_LOSS)
    }
}

/// A series' (or an age group's) counts and its forecasts of them one step ahead,
/// decayed by `1 − 1/d` a step (about a day): how far its forecasts ran above or below
/// what came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Decayed sum of its counts.
    pub requests: f64,
    /// Decayed sum of its forecasts of them.
    pub forecast: f64,
}

/// A total of [`Calibration`]s kept in fixed point (2⁻³² of a request), so that it comes out
/// the same in whatever order they are added: a restored tracker visits its series in
/// another order than the one it was saved from, and must forecast as that one would.
#[derive(Debug, Clone, Copy, Default)]
pub struct CalibrationTotal {
    requests: i128,
    forecast: i128,
}

impl CalibrationTotal {
    const ONE: f64 = (1u64 << 32) as f64;

    /// Adds a calibration.
    pub fn add(&mut self, calibration: &Calibration) {
        // `as` saturates, and so does the sum: no input overflows it.
        self.requests = self
            .requests
            .saturating_add((calibration.requests * Self::ONE).round() as i128);
        self.forecast = self
            .forecast
            .saturating_add((calibration.forecast * Self::ONE).round() as i128);
    }

    /// The total.
    pub fn total(&self) -> Calibration {
        Calibration {
            requests: self.requests as f64 / Self::ONE,
            forecast: self.forecast as f64 / Self::ONE,
        }
    }
}

impl Calibration {
    /// Takes a step's count `y` and the forecast made of it, the older sums decayed by `decay`.
    fn observe(&mut self, y: u64, forecast: f64, decay: f64) {
        self.requests = decay * self.requests + y as f64;
        self.forecast = decay * self.forecast + forecast;
    }

    /// Its requests over its forecasts, each with one more (1 without evidence).
    pub fn ratio(&self) -> f64 {
        (self.requests + 1.0) / (self.forecast + 1.0)
    }
}

/// Decayed sums over a series' (or a family's) successive surprises, from which
/// [`Surprises::persistence`] estimates how much of a surprise carries on (see the
/// module docs; `r` a step's surprise, `f` the forecast it is measured against).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Surprises {
    /// `Σ r_{t−1} · r_t` over successive steps.
    successive: f64,
    /// `Σ f_{t−1} · f_t` over the same steps.
    successive_forecasts: f64,
    /// `Σ (r_t² − f_t)`: the surprises' spread beyond Poisson noise.
    excess: f64,
    /// `Σ f_t²`.
    forecasts_squared: f64,
}

impl Surprises {
    /// Adds `other`'s sums.
    pub fn add(&mut self, other: &Surprises) {
        self.successive += other.successive;
        self.successive_forecasts += other.successive_forecasts;
        self.excess += other.excess;
        self.forecasts_squared += other.forecasts_squared;
    }

    /// Takes the surprise `(r, f)` of a step after `previous`, that of the step before,
    /// the older sums decayed by `decay`.
    fn observe(&mut self, previous: (f64, f64), (r, f): (f64, f64), decay: f64) {
        self.successive = decay * self.successive + previous.0 * r;
        self.successive_forecasts = decay * self.successive_forecasts + previous.1 * f;
        self.excess = decay * self.excess + r * r - f;
        self.forecasts_squared = decay * self.forecasts_squared + f * f;
    }

    /// These sums times `weight`.
    pub fn scaled(&self, weight: f64) -> Surprises {
        Surprises {
            successive: weight * self.successive,
            successive_forecasts: weight * self.successive_forecasts,
            excess: weight * self.excess,
            forecasts_squared: weight * self.forecasts_squared,
        }
    }

    /// The persistence these sums estimate (none without evidence of it).
    pub fn persistence(&self) -> Persistence {
        let covariance = match self.successive_forecasts > 0.0 {
            true => (self.successive / self.successive_forecasts).max(0.0),
            false => 0.0,
        };
        let variance = match self.forecasts_squared > 0.0 {
            true => (self.excess / self.forecasts_squared).max(covariance),
            false => 0.0,
        };
        Persistence { covariance, variance }
    }
}

/// How a surprise carries on (see the module docs): the relative demand factor's
/// covariance between successive steps (`ρs²`) and its variance (`s²`, at least that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Persistence {
    /// `ρs²`.
    pub covariance: f64,
    /// `s²`.
    pub variance: f64,
}

impl Persistence {
    /// What a surprise `r` against a forecast `f` adds to the forecast `forecast` of the
    /// step `h ≥ 1` steps later.
    fn carried(&self, h: u64, (r, f): (f64, f64), forecast: f64) -> f64 {
        if self.covariance <= 0.0 || r == 0.0 {
            return 0.0;
        }
        let rho = (self.covariance / self.variance).min(1.0);
        let share = rho.powi(h.clamp(1, 64) as i32 - 1) * self.covariance / (self.variance * f.max(0.0) + 1.0);
        forecast.max(0.0) * share * r
    }
}

/// A series' recent counts, smoothed level, methods' evidence and chosen method.
/// The default (what a state saved before it existed loads as) knows nothing yet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Forecasters {
    /// Requests per step by absolute step modulo the history's length.
    counts: Vec<u32>,
    /// The latest step observed.
    latest: Option<u64>,
    /// Requests per step, smoothed.
    level: f64,
    /// Steps observed, up to the level's horizon (its running start).
    observed: u32,
    /// The first step observed.
    first: Option<u64>,
    /// The prior the choice was made with (the neighbours' shrunk mean losses).
    prior: [f64; METHODS],
    /// Each method's evidence.
    evidence: Evidence,
    /// The method in use.
    chosen: Method,
    /// Whether its family is flat (see [`FLAT_PROFILE_PRIOR_DAYS`]).
    flat_family: bool,
    /// The latest step's surprise and the forecast it is measured against (`(0, 0)`
    /// after a gap in the steps observed).
    surprise: (f64, f64),
    /// Its surprises' sums.
    surprises: Surprises,
    /// Its family's persistence, which its forecasts carry the latest surprise by.
    persistence: Persistence,
    /// Its counts and its forecasts of them a step ahead, summed over about a day.
    calibration: Calibration,
    /// What its forecasts are scaled by, from its own and its age group's calibration
    /// ([`Forecasters::set_scale`]; `None`, as in a state saved before it existed: 1).
    scale: Option<f64>,
    /// The sum of `counts` (kept as they change, for [`Forecasters::demand`]); not saved,
    /// recounted once after a load.
    #[serde(skip)]
    counts_sum: Option<u64>,
    /// The sum of `counts` by step of the day (position modulo the steps per day), kept
    /// as they change when the history is whole days, so that the mean of a step over the
    /// past days is one read; not saved, recounted at the first step after a load.
    #[serde(skip)]
    by_time_of_day: Vec<u64>,
    /// Its shape at one step (the step and [`Forecasters::profile_at`] there), noted for
    /// the keys of its family to read ([`Forecasters::note_next_shape`]); not saved.
    #[serde(skip)]
    next_shape: Option<(u64, Option<f64>)>,
}

/// Why a forecast is what it is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The method used.
    pub method: Method,
    /// The forecast, requests in the step.
    pub forecast: f64,
    /// In a sentence, e.g. "weekly seasonal: the same hour a week before had 412 requests".
    pub reason: String,
    /// The method's mean loss per step, shrunk toward its neighbours'.
    pub mean_loss: f64,
}

impl Forecasters {
    /// The count of `step`: 0 when not observed or out of the history.
    fn count(&self, step: u64) -> u32 {
        match self.latest {
            Some(latest) if step <= latest && latest - step < self.counts.len() as u64 => {
                self.counts[(step % self.counts.len() as u64) as usize]
            }
            _ => 0,
        }
    }

    /// Each method's forecast of the step `h ≥ 1` steps after the latest (`None`: not available).
    /// The ratio of the step `target` to the typical step in this series' profile: the mean
    /// of the same step over the past days over the level (`None` without history or level).
    fn profile_at(&self, target: u64, seasons: &Seasons) -> Option<f64> {
        match self.next_shape {
            Some((step, ratio)) if step == target && self.latest.is_some_and(|l| l < step) => ratio,
            _ => self
                .same_step_mean(target, seasons)
                .filter(|_| self.level > 0.0)
                .map(|mean| mean / self.level),
        }
    }

    /// Notes its [`Forecasters::profile_at`] the step after the latest: a family's shape
    /// there is what every key of it reads, several times, before the family's next step.
    pub fn note_next_shape(&mut self, seasons: &Seasons) {
        self.next_shape = None;
        self.next_shape = self
            .latest
            .map(|latest| (latest + 1, self.profile_at(latest + 1, seasons)));
    }

    /// Whether `step` was observed since the series began and is still in the history: a
    /// lag into the time before it was tracked says nothing (when the tracker started,
    /// every series was new), so a lag method is neither used nor scored before it
    /// reaches back that far.
    fn known(&self, step: u64) -> bool {
        match (self.first, self.latest) {
            (Some(first), Some(latest)) => (first..=latest).contains(&step) && latest - step < self.counts.len() as u64,
            _ => false,
        }
    }

    /// The step `days` whole days before `target`, if known.
    fn lag(&self, target: u64, days: u64, seasons: &Seasons) -> Option<u64> {
        target
            .checked_sub(days * seasons.day.max(1) as u64)
            .filter(|&s| self.known(s))
    }

    /// The mean count of the steps whole days before `target` within the history.
    fn same_step_mean(&self, target: u64, seasons: &Seasons) -> Option<f64> {
        let (sum, days) = self.same_step_sum(target, seasons);
        (days > 0).then(|| sum as f64 / f64::from(days))
    }

    /// The known steps, `oldest..=latest`, as `(latest, oldest, history length, steps per
    /// day)`; `None` before the first observation.
    fn span(&self, seasons: &Seasons) -> Option<(u64, u64, u64, u64)> {
        let (first, latest) = (self.first?, self.latest?);
        let len = self.counts.len() as u64;
        Some((
            latest,
            first.max((latest + 1).saturating_sub(len)),
            len,
            seasons.day.max(1) as u64,
        ))
    }

    /// The summed count of the steps whole days before `target` within the history, and
    /// how many days that is.
    fn same_step_sum(&self, target: u64, seasons: &Seasons) -> (u64, u32) {
        let Some((latest, oldest, len, day)) = self.span(seasons) else {
            return (0, 0);
        };
        if self.by_time_of_day.len() as u64 == day && target > latest && target - latest <= day {
            // Within a day of the latest, the lags are the history's every step at the
            // target's time of day (those before `first` hold 0).
            let days = ((target - oldest) / day).min(len / day);
            return (self.by_time_of_day[(target % day) as usize], days as u32);
        }
        self.same_step_sum_by_lags(target, seasons)
    }

    /// [`Forecasters::same_step_sum`] added up a day at a time back from `target`.
    fn same_step_sum_by_lags(&self, target: u64, seasons: &Seasons) -> (u64, u32) {
        let Some((latest, oldest, len, day)) = self.span(seasons) else {
            return (0, 0);
        };
        let (mut sum, mut n) = (0u64, 0u32);
        let mut step = target;
        for _ in 0..(len / day).max(1) {
            let Some(before) = step.checked_sub(day).filter(|&s| s >= oldest) else {
                break;
            };
            step = before;
            if step <= latest {
                sum += u64::from(self.counts[(step % len) as usize]);
                n += 1;
            }
        }
        (sum, n)
    }

    /// Every method's forecast of the step `h ≥ 1` steps after the latest (the days' sum
    /// that `days` and `profile` share is added up once).
    fn forecasts(
        &self,
        h: u64,
        model: Option<&HoltWinters>,
        family: Option<&Forecasters>,
        seasons: &Seasons,
    ) -> [Option<f64>; METHODS] {
        let Some(latest) = self.latest else {
            return [None; METHODS];
        };
        let same_step = self.same_step_sum(latest + h.max(1), seasons);
        std::array::from_fn(|i| self.forecast_with(Method::ALL[i], h, same_step, model, family, seasons))
    }

    /// `method`'s forecast of the step `h ≥ 1` steps after the latest (`None`: not available).
    fn forecast_by(
        &self,
        method: Method,
        h: u64,
        model: Option<&HoltWinters>,
        family: Option<&Forecasters>,
        seasons: &Seasons,
    ) -> Option<f64> {
        let target = self.latest? + h.max(1);
        let same_step = match method {
            Method::Days | Method::Profile => self.same_step_sum(target, seasons),
            _ => (0, 0),
        };
        self.forecast_with(method, h, same_step, model, family, seasons)
    }

    /// [`Forecasters::forecast_by`], given the sum of the steps whole days before the
    /// target and their number ([`Forecasters::same_step_sum`]; read by `days` and `profile`).
    fn forecast_with(
        &self,
        method: Method,
        h: u64,
        (sum, days): (u64, u32),
        model: Option<&HoltWinters>,
        family: Option<&Forecasters>,
        seasons: &Seasons,
    ) -> Option<f64> {
        let latest = self.latest?;
        let target = latest + h.max(1);
        let day = seasons.day.max(1) as u64;
        match method {
            Method::Recent => Some(f64::from(self.count(latest))),
            Method::Level => Some(self.level),
            Method::Day => self
                .lag(target, h.max(1).div_ceil(day), seasons)
                .map(|s| f64::from(self.count(s))),
            Method::Days => (days > 0).then(|| sum as f64 / f64::from(days)),
            Method::Week => seasons
                .week()
                .and_then(|w| target.checked_sub(w as u64))
                .filter(|&s| self.known(s))
                .map(|s| f64::from(self.count(s))),
            Method::Profile => family.and_then(|f| f.profile_at(target, seasons)).map(|ratio| {
                // The series' own counts at that time of day over the past days, with its
                // family's shape at its level as a prior worth `profile_prior_days()` days.
                let weight = self.profile_prior_days();
                (sum as f64 + weight * self.level * ratio) / (f64::from(days) + weight)
            }),
            Method::HoltWinters => model
                .filter(|m| m.is_ready())
                .map(|m| m.forecast_at(h as usize).max(0.0)),
        }
    }

    /// Whether `method` has a forecast of the next step ([`Forecasters::forecast_by`] at
    /// `h = 1` is `Some`), without making it.
    fn has_next(&self, method: Method, model: &HoltWinters, family: Option<&Forecasters>, seasons: &Seasons) -> bool {
        let Some(latest) = self.latest else {
            return false;
        };
        let target = latest + 1;
        match method {
            Method::Recent | Method::Level => true,
            // The day before the target is the newest of the days `days` averages.
            Method::Day | Method::Days => self.lag(target, 1, seasons).is_some(),
            Method::Week => self.forecast_by(method, 1, None, None, seasons).is_some(),
            Method::Profile => family.is_some_and(|f| f.profile_at(target, seasons).is_some()),
            Method::HoltWinters => model.is_ready(),
        }
    }

    /// Takes the count `y` of `step` (after the latest): scores each method's
    /// forecast of it (`model` not yet updated), then records it.
    /// `family` is the series of its prefix (for a key), not yet updated either.
    pub fn observe(&mut self, step: u64, y: u64, model: &HoltWinters, family: Option<&Forecasters>, seasons: &Seasons) {
        if self.counts.len() != seasons.history.max(1) {
            *self = Forecasters::default();
            self.counts = vec![0; seasons.history.max(1)];
        }
        if let Some(latest) = self.latest {
            if step <= latest {
                return;
            }
            let decay = 1.0 - 1.0 / self.counts.len() as f64;
            let forecasts = self.forecasts(step - latest, Some(model), family, seasons);
            let forecast = forecasts[self.chosen.index()].unwrap_or(self.level).max(0.0);
            let surprise = (y as f64 - forecast, forecast);
            if step - latest == 1 {
                // What the series forecast of this step, before its scale.
                let made = (forecast + self.persistence.carried(1, self.surprise, forecast)).max(0.0);
                self.calibration.observe(y, made, 1.0 - 1.0 / seasons.day.max(1) as f64);
                self.surprises.observe(self.surprise, surprise, decay);
                self.surprise = surprise;
            } else {
                self.surprise = (0.0, 0.0);
            }
            for (i, forecast) in forecasts.iter().enumerate() {
                if let Some(rate) = forecast {
                    self.evidence.loss[i] = decay * self.evidence.loss[i] + loss(*rate, y);
                    self.evidence.scored[i] = decay * self.evidence.scored[i] + 1.0;
                }
            }
        }
        let mut sum = self
            .counts_sum
            .unwrap_or_else(|| self.counts.iter().map(|&c| u64::from(c)).sum());
        let len = self.counts.len() as u64;
        let day = seasons.day.max(1) as u64;
        if len.is_multiple_of(day) && self.by_time_of_day.len() as u64 != day {
            self.by_time_of_day = vec![0; day as usize];
            for (i, &count) in self.counts.iter().enumerate() {
                self.by_time_of_day[i % day as usize] += u64::from(count);
            }
        }
        let by_time_of_day = &mut self.by_time_of_day;
        let mut set = |at: u64, count: u32| {
            let slot = &mut self.counts[(at % len) as usize];
            sum = sum - u64::from(*slot) + u64::from(count);
            if let Some(same_time) = by_time_of_day.get_mut((at % day) as usize) {
                *same_time = *same_time - u64::from(*slot) + u64::from(count);
            }
            *slot = count;
        };
        if let Some(latest) = self.latest {
            for gap in (latest + 1)..step.min(latest + 1 + len) {
                set(gap, 0);
            }
        }
        set(step, u32::try_from(y).unwrap_or(u32::MAX));
        self.counts_sum = Some(sum);
        self.latest = Some(step);
        self.first.get_or_insert(step);
        // The level: a running mean at first, then smoothed over the history (at least two days).
        let horizon = (2 * seasons.day.max(1)).max(seasons.history) as u32;
        self.observed = (self.observed + 1).min(horizon);
        self.level += (y as f64 - self.level) / f64::from(self.observed);
    }

    /// The evidence so far.
    pub fn evidence(&self) -> &Evidence {
        &self.evidence
    }

    /// Marks its family flat or not: whether the family's series, together, forecast better
    /// by their `level` than by their `days`, and not clearly better by their `profile`
    /// (the tracker decides each step; see the module docs).
    pub fn set_flat_family(&mut self, flat: bool) {
        self.flat_family = flat;
    }

    /// The days of history its family's shape counts for in its `profile` forecast:
    /// [`FLAT_PROFILE_PRIOR_DAYS`] in a flat family, [`PROFILE_PRIOR_DAYS`] otherwise.
    pub fn profile_prior_days(&self) -> f64 {
        if self.flat_family {
            FLAT_PROFILE_PRIOR_DAYS
        } else {
            PROFILE_PRIOR_DAYS
        }
    }

    /// Its surprises' sums (a family's [`Persistence`] is estimated from its series').
    pub fn surprises(&self) -> &Surprises {
        &self.surprises
    }

    /// Sets its family's persistence.
    pub fn set_persistence(&mut self, persistence: Persistence) {
        self.persistence = persistence;
    }

    /// Its counts and forecasts of them over about the last day.
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Sets the scale of its forecasts from its own calibration with `group` (its age
    /// group's [`Calibration::ratio`]) as a prior worth [`CALIBRATION_PRIOR`] forecast
    /// requests, at most [`MAX_SCALE`].
    pub fn set_scale(&mut self, group: f64) {
        let own = &self.calibration;
        let scale = (own.requests + CALIBRATION_PRIOR * group) / (own.forecast + CALIBRATION_PRIOR);
        self.scale = Some(scale.min(MAX_SCALE));
    }

    /// Its family's persistence, as last set.
    pub fn persistence(&self) -> Persistence {
        self.persistence
    }

    /// The method in use.
    pub fn chosen(&self) -> Method {
        self.chosen
    }

    /// Chooses the method of least mean loss shrunk toward `prior`.
    pub fn choose(
        &mut self,
        prior: [f64; METHODS],
        model: &HoltWinters,
        family: Option<&Forecasters>,
        seasons: &Seasons,
    ) {
        let shrunk = self.evidence.shrunk(&prior, SHRINK_STEPS);
        self.prior = prior;
        // The least loss first (ties to the first listed), then the first that has a forecast.
        let mut order: [usize; METHODS] = std::array::from_fn(|i| i);
        order.sort_by(|&a, &b| shrunk[a].total_cmp(&shrunk[b]));
        self.chosen = order
            .into_iter()
            .map(|i| Method::ALL[i])
            .find(|&m| self.has_next(m, model, family, seasons))
            .unwrap_or(Method::Recent);
    }

    /// The forecast of the step `h ≥ 1` steps after the latest, by the chosen
    /// method (the level where that method has nothing to say yet), with it.
    pub fn forecast(
        &self,
        h: u64,
        model: &HoltWinters,
        family: Option<&Forecasters>,
        seasons: &Seasons,
    ) -> (f64, Method) {
        let (forecast, _, _, method) = self.carrying(h, model, family, seasons);
        (forecast, method)
    }

    /// The forecast `h` steps ahead (at least 0, scaled), the chosen method's before the
    /// latest surprise is carried, what that adds, and the method.
    fn carrying(
        &self,
        h: u64,
        model: &HoltWinters,
        family: Option<&Forecasters>,
        seasons: &Seasons,
    ) -> (f64, f64, f64, Method) {
        let (base, method) = self.uncarried(h, model, family, seasons);
        let carried = self.persistence.carried(h, self.surprise, base);
        ((base + carried).max(0.0) * self.scale(), base, carried, method)
    }

    /// What its forecasts are scaled by (see [`Forecasters::set_scale`]).
    pub fn scale(&self) -> f64 {
        self.scale.unwrap_or(1.0)
    }

    /// [`Forecasters::forecast`] before the latest surprise is carried.
    fn uncarried(&self, h: u64, model: &HoltWinters, family: Option<&Forecasters>, seasons: &Seasons) -> (f64, Method) {
        match self.forecast_by(self.chosen, h, Some(model), family, seasons) {
            Some(rate) => (rate, self.chosen),
            None => (
                self.forecast_by(Method::Level, h, Some(model), family, seasons)
                    .unwrap_or(0.0),
                Method::Level,
            ),
        }
    }

    /// The forecast `h` steps ahead and why, in words; `step_name` names a step ("Monday 08:00").
    pub fn explain(
        &self,
        h: u64,
        model: &HoltWinters,
        family: Option<&Forecasters>,
        seasons: &Seasons,
        step_name: impl Fn(u64) -> String,
    ) -> Explanation {
        let (forecast, base, carried, method) = self.carrying(h, model, family, seasons);
        let target = self.latest.unwrap_or(0) + h.max(1);
        let day = seasons.day.max(1) as u64;
        let mut reason = String::new();
        let _ = match method {
            Method::Recent => write!(reason, "recent: the last step had {base:.0} requests"),
            Method::Level => write!(reason, "level: {base:.1} requests per step on average lately"),
            Method::Day => write!(
                reason,
                "daily seasonal: {} had {base:.0} requests",
                step_name(target.saturating_sub(day))
            ),
            Method::Profile => write!(
                reason,
                "profile: {base:.1} requests at this time of day, from its past days and its family's shape (worth {:.0} days{}) at its {:.1} requests per step on average",
                self.profile_prior_days(),
                if self.flat_family { ", a flat family" } else { "" },
                self.level
            ),
            Method::Days => write!(
                reason,
                "daily seasonal: {base:.1} requests on average at this time over the past days"
            ),
            Method::Week => write!(
                reason,
                "weekly seasonal: {} had {base:.0} requests",
                step_name(target.saturating_sub(7 * day))
            ),
            Method::HoltWinters => write!(
                reason,
                "Holt-Winters: level {:.1}, trend {:+.2} per step, daily offset {:+.1}",
                model.level(),
                model.trend(),
                base - model.level() - h as f64 * model.trend()
            ),
        };
        if carried != 0.0 {
            let _ = write!(
                reason,
                "; {carried:+.1} carried from the last step, {:+.1} requests against its forecast of {:.1} (its family's surprises persist: ρs² {:.2}, s² {:.2})",
                self.surprise.0, self.surprise.1, self.persistence.covariance, self.persistence.variance
            );
        }
        if self.scale() != 1.0 {
            let _ = write!(
                reason,
                "; ×{:.2}: lately its forecasts, and those of its family's keys tracked as long, ran {} what came",
                self.scale(),
                if self.scale() < 1.0 { "above" } else { "below" }
            );
        }
        Explanation {
            method,
            forecast,
            reason,
            mean_loss: self.evidence.shrunk(&self.prior, SHRINK_STEPS)[method.index()],
        }
    }

    /// Typical requests per step over the history observed, and at least a day
    /// (what eviction keeps the busiest by): a series starts being tracked on a step it
    /// was requested in, so over its first steps alone one request would look busier
    /// than a key requested every hour; before it was tracked it counts as quiet.
    pub fn demand(&self, seasons: &Seasons) -> f64 {
        match (self.first, self.latest) {
            (Some(first), Some(latest)) => {
                let steps = (latest - first + 1)
                    .min(self.counts.len() as u64)
                    .max(seasons.day.max(1) as u64);
                let sum = self
                    .counts_sum
                    .unwrap_or_else(|| self.counts.iter().map(|&c| u64::from(c)).sum());
                sum as f64 / steps as f64
            }
            _ => 0.0,
        }
    }

    /// Estimated size in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.counts.capacity() * 4 + self.by_time_of_day.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::HoltWintersParams;

    const SEASONS: Seasons = Seasons { day: 24, history: 168 };

    /// A series fed `counts` one step at a time from step `first`, choosing every step with
    /// the prior a series without neighbours has in the tracker: its own mean losses.
    fn fed(first: u64, counts: impl IntoIterator<Item = u64>) -> (Forecasters, HoltWinters) {
        let mut series = Forecasters::default();
        let mut model = HoltWinters::with_phase(HoltWintersParams::default(), (first % 24) as usize);
        for (i, y) in counts.into_iter().enumerate() {
            series.observe(first + i as u64, y, &model, None, &SEASONS);
            model.observe(y as f64);
            let alone = series.evidence().means();
            series.choose(alone, &model, None, &SEASONS);
        }
        (series, model)
    }

    #[test]
    fn a_flash_crowd_is_forgotten_as_soon_as_it_ends() {
        // Busy for three steps from its first one, then silent.
        let (series, model) = fed(1000, [400, 200, 100, 0, 0]);
        let (forecast, method) = series.forecast(1, &model, None, &SEASONS);
        assert_eq!(forecast, 0.0, "{series:?}");
        assert_ne!(method, Method::Level, "its mean still remembers the crowd");
        // During the crowd, it is forecast busy (the seasonal lags, which say 0, lost).
        let (series, model) = fed(1000, [400, 200]);
        assert!(series.forecast(1, &model, None, &SEASONS).0 >= 200.0, "{series:?}");
    }

    #[test]
    fn a_key_busy_at_one_hour_a_week_is_forecast_from_the_week_before() {
        // A newsletter key: 40 then 30 requests on Monday 08:00 and 09:00, nothing else; fed
        // for two weeks from Monday 08:00 until the third Monday 07:00 (the step before). At
        // the first repeat nothing said the week before was worth more than the quiet days
        // since; from then on it is the method that was right.
        let start = 7 * 24 * 2800 + 8;
        let counts = (0..336u64).map(|i| match i % 168 {
            0 => 40,
            1 => 30,
            _ => 0,
        });
        let (series, model) = fed(start, counts);
        assert_eq!(series.chosen(), Method::Week, "{series:?}");
        assert_eq!(series.forecast(1, &model, None, &SEASONS), (40.0, Method::Week));
        assert_eq!(series.forecast(2, &model, None, &SEASONS), (30.0, Method::Week));
        let why = series.explain(1, &model, None, &SEASONS, |step| format!("step {step}"));
        assert_eq!(
            why.reason,
            format!("weekly seasonal: step {} had 40 requests", start + 168)
        );
    }

    #[test]
    fn a_steady_key_is_forecast_by_its_level_and_a_daily_one_by_its_days() {
        // Noise around 3 per step (1 to 5, no period), every step, for a week.
        let steady = (0..168u64).map(|i| ((i * 2_654_435_761) >> 7) % 5 + 1);
        let (series, model) = fed(24 * 3000, steady);
        let (forecast, method) = series.forecast(1, &model, None, &SEASONS);
        assert!(
            matches!(method, Method::Level | Method::Days | Method::HoltWinters),
            "{series:?}"
        );
        assert!((forecast - 3.0).abs() < 1.0, "{forecast}");
        // Busy from 08:00 to 10:00 every day, never otherwise: the time of day decides.
        let daily = (0..168u64).map(|i| if (8..10).contains(&(i % 24)) { 20 } else { 0 });
        let (series, model) = fed(24 * 3000, daily);
        // The next step is 00:00: quiet; 08:00 is busy.
        assert!(series.forecast(1, &model, None, &SEASONS).0 < 1.0, "{series:?}");
        assert!(series.forecast(9, &model, None, &SEASONS).0 > 15.0, "{series:?}");
    }

    #[test]
    fn a_profile_follows_the_family_shape_until_the_series_has_days_of_its_own() {
        // The family is busy from 18:00 to 20:00; the key, from 08:00 to 10:00 every day.
        let start = 24 * 3000;
        let (family, _) = fed(
            start,
            (0..168u64).map(|i| if (18..20).contains(&(i % 24)) { 100 } else { 1 }),
        );
        let profile = |series: &Forecasters, model: &HoltWinters, h: u64| {
            series
                .forecast_by(Method::Profile, h, Some(model), Some(&family), &SEASONS)
                .expect("the family has a profile")
        };
        // After a week (the next step is 00:00): its own hours, not its family's.
        let (own, model) = fed(
            start,
            (0..168u64).map(|i| if (8..10).contains(&(i % 24)) { 20 } else { 0 }),
        );
        let (at_8, at_18) = (profile(&own, &model, 9), profile(&own, &model, 19));
        assert!(at_8 > 10.0 && at_18 < at_8 / 3.0, "08:00 {at_8}, 18:00 {at_18}");
        // Tracked for one step (23:00): nothing of its own at any time of day, so its
        // level times its family's shape.
        let (new, model) = fed(start + 167, [24]);
        let (at_8, at_18) = (profile(&new, &model, 9), profile(&new, &model, 19));
        assert!(at_18 > 10.0 * at_8, "08:00 {at_8}, 18:00 {at_18}");
    }

    #[test]
    fn in_a_flat_family_a_profile_stays_near_the_level() {
        // A flat family (1 request every step) and a key of 0 to 2 requests a step, 1 on
        // average, with no time of day of its own: a week of it.
        let start = 24 * 3000;
        let (family, _) = fed(start, (0..168u64).map(|_| 1));
        let noise = |i: u64| ((i * 2_654_435_761) >> 9) % 3;
        let (mut key, model) = fed(start, (0..168u64).map(noise));
        let level = key.level;
        assert!((level - 1.0).abs() < 0.2, "{level}");
        // Its profile at each hour of the next day: the mean distance to its level.
        let spread = |key: &Forecasters| {
            (1..=24u64)
                .map(|h| {
                    let rate = key
                        .forecast_by(Method::Profile, h, Some(&model), Some(&family), &SEASONS)
                        .expect("the family has a profile");
                    (rate - level).abs()
                })
                .sum::<f64>()
                / 24.0
        };
        assert_eq!(key.profile_prior_days(), PROFILE_PRIOR_DAYS);
        let own = spread(&key);
        key.set_flat_family(true);
        assert_eq!(key.profile_prior_days(), FLAT_PROFILE_PRIOR_DAYS);
        let flat = spread(&key);
        // Its own counts at an hour (7 of them) wander from its level; the flat family's
        // shape, weighed as four weeks, holds the forecast near it.
        assert!(own > 0.1 && flat < own / 3.0, "own {own}, flat {flat}");
        key.chosen = Method::Profile;
        let why = key.explain(1, &model, Some(&family), &SEASONS, |step| format!("step {step}"));
        assert!(why.reason.contains("worth 28 days, a flat family"), "{}", why.reason);
    }

    #[test]
    fn the_sums_by_time_of_day_match_the_lags_through_gaps_and_a_reload() {
        // Counts with gaps of a step, of hours and of more than the history, fed from a
        // step that is not a day's first; after each, every target within two days.
        let model = HoltWinters::new(HoltWintersParams::default());
        let mut series = Forecasters::default();
        let mut step = 24 * 3000 + 5;
        for i in 0..600u64 {
            step += match i % 97 {
                13 => 7,
                50 => 200,
                _ => 1 + i % 2,
            };
            series.observe(step, ((i * 2_654_435_761) >> 11) % 9, &model, None, &SEASONS);
            if i == 300 {
                // A reload drops the sums; they are rebuilt at the next step.
                series = serde_json::from_str(&serde_json::to_string(&series).unwrap()).unwrap();
                assert!(series.by_time_of_day.is_empty());
            }
            for target in step + 1..step + 48 {
                assert_eq!(
                    series.same_step_sum(target, &SEASONS),
                    series.same_step_sum_by_lags(target, &SEASONS),
                    "step {step}, target {target}"
                );
            }
        }
        assert_eq!(series.by_time_of_day.len(), 24);
    }

    #[test]
    fn a_surprise_that_lasts_is_carried_and_one_that_does_not_is_not() {
        // Spells of four steps at 0 or 8 requests (which, pseudo-random), against steps
        // each at 0 or 8 on its own; both forecast by their level (about 4).
        let model = HoltWinters::new(HoltWintersParams::default());
        let feed = |busy: &dyn Fn(u64) -> bool| {
            let mut series = Forecasters::default();
            for step in 0..400u64 {
                series.chosen = Method::Level;
                series.observe(24 * 3000 + step, if busy(step) { 8 } else { 0 }, &model, None, &SEASONS);
                series.set_persistence(series.surprises().persistence());
            }
            series
        };
        let coin = |i: u64| {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 63 == 1
        };
        // The last step (399) opens a busy spell.
        let spells = feed(&|step| if step >= 396 { true } else { coin(step / 4) });
        let persistence = spells.persistence();
        assert!(persistence.covariance > 0.3, "{persistence:?}");
        let (carried, _) = spells.forecast(1, &model, None, &SEASONS);
        let (level, _) = spells.uncarried(1, &model, None, &SEASONS);
        assert!(carried > level + 1.0, "carried {carried}, level {level}");
        let why = spells.explain(1, &model, None, &SEASONS, |step| format!("step {step}"));
        assert!(why.reason.contains("carried from the last step"), "{}", why.reason);
        // Saved and loaded, it carries the same.
        let loaded: Forecasters = serde_json::from_str(&serde_json::to_string(&spells).unwrap()).unwrap();
        assert_eq!(loaded.forecast(1, &model, None, &SEASONS).0, carried);
        // Steps on their own: a surprise says nothing of the next step.
        let flicker = feed(&|step| step == 399 || coin(step));
        let persistence = flicker.persistence();
        assert!(persistence.covariance < 0.05, "{persistence:?}");
        let (carried, _) = flicker.forecast(1, &model, None, &SEASONS);
        let (level, _) = flicker.uncarried(1, &model, None, &SEASONS);
        assert!((carried - level).abs() < 0.2, "carried {carried}, level {level}");
    }

    #[test]
    fn a_carried_surprise_is_at_most_the_surprise_over_the_forecast_it_beat() {
        // However large a family's persistence (a flood of surprises), a series whose
        // forecast was f and that saw r more carries at most r / f of a coming forecast:
        // its demand is taken to have grown by at most its surprise's share.
        for persistence in [
            Persistence {
                covariance: 1e12,
                variance: 1e12,
            },
            Persistence {
                covariance: 0.5,
                variance: 0.5,
            },
            Persistence {
                covariance: 0.1,
                variance: 3.0,
            },
        ] {
            for (r, f) in [(4e9, 1e-3), (1.0, 0.01), (-0.5, 0.5), (7.0, 3.0)] {
                for h in [1, 4, 1 << 40] {
                    let carried = persistence.carried(h, (r, f), 2.0);
                    assert!(carried.is_finite(), "{persistence:?} {r} {f} {h}");
                    assert!(
                        carried.abs() <= 2.0 * r.abs() / f,
                        "{persistence:?} {r} {f} {h}: {carried}"
                    );
                }
            }
        }
        assert_eq!(Persistence::default().carried(1, (5.0, 1.0), 2.0), 0.0);
    }

    #[test]
    fn a_scale_follows_the_series_record_and_its_group_and_is_bounded() {
        // Ten days at 4 requests an hour.
        let (mut series, model) = fed(0, std::iter::repeat_n(4, 240));
        let (forecast, _) = series.forecast(1, &model, None, &SEASONS);
        // Its own record says its forecasts were right: a group at half pulls it down a
        // little, as far as the prior's weight against its own day of forecasts.
        let own = *series.calibration();
        assert!((own.ratio() - 1.0).abs() < 0.05, "{own:?}");
        series.set_scale(0.5);
        let expected = (own.requests + CALIBRATION_PRIOR * 0.5) / (own.forecast + CALIBRATION_PRIOR);
        assert!((series.scale() - expected).abs() < 1e-12 && series.scale() < 1.0);
        let (scaled, _) = series.forecast(1, &model, None, &SEASONS);
        assert!(
            (scaled - forecast * series.scale()).abs() < 1e-9,
            "{scaled} against {forecast}"
        );
        // A group flooded far beyond its forecasts raises it at most MAX_SCALE times.
        series.set_scale(1e12);
        assert_eq!(series.scale(), MAX_SCALE);
        let (flooded, _) = series.forecast(1, &model, None, &SEASONS);
        assert!(flooded <= MAX_SCALE * forecast + 1e-9, "{flooded}");
    }

    #[test]
    fn losses_favour_a_forecast_of_whether_the_step_is_requested() {
        assert!(loss(0.0, 1) > 4.0 && loss(5.0, 1) < 0.01);
        assert_eq!(loss(50.0, 0), MAX_LOSS);
        assert_eq!(loss(0.0, 0), MIN_RATE);
        // A state saved before the forecasters existed loads as an empty one.
        let empty: Forecasters = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Forecasters::default());
        assert_eq!(
            empty
                .forecast(1, &HoltWinters::new(HoltWintersParams::default()), None, &SEASONS)
                .0,
            0.0
        );
    }
}
