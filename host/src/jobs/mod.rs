//! Job history and the run lock, kept in a SQL job store (SQLite by default,
//! PostgreSQL for teams).
//!
//! Every run writes one `cache_warming_jobs` row with `job_type = "run"` and
//! one row per plugin (`job_type` = the plugin's name), sharing a `run_id`;
//! `metadata` holds the report's counters (and live progress while running).
//! The shards of a run split across workers are runs of their own that share
//! a `run_group` ([`RunGroup`] judges them together).
//! The run lock is a leased row in `preheat_run_locks`: taken atomically with
//! an upsert that only succeeds over an expired lease, renewed by a heartbeat,
//! so a crashed run frees it after the lease runs out.
//!
//! History is bounded by `[jobs] keep` ([`JobStore::prune`], after every
//! recorded run and when `serve` starts): a finished run goes with all its
//! rows, in batches of [`PRUNE_BATCH`] runs; a run still running never does.

mod groups;
mod recorded;
mod schedules;

pub use groups::{GroupStatus, RunGroup, ShardAttempts};
pub use recorded::{run_recorded, Prune};
pub use schedules::StoredSchedule;

use crate::config::{Config, Keep};
use crate::db::{Arg, Db, DbOptions};
use crate::report::{Report, RunShard, RunStatus};
use anyhow::{Context, Result};
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a lock lease lasts without a heartbeat.
pub const LOCK_LEASE: Duration = Duration::from_secs(30);
/// How often a running job renews its lease and records progress.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// `job_type` of the row that stands for a whole run.
pub const RUN_JOB: &str = "run";
/// Status of a run whose process died: found `running` with a heartbeat older
/// than the lease, or holding a lock for a process of this host that is gone.
pub const INTERRUPTED: &str = "interrupted";

/// Most run rows of one run group [`JobStore::group`] reads (the newest).
pub const MAX_GROUP_RUNS: usize = 20_000;

/// Runs deleted per statement by [`JobStore::prune`].
pub const PRUNE_BATCH: usize = 500;
/// Most batches one [`JobStore::prune`] deletes; a larger backlog (history
/// kept before `keep` was lowered) is left for the next ones.
pub const PRUNE_MAX_BATCHES: usize = 20;

/// What one [`JobStore::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Runs deleted.
    pub runs: u64,
    /// Rows deleted (each run's row and its plugins' rows).
    pub rows: u64,
    /// Whether runs beyond `keep` are left (the batch bound was reached).
    pub more: bool,
}

/// The job history a process records its runs in: opened once, when the
/// process starts (a run then only locks, records and prunes).
#[derive(Clone)]
pub enum History {
    /// `[jobs] enabled = false`: runs are not recorded and take no lock.
    Off,
    /// The job store.
    Store(JobStore),
    /// The job store could not be opened: why. Runs go on without history
    /// and without the run lock, and their reports say so.
    Unavailable(String),
}

impl History {
    /// Opens the configured job store, logging why when it cannot be.
    pub async fn open(config: &Config) -> History {
        if !config.jobs.enabled {
            return History::Off;
        }
        match JobStore::open(config).await {
            Ok(store) => History::Store(store),
            Err(e) => {
                let msg = format!("job history could not be written: {e:#}");
                tracing::warn!("{msg}; warming goes on without history and without the run lock");
                History::Unavailable(msg)
            }
        }
    }

    /// The job store, when there is one.
    pub fn store(&self) -> Option<&JobStore> {
        match self {
            History::Store(store) => Some(store),
            History::Off | History::Unavailable(_) => None,
        }
    }
}

/// One SQL statement and its bind parameters.
type Statement = (String, Vec<Arg>);

/// The outcome of one job row of a run.
struct Finished<'a> {
    job_type: &'a str,
    status: &'a str,
    metadata: serde_json::Value,
    error: Option<&'a str>,
}

