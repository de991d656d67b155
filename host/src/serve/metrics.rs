//! Prometheus metrics of `serve` (`GET /metrics`): runs, keys by outcome,
//! bytes, fuel, deadline hits and produce latency, per plugin. Key counters are
//! added from each finished run's report, so they always match the reports.

use crate::exec::RunObserver;
use crate::report::Report;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    plugin: String,
    outcome: String,
}

/// The registry and every metric in it.
pub struct Metrics {
    registry: Registry,
    runs: Family<StatusLabel, Counter>,
    active_runs: Gauge,
    keys: Family<OutcomeLabels, Counter>,
    retries: Family<PluginLabel, Counter>,
    bytes: Family<PluginLabel, Counter>,
    fuel: Family<PluginLabel, Counter>,
    deadline_hits: Counter,
    produce_seconds: Family<PluginLabel, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered under the `preheat_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("preheat");
        let runs = Family::<StatusLabel, Counter>::default();
        let active_runs = Gauge::default();
        let keys = Family::<OutcomeLabels, Counter>::default();
        let retries = Family::<PluginLabel, Counter>::default();
        let bytes = Family::<PluginLabel, Counter>::default();
        let fuel = Family::<PluginLabel, Counter>::default();
        let deadline_hits = Counter::default();
        let produce_seconds = Family::<PluginLabel, Histogram>::new_with_constructor(|| {
            // 50 µs … ~26 s
            Histogram::new(exponential_buckets(0.00005, 2.0, 20))
        });
        registry.register("runs", "Finished runs by status", runs.clone());
        registry.register("active_runs", "Runs in progress", active_runs.clone());
        registry.register("keys", "Keys by plugin and outcome", keys.clone());
        registry.register(
            "retries",
            "Retries (plugin retry errors and transient backend errors)",
            retries.clone(),
        );
        registry.register("bytes_written", "Bytes of values written", bytes.clone());
        registry.register("fuel_consumed", "Fuel consumed by plugin calls", fuel.clone());
        registry.register("deadline_hits", "Runs stopped by their deadline", deadline_hits.clone());
        registry.register(
            "produce_duration_seconds",
            "Wall time of produce calls (one call = one batch)",
            produce_seconds.clone(),
        );
        Metrics {
            registry,
            runs,
            active_runs,
            keys,
            retries,
            bytes,
            fuel,
            deadline_hits,
            produce_seconds,
        }
    }

    /// A run started.
    pub fn run_started(&self) {
        self.active_runs.inc();
    }

    /// A run finished: counts its status and adds its counters.
    pub fn run_finished(&self, report: &Report) {
        self.active_runs.dec();
        let status = serde_json::to_value(report.status).ok();
        let status = status.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown");
        self.runs.get_or_create(&StatusLabel { status: status.into() }).inc();
        if report.deadline_hit {
            self.deadline_hits.inc();
        }
        for p in &report.plugins {
            let c = &p.counters;
            let plugin = PluginLabel { plugin: p.name.clone() };
            for (outcome, n) in [
                ("written", c.written),
                ("skipped_fresh", c.skipped_fresh),
                ("skipped_by_plugin", c.skipped_by_plugin),
                ("invalid", c.invalid),
                ("failed", c.failed),
                ("abandoned", c.abandoned),
            ] {
                let labels = OutcomeLabels {
                    plugin: p.name.clone(),
                    outcome: outcome.into(),
                };
                self.keys.get_or_create(&labels).inc_by(n);
            }
            self.retries.get_or_create(&plugin).inc_by(c.retried);
            self.bytes.get_or_create(&plugin).inc_by(c.bytes_written);
            self.fuel.get_or_create(&plugin).inc_by(c.fuel_consumed);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl RunObserver for Metrics {
    fn produce_call(&self, plugin: &str, _keys: usize, elapsed: Duration) {
        self.produce_seconds
            .get_or_create(&PluginLabel { plugin: plugin.into() })
            .observe(elapsed.as_secs_f64());
    }
}
