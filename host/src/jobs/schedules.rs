//! The `preheat_schedules` table: schedule overrides made through the API of
//! `preheat serve` (they win over the config) and when each plugin's schedule
//! last fired (for the missed-runs policy). See [`crate::schedule`].
//!
//! Booleans are bound as integers and compared with `<> 0` (an INTEGER column in
//! SQLite, BOOLEAN in PostgreSQL); times are RFC 3339 UTC text in both dialects.

use super::JobStore;
use crate::db::Arg;
use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

/// A schedule as the job store keeps it (a row of `preheat_schedules`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    /// The plugin's name (primary key).
    pub plugin: String,
    /// The override's cron expression; `None`: no schedule.
    pub cron: Option<String>,
    /// The override's jitter.
    pub jitter: Option<Duration>,
    /// Whether the override's schedule is enabled.
    pub enabled: bool,
    /// Whether the row holds an API override; `false`: it only records `last_fired`.
    pub overridden: bool,
    /// When the plugin's schedule last fired (read only: [`JobStore::save_schedule`]
    /// keeps the stored value, [`JobStore::record_schedule_fired`] sets it).
    pub last_fired: Option<DateTime<Utc>>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl JobStore {
    /// Every stored schedule row, by plugin name.
    pub async fn schedules(&self) -> Result<Vec<StoredSchedule>> {
        let sql = "SELECT plugin, cron, CAST(jitter_ms AS TEXT), CASE WHEN enabled THEN '1' ELSE '0' END, \
                   CASE WHEN overridden THEN '1' ELSE '0' END, last_fired_at FROM preheat_schedules ORDER BY plugin";
        let rows = self
            .db
            .fetch_text(sql, Vec::new())
            .await
            .with_context(|| format!("reading preheat_schedules from the job store {}", self.address))?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let mut take = |i: usize| r[i].take();
                let plugin = take(0).unwrap_or_default();
                let last_fired = take(5).and_then(|t| match DateTime::parse_from_rfc3339(&t) {
                    Ok(t) => Some(t.with_timezone(&Utc)),
                    Err(e) => {
                        tracing::warn!(
                            plugin,
                            last_fired_at = t,
                            "ignoring an unreadable last_fired_at in preheat_schedules: {e}"
                        );
                        None
                    }
                });
                StoredSchedule {
                    cron: take(1),
                    jitter: take(2).and_then(|ms| ms.parse::<u64>().ok()).map(Duration::from_millis),
                    enabled: take(3).as_deref() == Some("1"),
                    overridden: take(4).as_deref() == Some("1"),
                    last_fired,
                    plugin,
                }
            })
            .collect())
    }

    /// Saves a plugin's schedule override (`overridden = false` drops it: the
    /// config's schedule applies again); keeps when it last fired.
    pub async fn save_schedule(&self, schedule: &StoredSchedule) -> Result<()> {
        let sql = format!(
            "INSERT INTO preheat_schedules (plugin, cron, jitter_ms, enabled, overridden, updated_at) \
             VALUES ({}, {}, CAST({} AS BIGINT), ({} <> 0), ({} <> 0), {}) \
             ON CONFLICT (plugin) DO UPDATE SET cron = excluded.cron, jitter_ms = excluded.jitter_ms, \
             enabled = excluded.enabled, overridden = excluded.overridden, updated_at = excluded.updated_at",
            self.p(1),
            self.p(2),
            self.p(3),
            self.p(4),
            self.p(5),
            self.p(6)
        );
        let jitter_ms = schedule
            .jitter
            .map(|j| Arg::Int(i64::try_from(j.as_millis()).unwrap_or(i64::MAX)))
            .unwrap_or(Arg::Null);
        let args = vec![
            Arg::Text(schedule.plugin.clone()),
            schedule.cron.clone().map(Arg::Text).unwrap_or(Arg::Null),
            jitter_ms,
            Arg::Int(schedule.enabled.into()),
            Arg::Int(schedule.overridden.into()),
            Arg::Text(rfc3339(Utc::now())),
        ];
        self.db.execute_with(&sql, args).await.with_context(|| {
            format!(
                "saving the schedule of plugin {:?} in the job store {}",
                schedule.plugin, self.address
            )
        })?;
        Ok(())
    }

    /// Records that `plugin`'s schedule fired at `at`.
    pub async fn record_schedule_fired(&self, plugin: &str, at: DateTime<Utc>) -> Result<()> {
        let now = rfc3339(Utc::now());
        let sql = format!(
            "INSERT INTO preheat_schedules (plugin, last_fired_at, updated_at) VALUES ({}, {}, {}) \
             ON CONFLICT (plugin) DO UPDATE SET last_fired_at = excluded.last_fired_at",
            self.p(1),
            self.p(2),
            self.p(3)
        );
        let args = vec![Arg::Text(plugin.into()), Arg::Text(rfc3339(at)), Arg::Text(now)];
        self.db.execute_with(&sql, args).await.with_context(|| {
            format!(
                "recording when plugin {plugin:?} fired in the job store {}",
                self.address
            )
        })?;
        Ok(())
    }
}
