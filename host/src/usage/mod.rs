//! Usage intelligence in the host: access events in (the API, a Redis Stream,
//! keyspace notifications), tracked by [`preheat_usage::UsageTracker`]; key →
//! plugin routing; the candidates of reactive and predictive warming; the
//! effect of runs on the hit rate; state saved to a file so restarts keep the
//! history and the models. The algorithms live in the `preheat-usage` crate.

mod posted;
mod routing;
mod stream;
mod views;

pub use posted::{PostedEvent, PostedEvents};
pub use routing::KeyRouter;
pub use stream::{consume_stream, stream_event, watch_keyspace};
pub use views::{
    CoverageView, Effectiveness, HotData, HotKey, MeasuredBenefit, RedisHitRates, RedisRunHitRates, RunEffectView,
    Suggestion,
};

use crate::config::{Config, UsageConfig};
use crate::report::Report;
use anyhow::{Context, Result};
use preheat_usage::effect::{cost_benefit, BeforeAfter, HitStats, RollingHitRate, WarmingCost};
use preheat_usage::tracker::{HotKeys, Priority as HotPriority, Tracking, Trends};
use preheat_usage::{predict, AccessEvent, UsageTracker};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

/// Hot keys shown with their seasonal profile.
const PROFILED_KEYS: usize = 10;
/// Runs whose effect is remembered.
const RUN_EFFECTS: usize = 50;
/// Samples of the Redis server's keyspace hits/misses kept (a day at 30 s).
const REDIS_SAMPLES: usize = 2880;
/// Hit-rate buckets: one minute each, a day of them.
const HIT_BUCKET_MS: u64 = 60_000;
const HIT_BUCKETS: usize = 1440;
/// How far ahead of this host's clock a live event may be.
const MAX_EVENT_SKEW_MS: u64 = 5 * 60_000;
/// Largest `latency_ms` of a live event: an hour.
const MAX_EVENT_LATENCY_MS: f64 = 3_600_000.0;
/// Longest key of a live event, in bytes (the limit of `warm-key` too).
pub const MAX_EVENT_KEY_BYTES: usize = 1024;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The effect of one run: hit statistics around its end, and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunEffect {
    run_id: String,
    strategy: String,
    window: BeforeAfter,
    cost: WarmingCost,
}

/// Everything saved to the state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    tracker: UsageTracker,
    hits: RollingHitRate,
    runs: VecDeque<RunEffect>,
    /// (ms, keyspace_hits, keyspace_misses) of the Redis backend.
    redis: VecDeque<(u64, u64, u64)>,
    /// The forecast step last warmed by predictive warming.
    predicted_step: Option<u64>,
}

/// A key chosen for warming, with the plugin that produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The owning plugin.
    pub plugin: String,
    /// The key.
    pub key: String,
    /// Its priority (from rank and miss rate).
    pub priority: crate::runtime::Priority,
}

/// The usage service of `serve`.
pub struct Usage {
    config: UsageConfig,
    path: PathBuf,
    state: Mutex<State>,
    router: RwLock<KeyRouter>,
    /// Keys Redis reported expired or evicted, not yet refreshed.
    expired: Mutex<Vec<String>>,
    /// Keys reactive warming chose, and when: not chosen again within the window
    /// (their misses stay in it) unless Redis reports them expired or evicted.
    reacted: Mutex<std::collections::HashMap<String, u64>>,
}

fn to_priority(p: HotPriority) -> crate::runtime::Priority {
    match p {
        HotPriority::Critical => crate::runtime::Priority::Critical,
        HotPriority::High => crate::runtime::Priority::High,
        HotPriority::Normal => crate::runtime::Priority::Normal,
        HotPriority::Low => crate::runtime::Priority::Low,
    }
}

impl Usage {
    /// The state file of a config.
    pub fn state_path(config: &Config) -> PathBuf {
        config
            .usage
            .state_file
            .clone()
            .unwrap_or_else(|| config.state_dir().join("usage-state.json"))
    }

