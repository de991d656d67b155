//! Prediction: [`predict`] asks every tracked key and prefix of a
//! [`UsageTracker`] for its forecast (by the method it chose) of the step that
//! contains a given instant and ranks them by predicted accesses.

use super::{Tracking, UsageTracker};
use crate::forecast::Method;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A key or prefix with its predicted accesses in a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    /// The key or prefix.
    pub name: String,
    /// Predicted accesses in the step (at least 0).
    pub count: f64,
    /// The forecaster that made it (the series' most accurate lately).
    pub method: Method,
}

/// What [`predict`] expects in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Start of the predicted step, in ms since the epoch.
    pub step_start_ms: u64,
    /// Length of the step, in ms.
    pub step_ms: u64,
    /// The tracked keys predicted busiest, busiest first.
    pub keys: Vec<Predicted>,
    /// The tracked prefixes predicted busiest, busiest first.
    pub prefixes: Vec<Predicted>,
}

/// Predicts accesses in the tracker step that contains `at_ms` (the current
/// step or a later one: the lead time), for the `n` busiest tracked keys and
/// prefixes. Ties are broken by name, so the result is deterministic.
pub fn predict(tracker: &UsageTracker, at_ms: u64, n: usize) -> Prediction {
    let step_ms = tracker.config().step_ms;
    let step = (at_ms / step_ms).max(tracker.current_step());
    let ahead = step - tracker.current_step() + 1;
    let rank = |kind: Tracking| {
        let mut predicted: Vec<Predicted> = tracker
            .forecasts(kind, ahead..=ahead)
            .map(|(name, count, method)| Predicted {
                name: name.to_string(),
                count: count.max(0.0),
                method,
            })
            .collect();
        predicted.sort_unstable_by(|a, b| b.count.total_cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        predicted.truncate(n);
        predicted
    };
    Prediction {
        step_start_ms: step * step_ms,
        step_ms,
        keys: rank(Tracking::Keys),
        prefixes: rank(Tracking::Prefixes),
    }
}
