//! Usage-driven warming in `serve`: the reactive and predictive loops (keys
//! routed to their plugins and warmed through `produce` like `warm-key`), the
//! event sources (Redis Stream, keyspace notifications), sampling the Redis
//! server's hit counters, and saving the usage state.

use super::runs::RunRequest;
use super::Shared;
use crate::backend::events::EventSource;
use crate::runtime::KeySpec;
use crate::usage::{consume_stream, watch_keyspace, Candidate, Usage};
use std::sync::Arc;
use std::time::Duration;

/// How often the Redis server's `INFO stats` is sampled.
const REDIS_SAMPLE_EVERY: Duration = Duration::from_secs(30);

/// Starts every usage task the config asks for.
pub(super) fn start(shared: &Arc<Shared>, usage: &Arc<Usage>) {
    let warmer = shared.warmer();
    let config = warmer.config();
    let shutdown = shared.shutdown.clone();
    tokio::spawn(save_loop(usage.clone(), shutdown.clone()));
    // Validation has made sure that the backend can do what is asked of it
    // (a stream without its own url, key events).
    let backend_events = EventSource::of_backend(&config.backend);
    if let Some(stream) = config.usage.stream.clone() {
        let source = match &stream.url {
            Some(url) => Some(EventSource::Server {
                url: url.clone(),
                tls: config.backend.redis().cloned().unwrap_or_default(),
            }),
            None => backend_events.clone(),
        };
        if let Some(source) = source {
            tokio::spawn(consume_stream(stream, source, usage.clone(), shutdown.clone()));
        }
    }
    if let (true, Some(source)) = (config.usage.keyspace.enabled, backend_events) {
        tokio::spawn(watch_keyspace(
            source,
            config.usage.keyspace.configure,
            usage.clone(),
            shutdown.clone(),
        ));
    }
    if config.backend.capabilities().server_stats {
        tokio::spawn(sample_server_stats(shared.clone(), usage.clone()));
    }
    if config.usage.reactive.enabled {
        tokio::spawn(reactive_loop(shared.clone(), usage.clone()));
    }
    if config.usage.predictive.enabled {
        tokio::spawn(predictive_loop(shared.clone(), usage.clone()));
    }
    if config.usage.apply_schedule_suggestions {
        tokio::spawn(apply_suggestions_loop(shared.clone(), usage.clone()));
    }
}

/// How often schedule suggestions are applied (with `apply_schedule_suggestions`).
const APPLY_SUGGESTIONS_EVERY: Duration = Duration::from_secs(3600);

/// Hourly: moves each scheduled plugin's cron to its suggested time (just before its peak).
async fn apply_suggestions_loop(shared: Arc<Shared>, usage: Arc<Usage>) {
    let mut tick = tokio::time::interval(APPLY_SUGGESTIONS_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let lead = shared.warmer().config().usage.predictive.lead_time;
        let current = shared.schedules.list();
        for suggestion in usage.schedule_suggestions(lead) {
            let (plugin, cron) = (suggestion.plugin.as_str(), suggestion.cron.as_str());
            let scheduled = current.iter().find(|s| s.plugin == plugin);
            if scheduled.is_none_or(|s| s.cron.is_none() || s.cron.as_deref() == Some(cron)) {
                continue;
            }
            let update = crate::schedule::ScheduleUpdate {
                plugin: plugin.to_string(),
                cron: Some(Some(cron.to_string())),
                ..Default::default()
            };
            match shared.schedules.update(update).await {
                Ok(view) => {
                    tracing::info!(plugin, cron, next_fire = ?view.next_fire, "schedule moved before the traffic peak")
                }
                Err(e) => tracing::warn!(plugin, cron, "schedule suggestion not applied: {e}"),
            }
        }
    }
}

/// Saves the usage state every `save_every`, and once more at shutdown.
async fn save_loop(usage: Arc<Usage>, shutdown: crate::support::Cancel) {
    let mut tick = tokio::time::interval(usage.config().save_every);
    tick.tick().await;
    loop {
        let stop = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.cancelled() => true,
        };
        usage.tick();
        if let Err(e) = usage.save() {
            tracing::warn!("usage state not saved: {e:#}");
        }
        if stop {
            return;
        }
    }
}

/// Samples the backend server's hits and misses.
async fn sample_server_stats(shared: Arc<Shared>, usage: Arc<Usage>) {
    let mut tick = tokio::time::interval(REDIS_SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        let Ok(backend) = shared.backend().await else { continue };
        match backend.server_stats().await {
            Ok(Some(stats)) => usage.redis_sample(stats.hits, stats.misses),
            Ok(None) => return,
            Err(e) => tracing::debug!("server stats: {e}"),
        }
    }
}

/// Warms candidates, one run per owning plugin; a plugin already running is
/// skipped this round (its keys come back next round if still hot).
fn warm(shared: &Arc<Shared>, strategy: &str, candidates: Vec<Candidate>) {
    let mut by_plugin: std::collections::BTreeMap<String, Vec<(String, KeySpec)>> = Default::default();
    for c in candidates {
        let spec = KeySpec {
            key: c.key,
            priority: c.priority,
            ttl_seconds: None,
            tags: Vec::new(),
            arg: None,
        };
        by_plugin.entry(c.plugin.clone()).or_default().push((c.plugin, spec));
    }
    for (plugin, keys) in by_plugin {
        let n = keys.len();
        let request = RunRequest {
            plugins: vec![plugin.clone()],
            strategy: strategy.into(),
            keys: Some(keys),
            ..RunRequest::default()
        };
        match shared.start_run(request) {
            Ok((run_id, _)) => tracing::info!(%plugin, keys = n, %run_id, "{strategy} warming started"),
            Err(e) => tracing::info!(%plugin, keys = n, "{strategy} warming skipped this round: {e}"),
        }
    }
}

/// Every interval (or at once when Redis reports a key expired): hot keys that miss.
async fn reactive_loop(shared: Arc<Shared>, usage: Arc<Usage>) {
    let mut tick = tokio::time::interval(usage.config().reactive.interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        usage.tick();
        let candidates = usage.reactive_candidates();
        if !candidates.is_empty() {
            warm(&shared, "reactive", candidates);
        }
    }
}

/// Every interval: keys forecast hot in the step starting within the lead time, once per step.
async fn predictive_loop(shared: Arc<Shared>, usage: Arc<Usage>) {
    let mut tick = tokio::time::interval(usage.config().predictive.interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.cancelled() => return,
        }
        usage.tick();
        if let Some((step, candidates)) = usage.predictive_candidates() {
            tracing::info!(step, keys = candidates.len(), "forecast for the next step");
            if !candidates.is_empty() {
                warm(&shared, "predictive", candidates);
            }
        }
    }
}