    /// Loads the saved state, or starts fresh (a state saved with other tracker
    /// settings, or unreadable, is set aside with a warning, never deleted).
    pub fn open(config: &Config) -> Result<Usage> {
        let path = Usage::state_path(config);
        let fresh = || -> Result<State> {
            Ok(State {
                tracker: UsageTracker::new(config.usage.tracker.clone()).context("[usage.tracker]")?,
                hits: RollingHitRate::new(HIT_BUCKET_MS, HIT_BUCKETS),
                runs: VecDeque::new(),
                redis: VecDeque::new(),
                predicted_step: None,
            })
        };
        let state = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh()?,
            Err(e) => return Err(e).with_context(|| format!("reading usage state {}", path.display())),
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if *state.tracker.config() == config.usage.tracker => {
                    tracing::info!(path = %path.display(), events = state.tracker.events(), "usage state loaded");
                    state
                }
                other => {
                    let aside = path.with_extension("json.old");
                    let why = match other {
                        Ok(_) => "[usage.tracker] settings changed".to_string(),
                        Err(e) => format!("unreadable: {e}"),
                    };
                    tracing::warn!(path = %path.display(), moved_to = %aside.display(), "usage state not used ({why}); starting fresh");
                    let _ = std::fs::rename(&path, &aside);
                    fresh()?
                }
            },
        };
        Ok(Usage {
            config: config.usage.clone(),
            path,
            state: Mutex::new(state),
            router: RwLock::new(KeyRouter::new(config)),
            expired: Mutex::default(),
            reacted: Mutex::default(),
        })
    }

    /// Takes a reloaded config's plugins (routing); tracker settings need a restart.
    pub fn reload(&self, config: &Config) {
        *self.router.write().unwrap() = KeyRouter::new(config);
    }

    /// Whether events are accepted.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The `[usage]` settings in force.
    pub fn config(&self) -> &UsageConfig {
        &self.config
    }

    /// Checks a live event (API, Redis Stream) before it is tracked: a key of
    /// 1 to [`MAX_EVENT_KEY_BYTES`] bytes, at most 5 minutes ahead of this
    /// host's clock, no older than the longest tracked window, a finite latency
    /// of at most an hour.
    pub fn check(&self, event: &AccessEvent) -> Result<(), String> {
        let longest = self
            .config
            .tracker
            .windows
            .iter()
            .map(|w| w.length_ms)
            .max()
            .unwrap_or(0);
        event.check(&preheat_usage::EventBounds {
            max_key_bytes: MAX_EVENT_KEY_BYTES,
            now_ms: now_ms(),
            max_future_ms: MAX_EVENT_SKEW_MS,
            max_age_ms: longest,
            max_latency_ms: MAX_EVENT_LATENCY_MS,
        })
    }

    /// Tracks a batch of events (live ones [`Usage::check`]ed first).
    pub fn ingest(&self, events: &[AccessEvent]) {
        let mut state = self.state.lock().unwrap();
        for event in events {
            state.tracker.record(event);
            state.hits.record(event);
            // Newest runs first; once a run's window ended before the event, so did
            // every older one's (same window length), and none can take it.
            for run in state.runs.iter_mut().rev() {
                if event.ts_ms >= run.window.at_ms + run.window.window_ms {
                    break;
                }
                run.window.record(event);
            }
        }
    }

    /// Moves the tracker's clock to now, so windows slide and steps close even
    /// without traffic. Before the first event it does nothing: the clock starts
    /// at the first event's time, so a replayed history is tracked as it happened.
    pub fn tick(&self) {
        let mut state = self.state.lock().unwrap();
        if state.tracker.events() > 0 {
            state.tracker.advance(now_ms());
        }
    }

    /// The hottest keys of a window.
    pub fn hot(&self, window: Duration, n: usize) -> Result<HotKeys> {
        self.state.lock().unwrap().tracker.hot(window.as_millis() as u64, n)
    }

    /// Rising and falling keys of a window.
    pub fn trends(&self, window: Duration, n: usize) -> Result<Trends> {
        self.state.lock().unwrap().tracker.trends(window.as_millis() as u64, n)
    }

    /// Events tracked so far.
    pub fn events(&self) -> u64 {
        self.state.lock().unwrap().tracker.events()
    }

    /// The `GET hot-data` document: hot keys of `window` with their owning plugin, and trends.
    pub fn hot_data(&self, window: Duration, n: usize) -> HotData {
        let router = self.router.read().unwrap();
        let mut doc = HotData::empty(Some(humantime::format_duration(window).to_string()), "");
        match (self.hot(window, n), self.trends(window, 20)) {
            (Ok(hot), Ok(trends)) if hot.accesses > 0 => {
                let state = self.state.lock().unwrap();
                doc.keys = hot
                    .entries
                    .into_iter()
                    .map(|e| {
                        // Seasonal profile (hour of day, day of week) for the keys tracked as series.
                        let series = (e.rank <= PROFILED_KEYS)
                            .then(|| state.tracker.series(Tracking::Keys, &e.key))
                            .flatten();
                        HotKey {
                            plugin: router.route(&e.key).map(str::to_string),
                            entry: e,
                            forecast_this_step: series.as_ref().map(|s| s.forecast),
                            forecast_explanation: series.as_ref().map(|s| s.explanation.clone()),
                            profile: series.map(|s| s.profile),
                        }
                    })
                    .collect();
                doc.accesses = Some(hot.accesses);
                doc.misses = Some(hot.misses);
                doc.rising = trends.rising;
                doc.falling = trends.falling;
                doc.reason = None;
            }
            (Err(e), _) | (_, Err(e)) => doc.reason = Some(format!("{e:#}")),
            _ => doc.reason = Some(
                "no usage events in this window: send them to POST /cache/warming/events or configure [usage.stream]"
                    .into(),
            ),
        }
        doc
    }

    /// Notes a key Redis reported expired or evicted.
    pub fn note_expired(&self, key: String) {
        let mut expired = self.expired.lock().unwrap();
        if expired.len() < 10_000 {
            expired.push(key);
        }
    }

    /// Reactive warming's keys: hot in the window (at least `min_accesses`) and
    /// either missed there (once per window) or reported expired/evicted since
    /// the last round; routed to their plugins. Keys no plugin owns are left out.
    pub fn reactive_candidates(&self) -> Vec<Candidate> {
        let cfg = &self.config.reactive;
        let expired: std::collections::HashSet<String> =
            std::mem::take(&mut *self.expired.lock().unwrap()).into_iter().collect();
        let Ok(hot) = self.hot(cfg.window, cfg.max_keys) else {
            return Vec::new();
        };
        let router = self.router.read().unwrap();
        let now = now_ms();
        let window_ms = cfg.window.as_millis() as u64;
        let mut reacted = self.reacted.lock().unwrap();
        reacted.retain(|_, at| now.saturating_sub(*at) < window_ms);
        let candidates: Vec<Candidate> = hot
            .entries
            .iter()
            .filter(|e| e.accesses >= cfg.min_accesses)
            .filter(|e| expired.contains(&e.key) || (e.misses > 0 && !reacted.contains_key(&e.key)))
            .filter_map(|e| {
                Some(Candidate {
                    plugin: router.route(&e.key)?.to_string(),
                    key: e.key.clone(),
                    priority: to_priority(e.priority),
                })
            })
            .collect();
        for c in &candidates {
            reacted.insert(c.key.clone(), now);
        }
        candidates
    }

    /// Predictive warming's keys: those forecast to reach `min_predicted` accesses
    /// in the step starting within the lead time, once per step. Returns the step too.
    pub fn predictive_candidates(&self) -> Option<(u64, Vec<Candidate>)> {
        let cfg = &self.config.predictive;
        let mut state = self.state.lock().unwrap();
        let at = now_ms() + cfg.lead_time.as_millis() as u64;
        let prediction = predict(&state.tracker, at, cfg.max_keys);
        let step = prediction.step_start_ms / prediction.step_ms.max(1);
        if state.predicted_step == Some(step) {
            return None;
        }
        let router = self.router.read().unwrap();
        let keys: Vec<Candidate> = prediction
            .keys
            .iter()
            .filter(|p| p.count >= cfg.min_predicted)
            .enumerate()
            .filter_map(|(rank, p)| {
                Some(Candidate {
                    plugin: router.route(&p.name)?.to_string(),
                    key: p.name.clone(),
                    priority: to_priority(state.tracker.config().priority.classify(rank + 1, None)),
                })
            })
            .collect();
        state.predicted_step = Some(step);
        Some((step, keys))
    }

    /// Records a finished run: its effect is measured over the events around its end.
    pub fn run_finished(&self, report: &Report) {
        let written = report.totals.written;
        let producer_ms = report.plugins.iter().map(|p| p.produce_total_us).sum::<u64>() as f64 / 1000.0;
        let mut state = self.state.lock().unwrap();
        if state.runs.len() == RUN_EFFECTS {
            state.runs.pop_front();
        }
        let mut window = BeforeAfter::new(now_ms(), self.config.effect_window.as_millis() as u64);
        // The "before" window is in the past: fill it from the per-minute hit rates.
        for (start, stats) in state.hits.buckets() {
            if start >= window.at_ms.saturating_sub(window.window_ms) && start + HIT_BUCKET_MS <= window.at_ms {
                window.before.merge(&stats);
            }
        }
        state.runs.push_back(RunEffect {
            run_id: report.run_id.clone(),
            strategy: report.strategy.clone(),
            window,
            cost: WarmingCost {
                keys_warmed: written,
                producer_ms,
            },
        });
    }

    /// Records a sample of the Redis backend's `keyspace_hits`/`keyspace_misses`.
    pub fn redis_sample(&self, hits: u64, misses: u64) {
        let mut state = self.state.lock().unwrap();
        if state.redis.len() == REDIS_SAMPLES {
            state.redis.pop_front();
        }
        state.redis.push_back((now_ms(), hits, misses));
    }

    /// The `effectiveness` and `cost_benefit` figures of `GET stats`, from events
    /// (and the Redis server's counters when sampled); null where not measured.
    pub fn effectiveness(&self, coverage: Option<CoverageView>) -> (Effectiveness, MeasuredBenefit) {
        let state = self.state.lock().unwrap();
        let finished: Vec<&RunEffect> = state
            .runs
            .iter()
            .filter(|r| r.window.after.requests > 0 && r.window.before.requests > 0)
            .collect();
        let (mut before, mut after, mut cost) = (HitStats::default(), HitStats::default(), WarmingCost::default());
        for r in &finished {
            before.merge(&r.window.before);
            after.merge(&r.window.after);
            cost.keys_warmed += r.cost.keys_warmed;
            cost.producer_ms += r.cost.producer_ms;
        }
        let improvement = match (before.hit_rate(), after.hit_rate()) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        let runs = state
            .runs
            .iter()
            .rev()
            .take(10)
            .map(|r| RunEffectView {
                run_id: r.run_id.clone(),
                strategy: r.strategy.clone(),
                hit_rate_before: r.window.before.hit_rate(),
                hit_rate_after: r.window.after.hit_rate(),
                requests_before: r.window.before.requests,
                requests_after: r.window.after.requests,
                keys_warmed: r.cost.keys_warmed,
            })
            .collect();
        let rolling = state.hits.total();
        let redis = redis_hit_rates(&state.redis, &state.runs, self.config.effect_window.as_millis() as u64);
        let effectiveness = Effectiveness {
            hit_rate_before: before.hit_rate(),
            hit_rate_after: after.hit_rate(),
            improvement,
            measured_runs: Some(finished.len()),
            window: Some(humantime::format_duration(self.config.effect_window).to_string()),
            hit_rate_last_24h: rolling.hit_rate(),
            requests_last_24h: Some(rolling.requests),
            events_tracked: Some(state.tracker.events()),
            coverage,
            redis,
            runs,
            reason: None,
        };
        let cb = (!finished.is_empty()).then(|| cost_benefit(cost, &before, &after));
        let measured = MeasuredBenefit {
            misses_avoided: cb.map(|c| c.misses_avoided),
            misses_avoided_per_key: cb.and_then(|c| c.misses_avoided_per_key),
            estimated_latency_saved_ms: cb.and_then(|c| c.latency_saved_ms),
            net_ms: cb.and_then(|c| c.net_ms),
        };
        (effectiveness, measured)
    }

    /// Suggested cron times for plugins: `lead` before the peak hour of the
    /// hour-of-day profile of the tracked prefixes each plugin owns (cron in UTC).
    pub fn schedule_suggestions(&self, lead: Duration) -> Vec<Suggestion> {
        let state = self.state.lock().unwrap();
        let router = self.router.read().unwrap();
        let mut per_plugin: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
        let separators = state.tracker.config().separators.clone();
        for name in state.tracker.tracked_names(Tracking::Prefixes) {
            // A prefix stops before its separator: route it with each one put back.
            let Some(plugin) = separators.chars().find_map(|c| router.route(&format!("{name}{c}"))) else {
                continue;
            };
            let Some(series) = state.tracker.series(Tracking::Prefixes, name) else {
                continue;
            };
            let profile = per_plugin.entry(plugin.to_string()).or_insert_with(|| vec![0.0; 24]);
            for (hour, v) in series.profile.hour_of_day.iter().enumerate() {
                profile[hour] += v.unwrap_or(0.0);
            }
        }
        let offset = state.tracker.config().utc_offset_minutes as i64;
        per_plugin
            .into_iter()
            .filter(|(_, profile)| profile.iter().any(|&v| v > 0.0))
            .map(|(plugin, profile)| {
                let peak = (0..24).max_by(|&a, &b| profile[a].total_cmp(&profile[b])).unwrap_or(0);
                // Profile hours are local (utc_offset_minutes); cron runs in UTC.
                let start_utc = (peak as i64 * 60 - offset - lead.as_secs() as i64 / 60).rem_euclid(24 * 60);
                Suggestion {
                    why: format!(
                        "traffic to {plugin}'s keys peaks at {peak}:00 (local); warm {} before",
                        humantime::format_duration(lead)
                    ),
                    plugin,
                    peak_hour_local: peak,
                    cron: format!("{} {} * * *", start_utc % 60, start_utc / 60),
                    hour_of_day: profile,
                }
            })
            .collect()
    }

    /// Writes the state file atomically (temporary file, then rename). A state
    /// the loader would refuse (e.g. a non-finite sum, written as `null`) is
    /// never written: the previous file stays and the error says so.
    pub fn save(&self) -> Result<()> {
        let bytes = serde_json::to_vec(&*self.state.lock().unwrap())?;
        if let Err(e) = serde_json::from_slice::<State>(&bytes) {
            anyhow::bail!(
                "usage state not written to {}: it would not load back ({e}); the previous file is kept",
                self.path.display()
            );
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(())
    }
}

