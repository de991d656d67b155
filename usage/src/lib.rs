//! Usage intelligence for preheat: which keys users ask for now, which they
//! will ask for next, and whether warming them paid off.
//!
//! Everything here is a pure, synchronous algorithm over access events the
//! caller hands in, with timestamps in milliseconds supplied by the caller:
//! the library never reads the clock, never does I/O except through the trace
//! readers and writers it is given, and every piece of state is
//! `serde::Serialize + Deserialize` so the host can persist it.
//!
//! - [`event`]: [`AccessEvent`] and the offline trace formats (CSV, JSON lines).
//! - [`topk`]: Space-Saving heavy hitters and a count-min sketch, with error bounds.
//! - [`tracker`]: [`UsageTracker`], bounded-memory sliding windows, per-key and
//!   per-prefix time series, hot keys, trends and seasonal profiles.
//! - [`forecast`]: additive Holt-Winters and the predictor of next-step demand.
//! - [`effect`]: hit rate before and after, coverage, cost-benefit.
//! - [`simulate`]: replays a trace against a simulated cache under the warming
//!   strategies, and generates seasonal traces.
//!
//! `docs/USAGE.md` describes the model and the simulator's results.

#![warn(missing_docs)]

mod calendar;
pub mod effect;
pub mod event;
pub mod forecast;
mod ring;
mod sample;
pub mod simulate;
pub mod topk;
pub mod tracker;

pub use event::{AccessEvent, EventBounds};
pub use forecast::{HoltWinters, HoltWintersParams};
pub use tracker::{predict, Predicted, Prediction, TrackerConfig, UsageTracker};
