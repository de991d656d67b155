//! Per-plugin cron schedules of `preheat serve` (proactive warming).
//!
//! A plugin's schedule comes from its `[[plugins]]` table (`schedule`,
//! `schedule_jitter`) or from the API (`POST /cache/warming/schedule`); an API
//! change is an *override* that wins over the config, across restarts and
//! config reloads, until it is dropped with `reset: true`. Disabled plugins
//! (`enabled = false`) have no schedule.
//!
//! - **Time zone**: cron expressions are evaluated in UTC (`0 3 * * *` fires at
//!   03:00 UTC), with 5 fields or 6 with seconds first.
//! - **Jitter**: each scheduled run waits a random delay in `[0, jitter]` after
//!   its fire time, so instances sharing a schedule spread their load. The
//!   jitter must be below the schedule's shortest period, so a delayed run never
//!   reaches the next fire time.
//! - **No overlap**: a fire time that comes while a run of that plugin is still
//!   in progress is skipped (logged as "skipped: previous run still in
//!   progress"), both when the previous `fire` call has not returned and when
//!   `fire` answers [`Fire::Busy`].
//! - **Missed runs** (`[serve] missed_runs`): when the loop starts, a plugin
//!   whose schedule had a fire time between its last recorded fire and now gets
//!   one run at start-up with `run-once` (one, however many were missed), none
//!   with `skip`. A plugin that never fired before has missed nothing.
//! - **Persistence**: overrides and last fire times live in the job store's
//!   `preheat_schedules` table (SQLite or PostgreSQL). Without a job store (jobs
//!   disabled or unreachable) schedules work in memory: an API change then
//!   applies at once but is lost on restart, which the returned
//!   [`ScheduleView::persisted`] (`false`) and a warning in the log say, and
//!   missed runs cannot be detected.

mod timing;

use crate::config::{Config, CronSchedule, MissedRuns, PluginConfig};
use crate::jobs::{JobStore, StoredSchedule};
use crate::support::Cancel;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// Longest the loop sleeps before reading the wall clock again (it may jump).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// [`ScheduleView::source`] of a schedule from the config file.
const FROM_CONFIG: &str = "config";
/// [`ScheduleView::source`] of a schedule set through the API.
const FROM_API: &str = "api";

/// The schedules of every enabled plugin, shared as `Arc<Schedules>` by the
/// HTTP API (read, change, reload) and the loop that fires them ([`Schedules::run`]).
pub struct Schedules {
    state: Mutex<State>,
    store: Option<JobStore>,
    /// Wakes the loop when a schedule changed (update, reload).
    wake: Notify,
    /// Serialises [`Schedules::update`]s, which persist before they apply.
    updates: tokio::sync::Mutex<()>,
}

/// One plugin's schedule as `GET /cache/warming/schedule` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// The plugin's name.
    pub plugin: String,
    /// The cron expression (UTC); `None`: the plugin runs on demand only.
    pub cron: Option<String>,
    /// Largest random delay after each fire time, as a humantime duration (`"30s"`).
    pub jitter: Option<String>,
    /// `false`: the schedule is kept but paused (set through the API).
    pub enabled: bool,
    /// `"config"` (the config file) or `"api"` (an override set through the API).
    #[schema(value_type = String, pattern = "^(config|api)$")]
    pub source: &'static str,
    /// When the next scheduled run starts, jitter included (RFC 3339, UTC); `None` when none is due.
    pub next_fire: Option<String>,
    /// When the schedule last fired (RFC 3339, UTC), whatever came of it.
    pub last_fired: Option<String>,
    /// The cron expression in English.
    pub description: Option<String>,
    /// Whether this schedule survives a restart: `true` for the config's and for
    /// API overrides saved in the job store, `false` for API overrides made while
    /// serve runs without a job store.
    pub persisted: bool,
}