/// Hit rate of the Redis server before and after the latest runs, from `INFO stats` deltas.
fn redis_hit_rates(
    samples: &VecDeque<(u64, u64, u64)>,
    runs: &VecDeque<RunEffect>,
    window_ms: u64,
) -> Option<RedisHitRates> {
    if samples.len() < 2 {
        return None;
    }
    let at = |t: u64| samples.iter().rev().find(|s| s.0 <= t).or(samples.front()).copied();
    let rate = |from: u64, to: u64| {
        let (a, b) = (at(from)?, at(to)?);
        let (hits, misses) = (b.1.saturating_sub(a.1), b.2.saturating_sub(a.2));
        (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
    };
    let last = samples.back().map(|s| s.0).unwrap_or(0);
    let run = runs.iter().rev().find(|r| r.window.at_ms + window_ms <= last);
    Some(RedisHitRates {
        hit_rate_recent: rate(last.saturating_sub(window_ms), last),
        last_measured_run: run.map(|r| RedisRunHitRates {
            run_id: r.run_id.clone(),
            hit_rate_before: rate(r.window.at_ms.saturating_sub(window_ms), r.window.at_ms),
            hit_rate_after: rate(r.window.at_ms, r.window.at_ms + window_ms),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn suggestions_warm_a_plugin_before_its_traffic_peaks() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[jobs]\nstate_dir = {:?}\n[[plugins]]\nname = \"catalog\"\npath = \"c.wasm\"\nkey_prefixes = [\"cat:\"]\n[[plugins]]\nname = \"users\"\npath = \"u.wasm\"\nkey_prefixes = [\"user:\"]\n",
            dir.path().display().to_string()
        );
        let config = Config::parse(&text, Path::new("x.toml")).unwrap();
        let usage = Usage::open(&config).unwrap();
        // Two days, hour by hour: catalog peaks at 14:00 UTC, users at 03:00.
        let day0 = 1_700_006_400_000u64; // a UTC midnight
        let mut events = Vec::new();
        for hour in 0..48u64 {
            let (cat, user) = match hour % 24 {
                14 => (60, 2),
                3 => (2, 40),
                _ => (3, 2),
            };
            for (key, n) in [("cat:1", cat), ("user:1", user)] {
                for i in 0..n {
                    events.push(AccessEvent {
                        ts_ms: day0 + hour * 3_600_000 + i * 1000,
                        key: key.into(),
                        hit: true,
                        latency_ms: None,
                    });
                }
            }
        }
        usage.ingest(&events);
        let suggestions = usage.schedule_suggestions(Duration::from_secs(600));
        let of = |plugin: &str| suggestions.iter().find(|s| s.plugin == plugin).cloned().unwrap();
        assert_eq!(of("catalog").peak_hour_local, 14);
        assert_eq!(of("catalog").cron, "50 13 * * *");
        assert_eq!(of("users").cron, "50 2 * * *");
    }

    #[test]
    fn redis_counters_give_the_hit_rate_before_and_after_a_run() {
        // INFO stats every 30 s; a run ends at t = 600 s; 5-minute windows.
        let samples: VecDeque<(u64, u64, u64)> = (0..=40u64)
            .map(|i| {
                let t = i * 30_000;
                // 50% hits before the run, 90% after it.
                let (hits, misses) = if t <= 600_000 {
                    (i * 50, i * 50)
                } else {
                    (20 * 50 + (i - 20) * 90, 20 * 50 + (i - 20) * 10)
                };
                (t, hits, misses)
            })
            .collect();
        let runs = VecDeque::from([RunEffect {
            run_id: "r".into(),
            strategy: "proactive".into(),
            window: BeforeAfter::new(600_000, 300_000),
            cost: WarmingCost::default(),
        }]);
        let doc = redis_hit_rates(&samples, &runs, 300_000).unwrap();
        let run = doc.last_measured_run.as_ref().unwrap();
        assert_eq!(run.run_id, "r");
        assert!((run.hit_rate_before.unwrap() - 0.5).abs() < 1e-9, "{doc:?}");
        assert!((run.hit_rate_after.unwrap() - 0.9).abs() < 1e-9, "{doc:?}");
        assert!(redis_hit_rates(&VecDeque::new(), &runs, 300_000).is_none());
    }

    #[test]
    fn state_survives_a_save_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("[jobs]\nstate_dir = {:?}\n", dir.path().display().to_string());
        let config = Config::parse(&text, Path::new("x.toml")).unwrap();
        let usage = Usage::open(&config).unwrap();
        let events: Vec<AccessEvent> = (0..5)
            .map(|i| AccessEvent {
                ts_ms: now_ms() + i,
                key: "k:1".into(),
                hit: false,
                latency_ms: None,
            })
            .collect();
        usage.ingest(&events);
        usage.save().unwrap();
        let again = Usage::open(&config).unwrap();
        assert_eq!(again.events(), 5);
        // Other tracker settings: the old state is set aside, not mixed in.
        let changed = Config::parse(
            &format!("{text}[usage.tracker]\nsummary_capacity = 1024\n"),
            Path::new("x.toml"),
        )
        .unwrap();
        let fresh = Usage::open(&changed).unwrap();
        assert_eq!(fresh.events(), 0);
        assert!(dir.path().join("usage-state.json.old").exists());
    }
}