/// A connected job store.
#[derive(Clone)]
pub struct JobStore {
    db: Db,
    address: String,
}

/// The rows one run owns.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run's id (also in the report).
    pub run_id: String,
}

/// One row of `cache_warming_jobs`, as `history` and `status` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRow {
    /// Row id.
    pub id: i64,
    /// The run it belongs to.
    pub run_id: String,
    /// `run`, or the plugin's name.
    pub job_type: String,
    /// Strategy name.
    pub strategy: String,
    /// pending | running | completed | partial | failed | skipped | stopped | interrupted.
    pub status: String,
    /// Counters (and progress while running).
    pub metadata: serde_json::Value,
    /// Why it failed or was skipped.
    pub error_message: Option<String>,
    /// Start, RFC 3339.
    pub started_at: Option<String>,
    /// End, RFC 3339.
    pub completed_at: Option<String>,
    /// Last update, RFC 3339.
    pub updated_at: String,
    /// The run group of a run split across workers (`--group`).
    pub run_group: Option<String>,
    /// Its shard, 0-based.
    pub shard_index: Option<u32>,
    /// Shards the run is split into.
    pub shard_count: Option<u32>,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether process `pid` of this host is alive (a zombie is not).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// The run of a lock holder of this host whose process is gone.
fn dead_local_run(holder: &str, host: &str) -> Option<String> {
    let mut parts = holder.splitn(3, ':');
    let (h, pid, run_id) = (parts.next()?, parts.next()?, parts.next()?);
    let pid: u32 = pid.parse().ok()?;
    (h == host && pid != std::process::id() && !process_alive(pid)).then(|| run_id.to_string())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// Who holds a lock: host, process and run.
pub fn holder_id(run_id: &str) -> String {
    format!("{}:{}:{run_id}", this_host(), std::process::id())
}

impl JobStore {
    /// Opens the configured job store (creating the default SQLite file) and migrates it.
    pub async fn open(config: &Config) -> Result<JobStore> {
        let url = match &config.jobs.url {
            Some(url) => url.clone(),
            None => {
                let dir = config.state_dir();
                std::fs::create_dir_all(&dir).with_context(|| format!("creating state directory {}", dir.display()))?;
                format!("sqlite://{}", dir.join("preheat.db").display())
            }
        };
        let address = crate::support::redact_url(&url);
        let options = DbOptions {
            read_only: false,
            create_if_missing: true,
            // SQLite has one writer at a time: a second connection's write
            // waits in SQLite's busy handler (1 ms and up), one connection
            // queues in the pool instead (a run's statements and the previous
            // run's pruning meet often in `serve`).
            max_connections: if url.starts_with("sqlite:") { 1 } else { 2 },
            connect_timeout: Duration::from_secs(3),
        };
        let db = Db::connect(&url, options)
            .await
            .with_context(|| format!("job store {address} is unreachable"))?;
        let migrated = match &db {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        migrated.with_context(|| format!("migrating the job store {address}"))?;
        let store = JobStore { db, address };
        store
            .reconcile()
            .await
            .with_context(|| format!("marking dead runs interrupted in the job store {}", store.address))?;
        Ok(store)
    }

    /// Marks runs whose process died `interrupted` (with their plugin rows) and
    /// releases their locks: a lock held by a gone process of this host at once,
    /// any run whose heartbeat is older than [`LOCK_LEASE`]. Returns their ids.
    pub async fn reconcile(&self) -> Result<Vec<String>> {
        let host = this_host();
        let mut dead = Vec::new();
        let locks = self
            .db
            .fetch_text("SELECT name, holder FROM preheat_run_locks", Vec::new())
            .await?;
        for mut lock in locks {
            let (name, holder) = (lock[0].take().unwrap_or_default(), lock[1].take().unwrap_or_default());
            if let Some(run_id) = dead_local_run(&holder, &host) {
                self.unlock(&name, &holder).await?;
                tracing::warn!(lock = %name, %holder, "run lock of a process that is gone released");
                dead.push(run_id);
            }
        }
        let cutoff = humantime::format_rfc3339_millis(SystemTime::now() - LOCK_LEASE).to_string();
        let sql = format!(
            "SELECT run_id FROM cache_warming_jobs WHERE job_type = {} AND status = 'running' AND updated_at < {}",
            self.p(1),
            self.ts(2)
        );
        for mut row in self
            .db
            .fetch_text(&sql, vec![Arg::Text(RUN_JOB.into()), Arg::Text(cutoff)])
            .await?
        {
            dead.extend(row[0].take());
        }
        dead.sort();
        dead.dedup();
        let mut interrupted = Vec::new();
        for run_id in dead {
            let now = now_rfc3339();
            let sql = format!(
                "UPDATE cache_warming_jobs SET status = {}, error_message = {}, completed_at = {}, updated_at = {} WHERE run_id = {} AND status = 'running'",
                self.p(1), self.p(2), self.ts(3), self.ts(4), self.p(5)
            );
            let why = format!(
                "interrupted: the process running it stopped without recording an outcome (killed or crashed; found at {now})"
            );
            let args = vec![
                Arg::Text(INTERRUPTED.into()),
                Arg::Text(why),
                Arg::Text(now.clone()),
                Arg::Text(now),
                Arg::Text(run_id.clone()),
            ];
            if self.db.execute_with(&sql, args).await? > 0 {
                let sql = format!("DELETE FROM preheat_run_locks WHERE holder LIKE {}", self.p(1));
                self.db
                    .execute_with(&sql, vec![Arg::Text(format!("%:{run_id}"))])
                    .await?;
                tracing::warn!(%run_id, "a run left `running` by a dead process is marked interrupted");
                interrupted.push(run_id);
            }
        }
        Ok(interrupted)
    }

    /// The store's address without credentials.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn p(&self, n: usize) -> String {
        self.db.placeholder(n)
    }

    /// A placeholder for a timestamp given as RFC 3339 text.
    fn ts(&self, n: usize) -> String {
        match self.db {
            Db::Sqlite(_) => self.p(n),
            Db::Postgres(_) => format!("CAST({} AS TIMESTAMPTZ)", self.p(n)),
        }
    }

    /// A placeholder for an integer that may be NULL (bound as text).
    fn int(&self, n: usize) -> String {
        match self.db {
            Db::Sqlite(_) => self.p(n),
            Db::Postgres(_) => format!("CAST({} AS INTEGER)", self.p(n)),
        }
    }

    /// A placeholder for JSON given as text.
    fn json(&self, n: usize) -> String {
        match self.db {
            Db::Sqlite(_) => self.p(n),
            Db::Postgres(_) => format!("CAST({} AS JSONB)", self.p(n)),
        }
    }

    /// The statement inserting one job row per `job_types` (one statement,
    /// so one round trip and one commit), all with the same run, strategy,
    /// status, metadata and error; a row not `running` is final already.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        run_id: &str,
        job_types: &[&str],
        strategy: &str,
        status: &str,
        metadata: &serde_json::Value,
        error: Option<&str>,
        shard: Option<&RunShard>,
    ) -> Statement {
        // $1–$9 are shared by every row, then one job type per row.
        let (now, completed_at) = (self.ts(5), self.ts(6));
        let shared = format!(
            "{}, {}, {}, {now}, {completed_at}, {now}, {now}, {}, {}, {}, {}",
            self.p(2),
            self.p(3),
            self.json(4),
            self.p(10 + job_types.len()),
            self.p(7),
            self.int(8),
            self.int(9)
        );
        let rows: Vec<String> = (0..job_types.len())
            .map(|i| format!("({}, {}, {shared})", self.p(1), self.p(10 + i)))
            .collect();
        let sql = format!(
            "INSERT INTO cache_warming_jobs (run_id, job_type, strategy, status, metadata, started_at, completed_at, created_at, updated_at, error_message, run_group, shard_index, shard_count) VALUES {}",
            rows.join(", ")
        );
        let now = now_rfc3339();
        let mut args = vec![
            Arg::Text(run_id.into()),
            Arg::Text(strategy.into()),
            Arg::Text(status.into()),
            Arg::Text(metadata.to_string()),
            Arg::Text(now.clone()),
            if status == "running" { Arg::Null } else { Arg::Text(now) },
            shard.map(|s| Arg::Text(s.group.clone())).unwrap_or(Arg::Null),
            shard.map(|s| Arg::Int(s.index.into())).unwrap_or(Arg::Null),
            shard.map(|s| Arg::Int(s.count.into())).unwrap_or(Arg::Null),
        ];
        args.extend(job_types.iter().map(|t| Arg::Text(t.to_string())));
        args.push(error.map(|e| Arg::Text(e.to_string())).unwrap_or(Arg::Null));
        (sql, args)
    }

    /// Records the start of a run: one `running` row for the run and one per
    /// plugin, each with the run's shard when it is one.
    pub async fn start_run(
        &self,
        run_id: &str,
        strategy: &str,
        plugins: &[String],
        shard: Option<&RunShard>,
    ) -> Result<RunRecord> {
        let job_types: Vec<&str> = std::iter::once(RUN_JOB)
            .chain(plugins.iter().map(String::as_str))
            .collect();
        let (sql, args) = self.insert(
            run_id,
            &job_types,
            strategy,
            "running",
            &serde_json::json!({}),
            None,
            shard,
        );
        self.db.execute_with(&sql, args).await?;
        Ok(RunRecord {
            run_id: run_id.to_string(),
        })
    }

    /// Records a run that did not happen (lock held, skipped, failed before start).
    pub async fn record_unstarted(&self, report: &Report) -> Result<()> {
        let status = status_name(report.status);
        let run_id = if report.run_id.is_empty() {
            format!("unstarted-{}", unix_now())
        } else {
            report.run_id.clone()
        };
        let totals = serde_json::to_value(&report.totals)?;
        let (sql, args) = self.insert(
            &run_id,
            &[RUN_JOB],
            &report.strategy,
            status,
            &totals,
            report.error.as_deref(),
            report.shard.as_ref(),
        );
        self.db.execute_with(&sql, args).await?;
        Ok(())
    }

    /// Stores live progress in the run row.
    pub async fn progress(&self, record: &RunRecord, progress: &serde_json::Value) -> Result<()> {
        let sql = format!(
            "UPDATE cache_warming_jobs SET metadata = {}, updated_at = {} WHERE run_id = {} AND job_type = {}",
            self.json(1),
            self.ts(2),
            self.p(3),
            self.p(4)
        );
        let args = vec![
            Arg::Text(progress.to_string()),
            Arg::Text(now_rfc3339()),
            Arg::Text(record.run_id.clone()),
            Arg::Text(RUN_JOB.into()),
        ];
        self.db.execute_with(&sql, args).await?;
        Ok(())
    }

    /// The statement recording the outcome of some of a run's job rows: one
    /// UPDATE (so one round trip, and the rows become final together).
    fn finish(&self, run_id: &str, rows: &[Finished]) -> Statement {
        // $1 now, $2 the run; then per row: job type, status, metadata, error.
        let at = |i: usize, field: usize| 3 + 4 * i + field;
        let case = |value: &dyn Fn(usize) -> String| {
            let arms: String = (0..rows.len())
                .map(|i| format!(" WHEN {} THEN {}", self.p(at(i, 0)), value(i)))
                .collect();
            format!("CASE job_type{arms} END")
        };
        let types: Vec<String> = (0..rows.len()).map(|i| self.p(at(i, 0))).collect();
        let sql = format!(
            "UPDATE cache_warming_jobs SET status = {}, metadata = {}, error_message = {}, completed_at = {}, updated_at = {} WHERE run_id = {} AND job_type IN ({})",
            case(&|i| self.p(at(i, 1))),
            case(&|i| self.json(at(i, 2))),
            case(&|i| self.p(at(i, 3))),
            self.ts(1),
            self.ts(1),
            self.p(2),
            types.join(", ")
        );
        let mut args = vec![Arg::Text(now_rfc3339()), Arg::Text(run_id.into())];
        for row in rows {
            args.push(Arg::Text(row.job_type.into()));
            args.push(Arg::Text(row.status.into()));
            args.push(Arg::Text(row.metadata.to_string()));
            args.push(row.error.map(|e| Arg::Text(e.into())).unwrap_or(Arg::Null));
        }
        (sql, args)
    }

    /// Records the outcome of every plugin and of the run.
    pub async fn finish_run(&self, record: &RunRecord, report: &Report) -> Result<()> {
        let mut rows = Vec::with_capacity(report.plugins.len() + 1);
        for p in &report.plugins {
            let mut metadata = serde_json::to_value(&p.counters)?;
            metadata["produce_p50_us"] = p.produce_p50_us.into();
            metadata["produce_p99_us"] = p.produce_p99_us.into();
            // The plugin's own failure, else its first key error, says what went wrong.
            let first_key_error = report.errors.iter().find(|e| e.plugin == p.name);
            let error = p.error.as_deref().or(first_key_error.map(|e| e.error.as_str()));
            rows.push(Finished {
                job_type: &p.name,
                status: status_name(p.status()),
                metadata,
                error,
            });
        }
        let mut metadata = serde_json::to_value(&report.totals)?;
        metadata["duration_ms"] = report.duration_ms.into();
        metadata["deadline_hit"] = report.deadline_hit.into();
        metadata["backend"] = report.backend.clone().into();
        // One statement: the run row is never final while its plugins' rows are not (pruning relies on it).
        rows.push(Finished {
            job_type: RUN_JOB,
            status: status_name(report.status),
            metadata,
            error: report.error.as_deref(),
        });
        let (sql, args) = self.finish(&record.run_id, &rows);
        self.db.execute_with(&sql, args).await?;
        Ok(())
    }

    /// Deletes the finished runs that `keep` does not keep, each with all its
    /// rows (a run's rows are finished in one statement: its run row is final only with its plugins' rows),
    /// at most [`PRUNE_BATCH`] runs per statement and [`PRUNE_MAX_BATCHES`]
    /// statements. A run whose row is `running` or `pending` is never deleted;
    /// a count counts it among the runs kept.
    pub async fn prune(&self, keep: Keep) -> Result<Pruned> {
        let (older, bound) = match keep {
            Keep::All => return Ok(Pruned::default()),
            Keep::Runs(n) => {
                let sql = format!(
                    "SELECT CAST(id AS TEXT) FROM cache_warming_jobs WHERE job_type = {} ORDER BY id DESC LIMIT 1 OFFSET {}",
                    self.p(1),
                    n - 1
                );
                let oldest_kept = self.db.fetch_text(&sql, vec![Arg::Text(RUN_JOB.into())]).await?;
                let Some(id) = oldest_kept.into_iter().next().and_then(|mut r| r[0].take()) else {
                    return Ok(Pruned::default());
                };
                (format!("id < {}", self.p(2)), Arg::Int(id.parse()?))
            }
            Keep::For(age) => {
                let cutoff = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
                let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
                (format!("created_at < {}", self.ts(2)), Arg::Text(cutoff))
            }
        };
        let select = format!(
            "SELECT run_id FROM cache_warming_jobs WHERE job_type = {} AND status NOT IN ('running', 'pending') AND {older} ORDER BY id LIMIT {PRUNE_BATCH}",
            self.p(1)
        );
        let mut pruned = Pruned::default();
        for _ in 0..PRUNE_MAX_BATCHES {
            let runs: Vec<String> = self
                .db
                .fetch_text(&select, vec![Arg::Text(RUN_JOB.into()), bound.clone()])
                .await?
                .into_iter()
                .filter_map(|mut r| r[0].take())
                .collect();
            if runs.is_empty() {
                return Ok(pruned);
            }
            let list: Vec<String> = (1..=runs.len()).map(|i| self.p(i)).collect();
            let sql = format!("DELETE FROM cache_warming_jobs WHERE run_id IN ({})", list.join(", "));
            let count = runs.len();
            pruned.rows += self
                .db
                .execute_with(&sql, runs.into_iter().map(Arg::Text).collect())
                .await?;
            pruned.runs += count as u64;
            if count < PRUNE_BATCH {
                return Ok(pruned);
            }
        }
        pruned.more = true;
        Ok(pruned)
    }

    /// The latest runs (run rows only), newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<JobRow>> {
        self.rows(
            &format!("WHERE job_type = {} ORDER BY id DESC LIMIT {limit}", self.p(1)),
            vec![Arg::Text(RUN_JOB.into())],
        )
        .await
    }

    /// Runs still marked running, with their plugin rows.
    pub async fn running(&self) -> Result<Vec<JobRow>> {
        let sql = format!(
            "WHERE run_id IN (SELECT run_id FROM cache_warming_jobs WHERE job_type = {} AND status = 'running') ORDER BY id",
            self.p(1)
        );
        self.rows(&sql, vec![Arg::Text(RUN_JOB.into())]).await
    }

    /// Every run row of the run group `group` (each shard's attempts), oldest
    /// first, at most [`MAX_GROUP_RUNS`].
    pub async fn group(&self, group: &str) -> Result<Vec<JobRow>> {
        let sql = format!(
            "WHERE run_group = {} AND job_type = {} ORDER BY id DESC LIMIT {MAX_GROUP_RUNS}",
            self.p(1),
            self.p(2)
        );
        let mut rows = self
            .rows(&sql, vec![Arg::Text(group.into()), Arg::Text(RUN_JOB.into())])
            .await?;
        rows.reverse();
        Ok(rows)
    }

    async fn rows(&self, tail: &str, args: Vec<Arg>) -> Result<Vec<JobRow>> {
        let sql = format!(
            "SELECT CAST(id AS TEXT), run_id, job_type, strategy, status, CAST(metadata AS TEXT), error_message, CAST(started_at AS TEXT), CAST(completed_at AS TEXT), CAST(updated_at AS TEXT), run_group, CAST(shard_index AS TEXT), CAST(shard_count AS TEXT) FROM cache_warming_jobs {tail}"
        );
        let rows = self.db.fetch_text(&sql, args).await?;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                let mut take = |i: usize| r[i].take();
                JobRow {
                    id: take(0).and_then(|s| s.parse().ok()).unwrap_or_default(),
                    run_id: take(1).unwrap_or_default(),
                    job_type: take(2).unwrap_or_default(),
                    strategy: take(3).unwrap_or_default(),
                    status: take(4).unwrap_or_default(),
                    metadata: take(5).and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default(),
                    error_message: take(6),
                    started_at: take(7),
                    completed_at: take(8),
                    updated_at: take(9).unwrap_or_default(),
                    run_group: take(10),
                    shard_index: take(11).and_then(|s| s.parse().ok()),
                    shard_count: take(12).and_then(|s| s.parse().ok()),
                }
            })
            .collect())
    }

    /// Takes the lock `name` for `holder` when it is free or its lease expired.
    pub async fn try_lock(&self, name: &str, holder: &str) -> Result<bool> {
        let now = unix_now();
        let sql = format!(
            "INSERT INTO preheat_run_locks (name, holder, acquired_at, expires_at) VALUES ({}, {}, {}, {}) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
             WHERE preheat_run_locks.expires_at < {}",
            self.p(1), self.p(2), self.ts(3), self.p(4), self.p(5)
        );
        let args = vec![
            Arg::Text(name.into()),
            Arg::Text(holder.into()),
            Arg::Text(now_rfc3339()),
            Arg::Int(now + LOCK_LEASE.as_secs() as i64),
            Arg::Int(now),
        ];
        Ok(self.db.execute_with(&sql, args).await? == 1)
    }

    /// Extends the lease; `false` when the lock was lost.
    pub async fn renew_lock(&self, name: &str, holder: &str) -> Result<bool> {
        let sql = format!(
            "UPDATE preheat_run_locks SET expires_at = {} WHERE name = {} AND holder = {}",
            self.p(1),
            self.p(2),
            self.p(3)
        );
        let args = vec![
            Arg::Int(unix_now() + LOCK_LEASE.as_secs() as i64),
            Arg::Text(name.into()),
            Arg::Text(holder.into()),
        ];
        Ok(self.db.execute_with(&sql, args).await? == 1)
    }

    /// Releases the lock if `holder` still holds it.
    pub async fn unlock(&self, name: &str, holder: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM preheat_run_locks WHERE name = {} AND holder = {}",
            self.p(1),
            self.p(2)
        );
        self.db
            .execute_with(&sql, vec![Arg::Text(name.into()), Arg::Text(holder.into())])
            .await?;
        Ok(())
    }

    /// Who holds the lock `name` (and since when), if anyone does with a live lease.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<(String, String)>> {
        let sql = format!(
            "SELECT holder, CAST(acquired_at AS TEXT) FROM preheat_run_locks WHERE name = {} AND expires_at >= {}",
            self.p(1),
            self.p(2)
        );
        let mut rows = self
            .db
            .fetch_text(&sql, vec![Arg::Text(name.into()), Arg::Int(unix_now())])
            .await?;
        Ok(rows
            .pop()
            .map(|mut r| (r[0].take().unwrap_or_default(), r[1].take().unwrap_or_default())))
    }
}