/// The body of `POST /cache/warming/schedule`: a change to one plugin's
/// schedule. Fields left out keep their current value; the result is saved as
/// an override that wins over the config.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleUpdate {
    /// The plugin (an enabled one from the config).
    #[schema(min_length = 1)]
    pub plugin: String,
    /// `Some(Some(expr))` sets the cron expression (UTC; 5 fields, or 6 with
    /// seconds first), `Some(None)` (JSON `null`) removes the schedule (on
    /// demand only), `None` (absent) keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub cron: Option<Option<String>>,
    /// `Some(Some("30s"))` sets the jitter (a humantime duration below the
    /// schedule's period; `"0s"` is none), `Some(None)` (JSON `null`) removes
    /// it, `None` (absent) keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub jitter: Option<Option<String>>,
    /// Pauses (`false`) or resumes (`true`) the schedule; absent keeps it.
    pub enabled: Option<bool>,
    /// `true` drops the API override: the config's schedule applies again.
    /// Cannot be combined with the other fields.
    #[serde(default)]
    pub reset: bool,
}

/// Tells a field given as JSON `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Why a schedule change (or a config's schedules) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The plugin is not an enabled plugin of the config; the message names the
    /// known ones (HTTP 404).
    #[error("{0}")]
    UnknownPlugin(String),
    /// A bad cron expression, jitter or combination of fields; the message says
    /// what and how to fix it (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The job store could not save the change; nothing was changed (HTTP 503).
    #[error("{0:#}: the schedule was not changed; retry when the job store is reachable")]
    Store(anyhow::Error),
}

/// What the loop's `fire` callback made of a fire time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fire {
    /// A run of the plugin was started.
    Started,
    /// A run of that plugin is in progress: this fire time is skipped, runs never overlap.
    Busy,
    /// The run could not start; why.
    Failed(String),
}

/// The schedule in force for a plugin.
#[derive(Debug, Clone)]
struct Setting {
    cron: Option<CronSchedule>,
    jitter: Option<Duration>,
    enabled: bool,
}

impl Setting {
    fn of(plugin: &PluginConfig) -> Setting {
        Setting {
            cron: plugin.schedule.clone(),
            jitter: plugin.schedule_jitter.filter(|j| !j.is_zero()),
            enabled: true,
        }
    }

    fn same_as(&self, other: &Setting) -> bool {
        self.cron.as_ref().map(CronSchedule::pattern) == other.cron.as_ref().map(CronSchedule::pattern)
            && self.jitter == other.jitter
            && self.enabled == other.enabled
    }

    /// The cron expression, when the schedule is enabled.
    fn firing(&self) -> Option<&CronSchedule> {
        self.cron.as_ref().filter(|_| self.enabled)
    }

    /// When the next run is due after `after`, jitter drawn.
    fn due(&self, after: DateTime<Utc>, rng: &mut impl Rng) -> Option<DateTime<Utc>> {
        self.firing()
            .and_then(|c| timing::next_due(&c.0, self.jitter, after, rng))
    }

    fn stored(&self, plugin: &str) -> StoredSchedule {
        StoredSchedule {
            plugin: plugin.to_string(),
            cron: self.cron.as_ref().map(|c| c.pattern().to_string()),
            jitter: self.jitter,
            enabled: self.enabled,
            overridden: true,
            last_fired: None,
        }
    }
}

/// An enabled plugin of the config and when its schedule is next due.
struct Entry {
    plugin: String,
    config: Setting,
    due: Option<DateTime<Utc>>,
}

struct State {
    missed_runs: MissedRuns,
    /// The enabled plugins, config order.
    entries: Vec<Entry>,
    /// Plugins of the config with `enabled = false` (named in errors).
    disabled: Vec<String>,
    /// API overrides, also of plugins not (or no longer) in the config: they apply if it comes back.
    overrides: HashMap<String, Setting>,
    last_fired: HashMap<String, DateTime<Utc>>,
    /// Whether a job store keeps overrides.
    persistent: bool,
}

