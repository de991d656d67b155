//! Demand forecasts: additive Holt-Winters, and the choice among simple
//! forecasters by their measured accuracy ([`Forecasters`]) that every series
//! of the tracker makes; [`crate::tracker::predict`] ranks their forecasts.
//!
//! # Additive Holt-Winters
//!
//! A series `y_t` (accesses per step, e.g. per hour) is modelled as a level
//! `ℓ`, a trend `b` (change of the level per step) and a seasonal offset
//! `s` for each of the `m` positions in the season (`m = 24` hourly steps
//! for a daily cycle, `168` for a weekly one). Each observation updates them:
//!
//! ```text
//! ℓ_t = α (y_t − s_{t−m}) + (1 − α)(ℓ_{t−1} + b_{t−1})
//! b_t = β (ℓ_t − ℓ_{t−1}) + (1 − β) b_{t−1}
//! s_t = γ (y_t − ℓ_t)     + (1 − γ) s_{t−m}
//! ŷ_{t+h} = ℓ_t + h·b_t + s_{t+h−m}        (h ≤ m; the seasonal term repeats)
//! ```
//!
//! `α` (level), `β` (trend) and `γ` (seasonal) are smoothing factors in
//! `[0, 1]`: larger means faster adaptation and noisier forecasts. The
//! defaults (`α = 0.05`, `β = 0.005`, `γ = 0.4`, `m = 24`) suit hourly access
//! counts with a daily cycle: the seasonal shape is mostly re-learned over
//! two to three days, while the level and trend move slowly, because with
//! peaky counts a large `α` lets one busy peak hour leak into the level and
//! inflate every off-peak forecast after it. They were chosen on the traces
//! of [`crate::simulate::generate`] (docs/USAGE.md has the figures).
//!
//! Initialisation: the first `m` observations are buffered; then the level
//! is their mean, the trend 0, and each seasonal offset the observation at
//! that position minus the mean. Before that, the forecast is the mean of the
//! observations so far (flat). A model may start at any position of the
//! season ([`HoltWinters::with_phase`]) so that position `i` always means the
//! same time of day.

mod choice;

pub use choice::{
    loss, Calibration, CalibrationTotal, Evidence, Explanation, Forecasters, Method, Persistence, Seasons, Surprises,
    CALIBRATION_PRIOR, FLAT_PROFILE_PRIOR_DAYS, MAX_LOSS, MAX_SCALE, METHODS, MIN_RATE, PROFILE_PRIOR_DAYS,
    SHRINK_GROUP_STEPS, SHRINK_STEPS,
};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// Holt-Winters smoothing factors and season length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HoltWintersParams {
    /// Level smoothing, in `[0, 1]`.
    pub alpha: f64,
    /// Trend smoothing, in `[0, 1]`.
    pub beta: f64,
    /// Seasonal smoothing, in `[0, 1]`.
    pub gamma: f64,
    /// Steps per season (at least 1).
    pub season: usize,
}

impl Default for HoltWintersParams {
    fn default() -> Self {
        HoltWintersParams {
            alpha: 0.05,
            beta: 0.005,
            gamma: 0.4,
            season: 24,
        }
    }
}

impl HoltWintersParams {
    /// Checks the factors are in `[0, 1]` and the season is at least one step.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [("alpha", self.alpha), ("beta", self.beta), ("gamma", self.gamma)] {
            ensure!(
                (0.0..=1.0).contains(&value),
                "{name} must be between 0 and 1, got {value}"
            );
        }
        ensure!(self.season >= 1, "the season must be at least one step");
        Ok(())
    }
}

/// An additive Holt-Winters model, updated one observation at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoltWinters {
    params: HoltWintersParams,
    level: f64,
    trend: f64,
    /// Offsets by position in the season.
    seasonal: Vec<f64>,
    /// Position in the season of the next observation.
    phase: usize,
    /// Observations buffered until the first full season (then emptied).
    warmup: Vec<f64>,
    ready: bool,
}

impl HoltWinters {
    /// A model whose first observation is at position 0 of the season.
    pub fn new(params: HoltWintersParams) -> Self {
        HoltWinters::with_phase(params, 0)
    }

    /// A model whose first observation is at position `phase` (mod the season).
    pub fn with_phase(params: HoltWintersParams, phase: usize) -> Self {
        let season = params.season.max(1);
        HoltWinters {
            params,
            level: 0.0,
            trend: 0.0,
            seasonal: vec![0.0; season],
            phase: phase % season,
            warmup: Vec::new(),
            ready: false,
        }
    }

    /// A model fitted to `series`, the first value at position 0.
    pub fn fit(params: HoltWintersParams, series: &[f64]) -> Self {
        let mut model = HoltWinters::new(params);
        for &y in series {
            model.observe(y);
        }
        model
    }

    /// The parameters.
    pub fn params(&self) -> &HoltWintersParams {
        &self.params
    }

    /// Whether a full season has been seen (before that, forecasts are flat).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The current level.
    pub fn level(&self) -> f64 {
        self.level
    }

    /// The typical value per step, seasonality aside: the level once a full
    /// season has been seen, the mean of the observations so far before.
    pub fn baseline(&self) -> f64 {
        if self.ready {
            self.level
        } else if self.warmup.is_empty() {
            0.0
        } else {
            self.warmup.iter().sum::<f64>() / self.warmup.len() as f64
        }
    }

