//! SQL sources: the application databases plugins read through the `query`
//! import. Read-only by construction, and a plugin's connections are its own:
//!
//! - each plugin that is granted a source gets a pool of its own
//!   ([`SourceSet::grant`] opens a fresh one on every call), so no connection,
//!   and no state on one, is ever shared between plugins;
//! - SQLite sources are opened read-only and locked down (`sqlite`: no
//!   ATTACH, an allow-reads-only authorizer, one read-only statement per query,
//!   a cap on every value);
//! - PostgreSQL queries run in a rolled-back `READ ONLY` transaction with a
//!   statement timeout, the role is checked at connect, and a connection left
//!   with session state is closed (`postgres`);
//! - every query has a timeout, a row cap and a byte cap (`max_result_bytes`,
//!   counted while rows are decoded); lost connections are retried with backoff.

mod decode;
mod postgres;
mod sqlite;

use crate::config::SourceConfig;
use crate::db::{pool_options, sqlite_pool_options, Db, DbConnectOptions, DbOptions};
use crate::support::Cancel;
use crate::wit::preheat::plugin::types::{HostError, Rows, SqlValue};
use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Connection, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Attempts per query when the connection is lost.
const QUERY_ATTEMPTS: u32 = 3;
/// First delay between attempts.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// After a query gave up on a lost connection, others fail at once for this long.
const OUTAGE_MEMORY: Duration = Duration::from_secs(2);
/// Rows a SQLite connection's worker thread may decode ahead of the query
/// (sqlx's default is 50): with values capped, this bounds what a result
/// holds in the host beyond `max_result_bytes` to a few rows.
const SQLITE_ROWS_AHEAD: usize = 4;

/// The sources of a config, checked when plugins are loaded; a source that is down or
/// refused fails only the plugins granted it.
#[derive(Default)]
pub struct SourceSet {
    checked: BTreeMap<String, Arc<Target>>,
    unreachable: BTreeMap<String, String>,
}

impl SourceSet {
    /// Checks every source in the config, concurrently: a connection is
    /// opened, locked down, checked and closed.
    pub async fn connect(sources: &BTreeMap<String, SourceConfig>) -> SourceSet {
        let attempts = sources
            .iter()
            .map(|(name, config)| async move { (name.clone(), Target::check(name, config).await) });
        let mut set = SourceSet::default();
        for (name, result) in futures_util::future::join_all(attempts).await {
            match result {
                Ok(target) => {
                    set.checked.insert(name, Arc::new(target));
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::error!(source = %name, "{msg}");
                    set.unreachable.insert(name, msg);
                }
            }
        }
        set
    }

    /// The sources a plugin is granted, each with a new pool of its own (call
    /// once per plugin), or why it cannot run.
    pub fn grant(&self, names: &[String]) -> Result<BTreeMap<String, Arc<Source>>, String> {
        names
            .iter()
            .map(|name| match (self.checked.get(name), self.unreachable.get(name)) {
                (Some(target), _) => Ok((name.clone(), Arc::new(Source::open(target.clone())))),
                (None, Some(error)) => Err(error.clone()),
                (None, None) => Err(format!("source `{name}` is not defined in [sources]")),
            })
            .collect()
    }
}

/// A source that passed its check at connect: what its pools are made from.
struct Target {
    name: String,
    address: String,
    config: SourceConfig,
    connect: DbConnectOptions,
    pool: DbOptions,
}

impl Target {
    /// Opens one connection, locks it down, checks it (a round trip; on
    /// PostgreSQL the role) and closes it, failing with the source's name and address.
    async fn check(name: &str, config: &SourceConfig) -> Result<Target> {
        let address = crate::support::redact_url(&config.url);
        let pool = DbOptions {
            read_only: true,
            create_if_missing: false,
            max_connections: config.max_connections,
            connect_timeout: config.connect_timeout,
        };
        let connect = match DbConnectOptions::parse(&config.url, &pool)
            .with_context(|| format!("source `{name}` ({address})"))?
        {
            DbConnectOptions::Sqlite(c) => DbConnectOptions::Sqlite(c.row_buffer_size(SQLITE_ROWS_AHEAD)),
            postgres => postgres,
        };
        let unreachable = || format!("source `{name}` ({address}) is unreachable");
        let check = async {
            match &connect {
                DbConnectOptions::Sqlite(options) => {
                    let mut conn = sqlx::SqliteConnection::connect_with(options)
                        .await
                        .with_context(unreachable)?;
                    sqlite::lock_down(&mut conn).await.with_context(unreachable)?;
                    sqlx::query("SELECT 1")
                        .execute(&mut conn)
                        .await
                        .with_context(unreachable)?;
                    conn.close().await.with_context(unreachable)
                }
                DbConnectOptions::Postgres(options) => {
                    let mut conn = sqlx::PgConnection::connect_with(options)
                        .await
                        .with_context(unreachable)?;
                    postgres::check_role(&mut conn, name, &address, config.allow_privileged_role).await?;
                    conn.close().await.with_context(unreachable)
                }
            }
        };
        match tokio::time::timeout(config.connect_timeout, check).await {
            Ok(checked) => checked?,
            Err(_) => anyhow::bail!(
                "{}: no answer within connect_timeout = {:?}",
                unreachable(),
                config.connect_timeout
            ),
        }
        Ok(Target {
            name: name.to_string(),
            address,
            config: config.clone(),
            connect,
            pool,
        })
    }
}