/// [`JobStore::prune`] with `[jobs] keep`, logged: what it deleted at DEBUG
/// (INFO when a backlog is left), a failure as a warning (history only grows
/// until the next prune; warming is never affected).
pub async fn prune_history(store: &JobStore, keep: Keep) {
    match store.prune(keep).await {
        Ok(pruned) if pruned.more => tracing::info!(
            runs = pruned.runs,
            rows = pruned.rows,
            "job history pruned to {keep} ([jobs] keep); more older runs are left for the next prunes"
        ),
        Ok(pruned) if pruned.runs > 0 => {
            tracing::debug!(
                runs = pruned.runs,
                rows = pruned.rows,
                "job history pruned to {keep} ([jobs] keep)"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            "could not prune the job history {} to {keep} ([jobs] keep): {e:#}",
            store.address()
        ),
    }
}

/// The lower-case status name stored in the table.
pub fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Completed => "completed",
        RunStatus::Partial => "partial",
        RunStatus::Failed => "failed",
        RunStatus::Skipped => "skipped",
        RunStatus::Stopped => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &std::path::Path) -> JobStore {
        let toml = format!("[jobs]\nurl = \"sqlite://{}\"\n", dir.join("jobs.db").display());
        JobStore::open(&Config::parse(&toml, &dir.join("preheat.toml")).unwrap())
            .await
            .unwrap()
    }

    /// A finished run: its run row and a plugin row (left as the run recorded it).
    async fn finished(store: &JobStore, run_id: &str) {
        let record = store.start_run(run_id, "proactive", &["p".into()], None).await.unwrap();
        let mut report = Report::skipped("done");
        report.run_id = run_id.into();
        store.finish_run(&record, &report).await.unwrap();
    }

    async fn run_ids(store: &JobStore) -> Vec<String> {
        let rows = store.rows("ORDER BY id", Vec::new()).await.unwrap();
        rows.into_iter()
            .map(|r| format!("{}/{}", r.run_id, r.job_type))
            .collect()
    }

    #[tokio::test]
    async fn a_finished_run_records_each_plugin_and_the_run_in_its_own_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let record = store
            .start_run("r1", "on-demand", &["a".into(), "b".into()], None)
            .await
            .unwrap();
        store.start_run("r2", "on-demand", &["a".into()], None).await.unwrap();
        let plugin = |name: &str, written: u64, error: Option<&str>| crate::report::PluginReport {
            name: name.into(),
            counters: crate::report::Counters {
                enumerated: written,
                written,
                ..Default::default()
            },
            produce_calls: 1,
            produce_p50_us: Some(7),
            produce_p99_us: Some(9),
            produce_total_us: 7,
            error: error.map(String::from),
        };
        let mut report = Report::failed(&anyhow::anyhow!("it's 'quoted'"));
        report.run_id = "r1".into();
        report.plugins = vec![plugin("a", 2, None), plugin("b", 0, Some("b would not load"))];
        report.totals.written = 2;
        store.finish_run(&record, &report).await.unwrap();

        let rows = store.rows("ORDER BY id", Vec::new()).await.unwrap();
        let row = |run: &str, job: &str| rows.iter().find(|r| r.run_id == run && r.job_type == job).unwrap();
        let (run, a, b) = (row("r1", "run"), row("r1", "a"), row("r1", "b"));
        assert_eq!(
            (run.status.as_str(), run.error_message.as_deref()),
            ("failed", Some("it's 'quoted'"))
        );
        assert_eq!(run.metadata["written"], 2);
        assert_eq!((a.status.as_str(), a.error_message.as_deref()), ("completed", None));
        assert_eq!(
            (a.metadata["written"].as_u64(), a.metadata["produce_p99_us"].as_u64()),
            (Some(2), Some(9))
        );
        assert_eq!(
            (b.status.as_str(), b.error_message.as_deref()),
            ("failed", Some("b would not load"))
        );
        assert!(run.completed_at.is_some() && a.completed_at.is_some() && b.completed_at.is_some());
        // Another run's rows with the same job types are untouched.
        assert_eq!(row("r2", "run").status, "running");
        assert_eq!(row("r2", "a").status, "running");
        assert!(row("r2", "a").completed_at.is_none());
    }

    #[tokio::test]
    async fn prune_keeps_the_newest_runs_and_every_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store.start_run("live", "proactive", &["p".into()], None).await.unwrap();
        for i in 0..6 {
            finished(&store, &format!("r{i}")).await;
        }
        let pruned = store.prune(Keep::Runs(3)).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                runs: 3,
                rows: 6,
                more: false
            }
        );
        assert_eq!(
            run_ids(&store).await,
            ["live/run", "live/p", "r3/run", "r3/p", "r4/run", "r4/p", "r5/run", "r5/p"]
        );
        assert_eq!(store.prune(Keep::Runs(3)).await.unwrap(), Pruned::default());
        assert_eq!(store.prune(Keep::All).await.unwrap(), Pruned::default());
    }

    #[tokio::test]
    async fn prune_by_age_deletes_finished_runs_started_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store.start_run("live", "proactive", &[], None).await.unwrap();
        finished(&store, "old").await;
        finished(&store, "new").await;
        let backdate =
            "UPDATE cache_warming_jobs SET created_at = '2000-01-01T00:00:00.000Z' WHERE run_id IN ('live', 'old')";
        store.db.execute(backdate).await.unwrap();
        let pruned = store.prune(Keep::For(Duration::from_secs(30 * 86400))).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                runs: 1,
                rows: 2,
                more: false
            }
        );
        assert_eq!(run_ids(&store).await, ["live/run", "new/run", "new/p"]);
    }
}