    /// The current trend (level change per step).
    pub fn trend(&self) -> f64 {
        self.trend
    }

    /// The seasonal offsets, by position in the season.
    pub fn seasonal(&self) -> &[f64] {
        &self.seasonal
    }

    /// Takes the next observation.
    pub fn observe(&mut self, y: f64) {
        let m = self.seasonal.len();
        let i = self.phase;
        self.phase = (i + 1) % m;
        if !self.ready {
            self.warmup.push(y);
            if self.warmup.len() == m {
                self.level = self.warmup.iter().sum::<f64>() / m as f64;
                let first = (i + 1) % m;
                for (k, value) in self.warmup.drain(..).enumerate() {
                    self.seasonal[(first + k) % m] = value - self.level;
                }
                self.warmup.shrink_to_fit();
                self.ready = true;
            }
            return;
        }
        let HoltWintersParams { alpha, beta, gamma, .. } = self.params;
        let previous = self.level;
        let offset = self.seasonal[i];
        self.level = alpha * (y - offset) + (1.0 - alpha) * (previous + self.trend);
        self.trend = beta * (self.level - previous) + (1.0 - beta) * self.trend;
        self.seasonal[i] = gamma * (y - self.level) + (1.0 - gamma) * offset;
    }

    /// The forecast `h ≥ 1` steps after the last observation.
    pub fn forecast_at(&self, h: usize) -> f64 {
        if !self.ready {
            return self.baseline();
        }
        let m = self.seasonal.len();
        self.level + h as f64 * self.trend + self.seasonal[(self.phase + h.max(1) - 1) % m]
    }

    /// The next `h` forecasts.
    pub fn forecast(&self, h: usize) -> Vec<f64> {
        (1..=h).map(|step| self.forecast_at(step)).collect()
    }

    /// Estimated size in bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + (self.seasonal.capacity() + self.warmup.capacity()) * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    fn params(season: usize) -> HoltWintersParams {
        HoltWintersParams {
            alpha: 0.2,
            beta: 0.05,
            gamma: 0.3,
            season,
        }
    }

    #[test]
    fn a_seasonal_series_with_trend_is_forecast_closely() {
        let m = 24;
        let y = |t: usize| 50.0 + 0.1 * t as f64 + 20.0 * (TAU * t as f64 / m as f64).sin();
        let history: Vec<f64> = (0..10 * m).map(y).collect();
        let model = HoltWinters::fit(params(m), &history);
        assert!(model.is_ready());
        let forecast = model.forecast(m);
        for (h, predicted) in forecast.iter().enumerate() {
            let actual = y(10 * m + h);
            assert!(
                (predicted - actual).abs() < 1.5,
                "step {h}: predicted {predicted:.2}, actual {actual:.2}"
            );
        }
        assert!((model.trend() - 0.1).abs() < 0.03, "trend {}", model.trend());
        // The seasonal offsets have the shape of the sine.
        let peak = (0..m).max_by(|&a, &b| model.seasonal()[a].total_cmp(&model.seasonal()[b]));
        assert_eq!(peak, Some(6));
    }

    #[test]
    fn a_step_change_is_followed() {
        let m = 24;
        let shape = |t: usize| if t % m >= 18 { 30.0 } else { 5.0 };
        let y = |t: usize| shape(t) + if t >= 7 * m { 40.0 } else { 0.0 };
        // The worst one-step-ahead relative error on each day.
        let mut model = HoltWinters::new(params(m));
        let mut worst = vec![0.0f64; 14];
        for t in 0..14 * m {
            if model.is_ready() {
                let error = (model.forecast_at(1) - y(t)).abs() / y(t);
                worst[t / m] = worst[t / m].max(error);
            }
            model.observe(y(t));
        }
        assert!(worst[6] < 1e-9, "a repeating series is forecast exactly: {worst:?}");
        assert!(worst[7] > 0.5, "the jump cannot be anticipated: {worst:?}");
        assert!(
            worst[8..].windows(2).all(|w| w[1] < w[0]),
            "errors shrink day after day: {worst:?}"
        );
        assert!(worst[12] < 0.1, "within 10% five days later: {worst:?}");
    }

    #[test]
    fn before_a_full_season_the_forecast_is_the_mean_and_phase_aligns_positions() {
        let mut model = HoltWinters::with_phase(params(4), 2);
        assert_eq!(model.forecast_at(1), 0.0);
        for y in [1.0, 2.0, 3.0] {
            model.observe(y);
        }
        assert!(!model.is_ready());
        assert_eq!(model.forecast(2), vec![2.0, 2.0]);
        model.observe(6.0);
        // Observations were at positions 2, 3, 0, 1.
        assert_eq!(model.seasonal(), &[0.0, 3.0, -2.0, -1.0]);
        assert_eq!(model.forecast(4), vec![1.0, 2.0, 3.0, 6.0]);
        let json = serde_json::to_string(&model).unwrap();
        assert_eq!(serde_json::from_str::<HoltWinters>(&json).unwrap(), model);
    }

    #[test]
    fn parameters_are_validated() {
        assert!(HoltWintersParams::default().validate().is_ok());
        let bad = HoltWintersParams {
            gamma: 1.5,
            ..HoltWintersParams::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "gamma must be between 0 and 1, got 1.5"
        );
    }
}