/// The setting in force for `entry` and where it comes from.
fn effective<'a>(overrides: &'a HashMap<String, Setting>, entry: &'a Entry) -> (&'a Setting, &'static str) {
    match overrides.get(&entry.plugin) {
        Some(s) => (s, FROM_API),
        None => (&entry.config, FROM_CONFIG),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn quoted_list(names: impl Iterator<Item = impl AsRef<str>>) -> String {
    names
        .map(|n| format!("{:?}", n.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a schedule's timing: it fires at all, and `jitter` (named `jitter_field`
/// in the message) is below its shortest period.
fn check_timing(
    cron: &CronSchedule,
    jitter: Option<Duration>,
    jitter_field: &str,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if timing::next_fire(&cron.0, now).is_none() {
        return Err(format!(
            "cron expression {:?} never fires after {}: check its day and month fields",
            cron.pattern(),
            rfc3339(now)
        ));
    }
    if let (Some(jitter), Some(period)) = (jitter, timing::shortest_period(&cron.0, now)) {
        if jitter >= period {
            let period = humantime::format_duration(period);
            return Err(format!(
                "{jitter_field} {} is not below the schedule's period: {:?} fires every {period} at the shortest; use a {jitter_field} under {period}",
                humantime::format_duration(jitter),
                cron.pattern()
            ));
        }
    }
    Ok(())
}

fn check_config_at(config: &Config, now: DateTime<Utc>) -> Result<(), ScheduleError> {
    let file = config
        .source
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config".into());
    for plugin in config.enabled_plugins() {
        if let Some(cron) = &plugin.schedule {
            check_timing(cron, plugin.schedule_jitter, "schedule_jitter", now)
                .map_err(|why| ScheduleError::Invalid(format!("{file}: [[plugins]] {:?}: {why}", plugin.name)))?;
        }
    }
    Ok(())
}

impl State {
    fn view(&self, entry: &Entry) -> ScheduleView {
        let (setting, source) = effective(&self.overrides, entry);
        ScheduleView {
            plugin: entry.plugin.clone(),
            cron: setting.cron.as_ref().map(|c| c.pattern().to_string()),
            jitter: setting.jitter.map(|j| humantime::format_duration(j).to_string()),
            enabled: setting.enabled,
            source,
            next_fire: entry.due.map(rfc3339),
            last_fired: self.last_fired.get(&entry.plugin).copied().map(rfc3339),
            description: setting.cron.as_ref().map(|c| c.0.describe()),
            persisted: source == FROM_CONFIG || self.persistent,
        }
    }

    /// Takes the config's plugins and schedules; a plugin whose schedule in force
    /// did not change keeps its due time.
    fn set_config(&mut self, config: &Config, now: DateTime<Utc>, rng: &mut impl Rng) {
        self.missed_runs = config.serve.missed_runs;
        let mut old: HashMap<String, Entry> = self.entries.drain(..).map(|e| (e.plugin.clone(), e)).collect();
        for plugin in config.enabled_plugins() {
            let mut entry = Entry {
                plugin: plugin.name.clone(),
                config: Setting::of(plugin),
                due: None,
            };
            let setting = effective(&self.overrides, &entry).0;
            entry.due = match old.remove(&plugin.name) {
                Some(previous) if effective(&self.overrides, &previous).0.same_as(setting) => previous.due,
                _ => setting.due(now, rng),
            };
            self.entries.push(entry);
        }
        self.disabled = config
            .plugins
            .iter()
            .filter(|p| !p.enabled)
            .map(|p| p.name.clone())
            .collect();
    }

    fn entry(&self, plugin: &str) -> Result<&Entry, ScheduleError> {
        if let Some(entry) = self.entries.iter().find(|e| e.plugin == plugin) {
            return Ok(entry);
        }
        let message = if self.disabled.iter().any(|d| d == plugin) {
            format!("plugin {plugin:?} is disabled in the config (enabled = false); enable it there and reload the config to schedule it")
        } else if self.entries.is_empty() {
            format!("unknown plugin {plugin:?}: the config enables no plugins")
        } else {
            format!(
                "unknown plugin {plugin:?}: the enabled plugins are {}",
                quoted_list(self.entries.iter().map(|e| &e.plugin))
            )
        };
        Err(ScheduleError::UnknownPlugin(message))
    }

    /// Validates `update` against the schedule in force: the new override, or
    /// `None` to drop it (`reset`).
    fn plan(&self, update: &ScheduleUpdate, now: DateTime<Utc>) -> Result<Option<Setting>, ScheduleError> {
        let entry = self.entry(&update.plugin)?;
        let at = format!("schedule for plugin {:?}", update.plugin);
        let invalid = |why: String| ScheduleError::Invalid(format!("{at}: {why}"));
        let nothing_else = update.cron.is_none() && update.jitter.is_none() && update.enabled.is_none();
        if update.reset {
            if !nothing_else {
                return Err(invalid("`reset: true` drops the API override and goes back to the config's schedule; send it without `cron`, `jitter` and `enabled`".into()));
            }
            return Ok(None);
        }
        if nothing_else {
            return Err(invalid("nothing to change: give `cron` (a cron expression, or null to remove the schedule), `jitter`, `enabled`, or `reset: true`".into()));
        }
        let base = effective(&self.overrides, entry).0;
        let cron = match &update.cron {
            None => base.cron.clone(),
            Some(None) => None,
            Some(Some(text)) => Some(CronSchedule::parse(text).map_err(invalid)?),
        };
        let jitter = match &update.jitter {
            None => base.jitter,
            Some(None) => None,
            Some(Some(text)) => {
                let jitter = humantime::parse_duration(text.trim()).map_err(|e| {
                    invalid(format!(
                        "jitter {text:?} is not a duration ({e}): use one such as \"30s\" or \"2m\", or null for none"
                    ))
                })?;
                Some(jitter).filter(|j| !j.is_zero())
            }
        };
        if let Some(cron) = &cron {
            check_timing(cron, jitter, "jitter", now).map_err(invalid)?;
        }
        Ok(Some(Setting {
            cron,
            jitter,
            enabled: update.enabled.unwrap_or(base.enabled),
        }))
    }

    /// Sets (or drops, with `None`) a plugin's override; `None` when the plugin
    /// left the config meanwhile.
    fn apply(
        &mut self,
        plugin: &str,
        change: Option<Setting>,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> Option<ScheduleView> {
        match change {
            Some(setting) => self.overrides.insert(plugin.to_string(), setting),
            None => self.overrides.remove(plugin),
        };
        let index = self.entries.iter().position(|e| e.plugin == plugin)?;
        let due = effective(&self.overrides, &self.entries[index]).0.due(now, rng);
        self.entries[index].due = due;
        Some(self.view(&self.entries[index]))
    }

    /// Where the loop starts: the missed-runs policy, and fresh due times.
    fn start(&mut self, now: DateTime<Utc>, rng: &mut impl Rng) {
        for entry in &mut self.entries {
            let (setting, source) = effective(&self.overrides, entry);
            let setting = setting.clone();
            let Some(cron) = setting.firing() else { continue };
            let missed = self
                .last_fired
                .get(&entry.plugin)
                .and_then(|last| timing::missed_since(&cron.0, *last, now).map(|t| (*last, t)));
            entry.due = match (missed, self.missed_runs) {
                (Some((last, missed)), MissedRuns::RunOnce) => {
                    tracing::info!(plugin = entry.plugin, last_fired = %rfc3339(last), missed = %rfc3339(missed),
                        "schedule: fire time(s) missed while serve was down; running once now (missed_runs = \"run-once\")");
                    Some(now + timing::jitter_delay(setting.jitter, rng))
                }
                (Some((last, missed)), MissedRuns::Skip) => {
                    tracing::info!(plugin = entry.plugin, last_fired = %rfc3339(last), missed = %rfc3339(missed),
                        "schedule: fire time(s) missed while serve was down; skipped (missed_runs = \"skip\")");
                    setting.due(now, rng)
                }
                (None, _) => setting.due(now, rng),
            };
            tracing::info!(
                plugin = entry.plugin,
                cron = cron.pattern(),
                source,
                next_fire = entry.due.map(rfc3339).unwrap_or_default(),
                "schedule: plugin scheduled (UTC)"
            );
        }
    }

    /// The plugins due at `now`, recorded as fired and given their next due time.
    fn take_due(&mut self, now: DateTime<Utc>, rng: &mut impl Rng) -> Vec<String> {
        let mut due = Vec::new();
        for entry in &mut self.entries {
            if entry.due.is_some_and(|t| t <= now) {
                entry.due = effective(&self.overrides, entry).0.due(now, rng);
                self.last_fired.insert(entry.plugin.clone(), timing::to_millis(now));
                due.push(entry.plugin.clone());
            }
        }
        due
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().filter_map(|e| e.due).min()
    }
}

fn log_outcome(plugin: &str, outcome: &Fire) {
    match outcome {
        Fire::Started => tracing::info!(plugin, "scheduled run started"),
        Fire::Busy => tracing::info!(plugin, "scheduled run skipped: previous run still in progress"),
        Fire::Failed(error) => tracing::warn!(plugin, error, "scheduled run could not start: {error}"),
    }
}

impl Schedules {
    /// The config's schedules and the overrides and last fire times kept in
    /// `store` (overrides win). Fails on a schedule the config cannot have (see
    /// [`Schedules::check`]) or when the store cannot be read; pass `None` to
    /// run without a store (jobs disabled or unreachable).
    pub async fn load(config: &Config, store: Option<JobStore>) -> anyhow::Result<Schedules> {
        Schedules::check(config)?;
        let rows = match &store {
            Some(store) => store.schedules().await?,
            None => Vec::new(),
        };
        Ok(Schedules::from_rows(config, store, rows, Utc::now(), &mut rand::rng()))
    }

    fn from_rows(
        config: &Config,
        store: Option<JobStore>,
        rows: Vec<StoredSchedule>,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> Schedules {
        let mut overrides = HashMap::new();
        let mut last_fired = HashMap::new();
        for row in rows {
            if let Some(t) = row.last_fired {
                last_fired.insert(row.plugin.clone(), t);
            }
            if !row.overridden {
                continue;
            }
            match row.cron.as_deref().map(CronSchedule::parse).transpose() {
                Ok(cron) => {
                    let setting = Setting {
                        cron,
                        jitter: row.jitter,
                        enabled: row.enabled,
                    };
                    overrides.insert(row.plugin, setting);
                }
                Err(e) => tracing::warn!(
                    plugin = row.plugin,
                    "ignoring the stored schedule override: {e}; the config's schedule applies"
                ),
            }
        }
        let mut state = State {
            missed_runs: config.serve.missed_runs,
            entries: Vec::new(),
            disabled: Vec::new(),
            overrides,
            last_fired,
            persistent: store.is_some(),
        };
        state.set_config(config, now, rng);
        Schedules {
            state: Mutex::new(state),
            store,
            wake: Notify::new(),
            updates: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks the schedules of `config` (enabled plugins): each fires at all and
    /// its `schedule_jitter` is below its shortest period. Call it before
    /// committing to a reloaded config.
    pub fn check(config: &Config) -> Result<(), ScheduleError> {
        check_config_at(config, Utc::now())
    }

    /// Every enabled plugin's schedule, config order.
    pub fn list(&self) -> Vec<ScheduleView> {
        let state = self.state();
        state.entries.iter().map(|e| state.view(e)).collect()
    }

    /// Changes a plugin's schedule: validated, saved in the job store as an
    /// override (or the override dropped, with `reset`), then applied; the
    /// running loop picks up the new next fire time at once. Without a job store
    /// the change applies in memory only: the result has `persisted: false` and
    /// a warning is logged.
    pub async fn update(&self, update: ScheduleUpdate) -> Result<ScheduleView, ScheduleError> {
        let _one_at_a_time = self.updates.lock().await;
        let change = self.state().plan(&update, Utc::now())?;
        let plugin = update.plugin.as_str();
        match (&self.store, &change) {
            (Some(store), Some(setting)) => store.save_schedule(&setting.stored(plugin)).await,
            (Some(store), None) => {
                let reset = StoredSchedule {
                    plugin: plugin.to_string(),
                    cron: None,
                    jitter: None,
                    enabled: true,
                    overridden: false,
                    last_fired: None,
                };
                store.save_schedule(&reset).await
            }
            (None, _) => {
                tracing::warn!(
                    plugin,
                    "schedule changed in memory only: there is no job store (jobs disabled or unreachable), so the change will not survive a restart"
                );
                Ok(())
            }
        }
        .map_err(ScheduleError::Store)?;
        let view = self.state().apply(plugin, change, Utc::now(), &mut rand::rng());
        self.wake.notify_one();
        let view = view.ok_or_else(|| {
            ScheduleError::UnknownPlugin(format!(
                "plugin {plugin:?} left the config (reloaded meanwhile); its schedule was saved and applies if it comes back"
            ))
        })?;
        tracing::info!(
            plugin,
            cron = view.cron.as_deref().unwrap_or("none"),
            source = view.source,
            enabled = view.enabled,
            next_fire = view.next_fire.as_deref().unwrap_or("none"),
            "schedule changed"
        );
        Ok(view)
    }

    /// Takes a reloaded config (SIGHUP): its schedules and `missed_runs`; API
    /// overrides still win; plugins gone from the config (or disabled) are
    /// dropped. A config that fails [`Schedules::check`] changes nothing.
    pub fn reload(&self, config: &Config) -> Result<(), ScheduleError> {
        Schedules::check(config)?;
        self.state().set_config(config, Utc::now(), &mut rand::rng());
        self.wake.notify_one();
        Ok(())
    }

    /// The schedule loop, until `shutdown` is cancelled.
    ///
    /// At start it applies the missed-runs policy. Then it sleeps until the
    /// earliest due time (fire time + jitter), calls `fire(plugin)`, records the
    /// fire time (in the job store when there is one) and logs the outcome. It
    /// wakes early on [`Schedules::update`], [`Schedules::reload`] and shutdown.
    ///
    /// `fire` should start a run and return; its future is polled on the loop's
    /// task, concurrently with the loop, so one that awaits the whole run also
    /// works (that plugin's fire times are skipped until it returns) but is
    /// dropped at shutdown.
    pub async fn run<F, Fut>(self: Arc<Self>, fire: F, shutdown: Cancel)
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Fire>,
    {
        self.state().start(Utc::now(), &mut rand::rng());
        let mut in_flight = FuturesUnordered::new();
        let mut firing: HashSet<String> = HashSet::new();
        loop {
            let now = Utc::now();
            let due = self.state().take_due(now, &mut rand::rng());
            for plugin in due {
                let call = if firing.insert(plugin.clone()) {
                    Some(fire(plugin.clone()))
                } else {
                    log_outcome(&plugin, &Fire::Busy);
                    None
                };
                let this = Arc::clone(&self);
                in_flight.push(async move {
                    let record = async {
                        if let Some(store) = &this.store {
                            if let Err(e) = store.record_schedule_fired(&plugin, timing::to_millis(now)).await {
                                tracing::warn!(plugin, "{e:#}; a restart may count this fire time as missed");
                            }
                        }
                    };
                    match call {
                        Some(call) => {
                            let ((), outcome) = tokio::join!(record, call);
                            Some((plugin, outcome))
                        }
                        None => {
                            record.await;
                            None
                        }
                    }
                });
            }
            let wait = match self.state().next_due() {
                Some(t) => (t - now).to_std().unwrap_or(Duration::ZERO).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    if let Some((plugin, outcome)) = done {
                        firing.remove(&plugin);
                        log_outcome(&plugin, &outcome);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
