//! preheat: a cache warming engine scripted with WebAssembly plugins.
//!
//! The data flow, one module per stage:
//! [`config`] → [`runtime`] (sandboxed plugins) → [`plan`] (validated,
//! prioritised keys) → [`exec`] (batches, retries, deadline, budget) →
//! [`format`] (the application's encoding and key layout) →
//! [`backend`] (write policy, Redis or memory) → [`report`]. [`cli`] is the
//! `preheat` binary on top; [`serve`] is the long-lived service (API, schedules,
//! metrics, dashboard) and [`watch`] the hot reload.

pub mod backend;
pub mod cli;
pub mod config;
pub mod db;
pub mod exec;
pub mod format;
pub mod jobs;
pub mod plan;
pub mod report;
pub mod runtime;
pub mod schedule;
pub mod serve;
pub mod sources;
pub mod support;
pub mod usage;
pub mod watch;
pub mod wit;

pub use config::Config;
pub use exec::{RunOptions, Warmer};
pub use report::{Report, RunStatus};