/// One source as granted to one plugin: a pool of that plugin's own, opened
/// lazily, every connection locked down when it opens.
pub struct Source {
    target: Arc<Target>,
    db: Db,
    /// When and why the last query gave up on a lost connection.
    outage: std::sync::Mutex<Option<(Instant, String)>>,
}

impl Source {
    /// A new lazily connected pool for `target`.
    fn open(target: Arc<Target>) -> Source {
        let db = match &target.connect {
            DbConnectOptions::Sqlite(options) => Db::Sqlite(
                sqlite_pool_options(&target.pool)
                    .after_connect(|conn, _| Box::pin(sqlite::lock_down(conn)))
                    .connect_lazy_with(options.clone()),
            ),
            DbConnectOptions::Postgres(options) => Db::Postgres(
                pool_options(&target.pool)
                    .after_release(|conn, _| Box::pin(postgres::is_clean(conn)))
                    .connect_lazy_with(options.clone()),
            ),
        };
        Source {
            target,
            db,
            outage: Default::default(),
        }
    }

    /// The source's name in the config.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// Runs a read-only query, retrying lost connections; errors are typed
    /// and worded for the plugin: transient (the connection is lost), denied
    /// (the sandbox refused the statement), limit (query_timeout, max_rows,
    /// max_result_bytes), invalid (anything else the database refused).
    pub async fn query(&self, sql: &str, params: &[SqlValue], cancel: &Cancel) -> Result<Rows, HostError> {
        let Target {
            name, address, config, ..
        } = &*self.target;
        // While the source is known to be down, fail at once instead of
        // retrying every query of a batch.
        if let Some(error) = self.recent_outage() {
            return Err(HostError::transient(error));
        }
        let mut attempt = 1;
        loop {
            let outcome = tokio::select! {
                r = tokio::time::timeout(config.query_timeout + Duration::from_secs(1), self.run(sql, params)) => r,
                _ = cancel.cancelled() => return Err(HostError::transient(format!("query on source `{name}` interrupted: the run was stopped"))),
            };
            match outcome {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(QueryError::Transient(e))) if attempt < QUERY_ATTEMPTS => {
                    tracing::warn!(source = %name, attempt, error = %e, "query failed on a lost connection; retrying");
                    tokio::time::sleep(crate::support::backoff(RETRY_BASE, attempt)).await;
                    attempt += 1;
                }
                Ok(Err(QueryError::Transient(e))) => {
                    let error = format!(
                        "query on source `{name}` ({address}) failed after {attempt} attempts, the connection is lost: {e}"
                    );
                    *self.outage.lock().unwrap() = Some((Instant::now(), error.clone()));
                    return Err(HostError::transient(error));
                }
                Ok(Err(QueryError::Refused(why))) => {
                    return Err(HostError::denied(format!("query on source `{name}` refused: {why}")))
                }
                Ok(Err(QueryError::Limit(e))) => {
                    return Err(HostError::limit(format!(
                        "query on source `{name}` ({address}) failed: {e}"
                    )))
                }
                Ok(Err(QueryError::Permanent(e) | QueryError::TooBig(e))) => {
                    return Err(HostError::invalid(format!(
                        "query on source `{name}` ({address}) failed: {e}"
                    )))
                }
                Err(_) => return Err(HostError::limit(self.timed_out())),
            }
        }
    }

    /// The last connection failure, while it is recent enough to skip retrying.
    fn recent_outage(&self) -> Option<String> {
        let outage = self.outage.lock().unwrap();
        outage
            .as_ref()
            .filter(|(at, _)| at.elapsed() < OUTAGE_MEMORY)
            .map(|(_, error)| error.clone())
    }

    fn timed_out(&self) -> String {
        format!(
            "query on source `{}` timed out after {:?} (query_timeout); add an index or a LIMIT, or raise query_timeout",
            self.target.name, self.target.config.query_timeout
        )
    }

    async fn run(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, QueryError> {
        match &self.db {
            Db::Sqlite(pool) => self.run_sqlite(pool, sql, params).await,
            Db::Postgres(pool) => self.run_postgres(pool, sql, params).await,
        }
    }

    /// Checks the statement on the connection it will run on (see [`sqlite`]),
    /// caps its values, then runs it under a progress handler that stops it at
    /// `query_timeout`.
    async fn run_sqlite(&self, pool: &SqlitePool, sql: &str, params: &[SqlValue]) -> Result<Rows, QueryError> {
        let mut running = RunningSqlite {
            conn: Some(pool.acquire().await.map_err(QueryError::from)?),
            abandoned: Arc::default(),
            running: false,
        };
        let conn = running.conn.as_mut().expect("just acquired");
        let deadline = Instant::now() + self.target.config.query_timeout;
        let abandoned = running.abandoned.clone();
        let value_cap = {
            let mut handle = conn.lock_handle().await.map_err(QueryError::from)?;
            let db = handle.as_raw_handle().as_ptr();
            let max_result_bytes = self.target.config.max_result_bytes.0;
            // SAFETY: the lock gives this thread sole use of the handle; the
            // pool's `after_connect` locked the connection down. The whole cap
            // first: it also bounds the literals of the SQL being checked.
            let columns = unsafe {
                sqlite::cap_values(db, max_result_bytes);
                sqlite::check(db, sql)
            }
            .map_err(|refusal| match refusal {
                sqlite::Refusal::Refused(why) => QueryError::Refused(why),
                sqlite::Refusal::Invalid(e) => QueryError::Permanent(e),
            })?;
            let cap = ValueCap::new(max_result_bytes, columns);
            // SAFETY: as above.
            unsafe { sqlite::cap_values(db, cap.bytes) };
            handle.set_progress_handler(10_000, move || {
                Instant::now() < deadline && !abandoned.load(std::sync::atomic::Ordering::Relaxed)
            });
            cap
        };
        let mut query = sqlx::query(AssertSqlSafe(sql.to_string()));
        for p in params {
            query = decode::bind_sqlite(query, p);
        }
        running.running = true;
        let conn = running.conn.as_mut().expect("taken only after the query");
        let result = self.collect(query.fetch(&mut **conn), decode::sqlite_row).await;
        let mut conn = running.conn.take().expect("taken only here or on drop");
        conn.lock_handle()
            .await
            .map_err(QueryError::from)?
            .remove_progress_handler();
        match result {
            Err(QueryError::Permanent(e)) if e.contains("interrupted") && Instant::now() >= deadline => {
                Err(QueryError::Limit(self.timed_out()))
            }
            Err(QueryError::TooBig(_)) => Err(QueryError::Limit(value_cap.exceeded(&self.target))),
            other => other,
        }
    }

    async fn run_postgres(&self, pool: &PgPool, sql: &str, params: &[SqlValue]) -> Result<Rows, QueryError> {
        let mut tx = pool.begin_with("BEGIN READ ONLY").await.map_err(QueryError::from)?;
        // A function call, not `SET LOCAL`: it takes the transaction's
        // snapshot, after which `SET TRANSACTION READ WRITE` is refused.
        sqlx::query("SELECT set_config('statement_timeout', $1, true)")
            .bind(self.target.config.query_timeout.as_millis().max(1).to_string())
            .execute(&mut *tx)
            .await
            .map_err(QueryError::from)?;
        let mut query = sqlx::query(AssertSqlSafe(sql.to_string()));
        for p in params {
            query = decode::bind_postgres(query, p);
        }
        let rows = self.collect(query.fetch(&mut *tx), decode::postgres_row).await;
        // Nothing a plugin runs is ever committed.
        let _ = tx.rollback().await;
        rows
    }

    /// Collects rows up to the row cap and the byte cap, decoding each with `decode`.
    async fn collect<R: Row>(
        &self,
        mut stream: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
        decode: impl Fn(&R) -> Result<Vec<SqlValue>, String>,
    ) -> Result<Rows, QueryError> {
        let Target { name, config, .. } = &*self.target;
        let mut rows = Rows {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        let mut bytes: u64 = 0;
        while let Some(row) = stream.try_next().await.map_err(QueryError::from)? {
            if rows.rows.is_empty() {
                rows.columns = row
                    .columns()
                    .iter()
                    .map(|c| sqlx::Column::name(c).to_string())
                    .collect();
                bytes = rows.columns.iter().map(|c| c.len() as u64).sum();
            }
            if rows.rows.len() == config.max_rows {
                return Err(QueryError::Limit(format!(
                    "the query returned more than max_rows = {} rows; add a LIMIT (page with a cursor) or raise max_rows for source `{name}`",
                    config.max_rows
                )));
            }
            let values = decode(&row).map_err(QueryError::Permanent)?;
            bytes += values.iter().map(decode::value_bytes).sum::<u64>();
            if bytes > config.max_result_bytes.0 {
                return Err(QueryError::Limit(format!(
                    "the result is larger than max_result_bytes = {} ({} bytes) after {} rows; select fewer or shorter columns, add a LIMIT (page with a cursor), or raise max_result_bytes for source `{name}`",
                    config.max_result_bytes,
                    config.max_result_bytes.0,
                    rows.rows.len() + 1
                )));
            }
            rows.rows.push(values);
        }
        Ok(rows)
    }
}

/// The longest string or BLOB a SQLite query may build or return: its share
/// of `max_result_bytes` per result column, so that even one row, built
/// whole inside SQLite before the host sees it, stays within the cap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ValueCap {
    bytes: u64,
    columns: usize,
}

