//! preheat: a cache warming engine scripted with WebAssembly plugins.
//!
//! The data flow, one module per stage: [`config`] → [`runtime`] (sandboxed
//! plugins; [`sources`] the read-only SQL they may query) → [`plan`]
//! (validated, prioritised keys) → [`exec`] (batches, retries, deadline,
//! budget) → [`format`](mod@format) (the application's encoding and key layout) →
//! [`backend`] (write policy; Redis, memory or an SQL cache table) →
//! [`report`], recorded by [`jobs`] (history, run lock). [`cli`] is the
//! `preheat` binary on top; [`serve`] is the long-lived service (API,
//! [`schedule`]s, [`usage`]-driven and predictive warming, metrics,
//! dashboard) and [`watch`] the hot reload. [`support`] and [`wit`] (the
//! plugin interface's types) sit below everything; [`db`] is the SQL pool
//! shared by sources, the sql backend and jobs. Imports only point down this
//! list (ARCHITECTURE.md gives the order).

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
