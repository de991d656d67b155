//! SQL sources: the application databases plugins read through the `query`
//! import. Read-only by construction: SQLite sources are opened read-only;
//! PostgreSQL queries run in a `READ ONLY` transaction with a statement
//! timeout (and connections default to read-only too). Every query has a
//! timeout and a row cap; lost connections are retried with backoff.

mod decode;

use crate::config::SourceConfig;
use crate::db::{Db, DbOptions};
use crate::runtime::{Cancel, Rows, SqlValue};
use anyhow::{Context, Result};
use futures_util::TryStreamExt;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Attempts per query when the connection is lost.
const QUERY_ATTEMPTS: u32 = 3;
/// First delay between attempts.
const RETRY_BASE: Duration = Duration::from_millis(100);
/// After a query gave up on a lost connection, others fail at once for this long.
const OUTAGE_MEMORY: Duration = Duration::from_secs(2);

/// The sources of a config, connected once per run; a source that is down
/// fails only the plugins granted it.
#[derive(Default)]
pub struct SourceSet {
    connected: BTreeMap<String, Arc<Source>>,
    unreachable: BTreeMap<String, String>,
}

impl SourceSet {
    /// Connects every source in the config, concurrently.
    pub async fn connect(sources: &BTreeMap<String, SourceConfig>) -> SourceSet {
        let attempts = sources
            .iter()
            .map(|(name, config)| async move { (name.clone(), Source::connect(name, config).await) });
        let mut set = SourceSet::default();
        for (name, result) in futures_util::future::join_all(attempts).await {
            match result {
                Ok(source) => {
                    set.connected.insert(name, Arc::new(source));
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

    /// The sources a plugin is granted, or why it cannot run.
    pub fn grant(&self, names: &[String]) -> Result<BTreeMap<String, Arc<Source>>, String> {
        names
            .iter()
            .map(|name| match (self.connected.get(name), self.unreachable.get(name)) {
                (Some(source), _) => Ok((name.clone(), source.clone())),
                (None, Some(error)) => Err(error.clone()),
                (None, None) => Err(format!("source `{name}` is not defined in [sources]")),
            })
            .collect()
    }
}

/// One connected source.
pub struct Source {
    name: String,
    address: String,
    config: SourceConfig,
    db: Db,
    /// When and why the last query gave up on a lost connection.
    outage: std::sync::Mutex<Option<(Instant, String)>>,
}

impl Source {
    /// Connects (and checks the connection), failing fast with the source's name and address.
    pub async fn connect(name: &str, config: &SourceConfig) -> Result<Source> {
        let address = crate::backend::redact_url(&config.url);
        let options = DbOptions {
            read_only: true,
            create_if_missing: false,
            max_connections: config.max_connections,
            connect_timeout: config.connect_timeout,
        };
        let db = Db::connect(&config.url, options)
            .await
            .with_context(|| format!("source `{name}` ({address}) is unreachable"))?;
        Ok(Source {
            name: name.to_string(),
            address,
            config: config.clone(),
            db,
            outage: Default::default(),
        })
    }

    /// The source's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs a read-only query, retrying lost connections; errors are messages for the plugin.
    pub async fn query(&self, sql: &str, params: &[SqlValue], cancel: &Cancel) -> Result<Rows, String> {
        // While the source is known to be down, fail at once instead of
        // retrying every query of a batch.
        if let Some(error) = self.recent_outage() {
            return Err(error);
        }
        let mut attempt = 1;
        loop {
            let outcome = tokio::select! {
                r = tokio::time::timeout(self.config.query_timeout + Duration::from_secs(1), self.run(sql, params)) => r,
                _ = cancel.cancelled() => return Err(format!("query on source `{}` interrupted: the run was stopped", self.name)),
            };
            match outcome {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(QueryError::Transient(e))) if attempt < QUERY_ATTEMPTS => {
                    tracing::warn!(source = %self.name, attempt, error = %e, "query failed on a lost connection; retrying");
                    tokio::time::sleep(crate::exec::backoff(RETRY_BASE, attempt)).await;
                    attempt += 1;
                }
                Ok(Err(QueryError::Transient(e))) => {
                    let error = format!(
                        "query on source `{}` ({}) failed after {attempt} attempts, the connection is lost: {e}",
                        self.name, self.address
                    );
                    *self.outage.lock().unwrap() = Some((Instant::now(), error.clone()));
                    return Err(error);
                }
                Ok(Err(e)) => {
                    return Err(format!(
                        "query on source `{}` ({}) failed: {e}",
                        self.name, self.address
                    ))
                }
                Err(_) => return Err(self.timed_out()),
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
            self.name, self.config.query_timeout
        )
    }

    async fn run(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, QueryError> {
        match &self.db {
            Db::Sqlite(pool) => self.run_sqlite(pool, sql, params).await,
            Db::Postgres(pool) => self.run_postgres(pool, sql, params).await,
        }
    }

    async fn run_sqlite(&self, pool: &SqlitePool, sql: &str, params: &[SqlValue]) -> Result<Rows, QueryError> {
        let mut conn = pool.acquire().await.map_err(QueryError::from)?;
        let deadline = Instant::now() + self.config.query_timeout;
        conn.lock_handle()
            .await
            .map_err(QueryError::from)?
            .set_progress_handler(10_000, move || Instant::now() < deadline);
        let mut query = sqlx::query(AssertSqlSafe(sql.to_string()));
        for p in params {
            query = decode::bind_sqlite(query, p);
        }
        let result = self.collect(query.fetch(&mut *conn), decode::sqlite_row).await;
        conn.lock_handle()
            .await
            .map_err(QueryError::from)?
            .remove_progress_handler();
        match result {
            Err(QueryError::Permanent(e)) if e.contains("interrupted") && Instant::now() >= deadline => {
                Err(QueryError::Permanent(self.timed_out()))
            }
            other => other,
        }
    }

    async fn run_postgres(&self, pool: &PgPool, sql: &str, params: &[SqlValue]) -> Result<Rows, QueryError> {
        let mut tx = pool.begin_with("BEGIN READ ONLY").await.map_err(QueryError::from)?;
        let timeout = format!(
            "SET LOCAL statement_timeout = {}",
            self.config.query_timeout.as_millis().max(1)
        );
        sqlx::query(AssertSqlSafe(timeout))
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

    /// Collects rows up to the cap, decoding each with `decode`.
    async fn collect<R: Row>(
        &self,
        mut stream: impl futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
        decode: impl Fn(&R) -> Result<Vec<SqlValue>, String>,
    ) -> Result<Rows, QueryError> {
        let mut rows = Rows {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        while let Some(row) = stream.try_next().await.map_err(QueryError::from)? {
            if rows.rows.is_empty() {
                rows.columns = row
                    .columns()
                    .iter()
                    .map(|c| sqlx::Column::name(c).to_string())
                    .collect();
            }
            if rows.rows.len() == self.config.max_rows {
                return Err(QueryError::Permanent(format!(
                    "the query returned more than max_rows = {} rows; add a LIMIT (page with a cursor) or raise max_rows for source `{}`",
                    self.config.max_rows, self.name
                )));
            }
            rows.rows.push(decode(&row).map_err(QueryError::Permanent)?);
        }
        Ok(rows)
    }
}

/// A failed query: transient (connection lost, pool exhausted) or not.
#[derive(Debug)]
enum QueryError {
    Transient(String),
    Permanent(String),
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryError::Transient(e) | QueryError::Permanent(e) => f.write_str(e),
        }
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_transient(&e) {
            QueryError::Transient(e.to_string())
        } else {
            QueryError::Permanent(e.to_string())
        }
    }
}