impl ValueCap {
    fn new(max_result_bytes: u64, columns: usize) -> ValueCap {
        let columns = columns.max(1);
        ValueCap {
            bytes: (max_result_bytes / columns as u64).max(1),
            columns,
        }
    }

    /// The message of a query that built a larger value.
    fn exceeded(&self, target: &Target) -> String {
        format!(
            "a value built or returned by the query is larger than {} bytes, the per-value cap (max_result_bytes = {} shared by {} result column{}); select fewer or shorter values (substr()), or raise max_result_bytes for source `{}`",
            self.bytes,
            target.config.max_result_bytes,
            self.columns,
            if self.columns == 1 { "" } else { "s" },
            target.name
        )
    }
}

/// A failed query.
#[derive(Debug)]
enum QueryError {
    /// Connection lost, pool exhausted, server shutting down: retried.
    Transient(String),
    /// The sandbox refused the statement.
    Refused(String),
    /// SQLite built a string or BLOB over its length limit (SQLITE_TOOBIG).
    TooBig(String),
    /// Over one of the source's limits (query_timeout, max_rows, max_result_bytes), named.
    Limit(String),
    /// Any other error.
    Permanent(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Transient(e)
            | QueryError::Refused(e)
            | QueryError::TooBig(e)
            | QueryError::Limit(e)
            | QueryError::Permanent(e) => f.write_str(e),
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        /// SQLite's primary result code for an oversized string or BLOB.
        const SQLITE_TOOBIG: &str = "18";
        /// PostgreSQL's query_canceled, which its statement_timeout raises.
        const PG_QUERY_CANCELED: &str = "57014";
        /// PostgreSQL's read_only_sql_transaction and insufficient_privilege:
        /// a write in the read-only transaction, or what the role may not do.
        const PG_REFUSALS: [&str; 2] = ["25006", "42501"];
        match &e {
            sqlx::Error::Database(db) if db.code().is_some_and(|c| PG_REFUSALS.contains(&c.as_ref())) => {
                QueryError::Refused(e.to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some(SQLITE_TOOBIG) => {
                QueryError::TooBig(e.to_string())
            }
            sqlx::Error::Database(db) if db.code().as_deref() == Some(PG_QUERY_CANCELED) => QueryError::Limit(format!(
                "{e} (the source's query_timeout); add an index or a LIMIT, or raise query_timeout"
            )),
            _ if crate::db::is_transient(&e) => QueryError::Transient(e.to_string()),
            _ => QueryError::Permanent(e.to_string()),
        }
    }
}

/// A SQLite query's connection while it runs. Dropped before the query
/// finished (the plugin call was cut by its timeout or the run's deadline),
/// it makes the progress handler interrupt the statement at its next check
/// and closes the connection instead of pooling it with that handler.
struct RunningSqlite {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
    /// The statement was started (before, a dropped connection goes back to the pool).
    running: bool,
}

impl Drop for RunningSqlite {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take().filter(|_| self.running) {
            self.abandoned.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(conn.detach());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_cap_is_the_result_cap_shared_by_the_columns() {
        assert_eq!(ValueCap::new(16 << 20, 1).bytes, 16 << 20);
        assert_eq!(ValueCap::new(16 << 20, 16).bytes, 1 << 20);
        assert_eq!(
            ValueCap::new(1024, 0),
            ValueCap {
                bytes: 1024,
                columns: 1
            }
        );
        assert_eq!(ValueCap::new(1024, 2000).bytes, 1);
    }

    #[test]
    fn max_result_bytes_defaults_to_16_mib_and_refuses_sizes_outside_1_kib_to_1_gib() {
        let parse = |extra: &str| toml::from_str::<SourceConfig>(&format!("url = \"sqlite://a.db\"\n{extra}"));
        let config = parse("").unwrap();
        assert_eq!(config.max_result_bytes.0, 16 << 20);
        assert!(!config.allow_privileged_role);
        assert_eq!(
            parse("max_result_bytes = \"1MiB\"").unwrap().max_result_bytes.0,
            1 << 20
        );
        for bad in ["max_result_bytes = 10", "max_result_bytes = \"2GiB\""] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(
                error.contains("outside 1 KiB ..= 1 GiB") && error.contains("line 2"),
                "{error}"
            );
        }
    }
}
