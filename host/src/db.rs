//! Database connections shared by the SQL parts of preheat (plugin sources,
//! the `sql` cache backend, the job store): one pool type over SQLite and
//! PostgreSQL, chosen by URL scheme.

use anyhow::{bail, Context, Result};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// `sqlx::query(sql)` with every [`Arg`] bound, for either driver.
macro_rules! bound_query {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query(sqlx::AssertSqlSafe($sql.to_string()));
        for a in $args {
            q = match a {
                Arg::Null => q.bind(None::<String>),
                Arg::Int(i) => q.bind(i),
                Arg::Text(t) => q.bind(t),
                Arg::Bytes(b) => q.bind(b),
            };
        }
        q
    }};
}

/// A connection pool to SQLite or PostgreSQL.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite database file.
    Sqlite(SqlitePool),
    /// A PostgreSQL server.
    Postgres(PgPool),
}

/// How to open a [`Db`].
#[derive(Clone, Copy, Debug)]
pub struct DbOptions {
    /// Open read-only (SQLite: read-only file; PostgreSQL: read-only transactions by default).
    pub read_only: bool,
    /// Create a missing SQLite file.
    pub create_if_missing: bool,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
}

/// Parsed connection options for a [`Db`] URL, before any pool is opened
/// (the SQL sources build their own guarded pools from these).
#[derive(Clone, Debug)]
pub enum DbConnectOptions {
    /// A SQLite database file.
    Sqlite(SqliteConnectOptions),
    /// A PostgreSQL server.
    Postgres(PgConnectOptions),
}

impl DbConnectOptions {
    /// Parses `url` (`sqlite://…` or `postgres://…`) with `options` applied.
    pub fn parse(url: &str, options: &DbOptions) -> Result<DbConnectOptions> {
        let shown = crate::support::redact_url(url);
        if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("invalid SQLite URL {shown}"))?
                .read_only(options.read_only)
                .create_if_missing(options.create_if_missing && !options.read_only)
                .busy_timeout(Duration::from_secs(5));
            // WAL with synchronous = NORMAL: a crash never corrupts the file
            // (a power cut may lose the last commits); FULL syncs every commit,
            // several per run.
            Ok(DbConnectOptions::Sqlite(if options.read_only {
                connect
            } else {
                connect
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            }))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut connect =
                PgConnectOptions::from_str(url).with_context(|| format!("invalid PostgreSQL URL {shown}"))?;
            if options.read_only {
                connect = connect.options([("default_transaction_read_only", "on")]);
            }
            Ok(DbConnectOptions::Postgres(connect))
        } else {
            bail!("unsupported database URL {shown}: use sqlite://path.db or postgres://user@host:port/db");
        }
    }
}

/// Pool options (size, acquire timeout) from [`DbOptions`], for either driver.
pub fn pool_options<DB: sqlx::Database>(options: &DbOptions) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.connect_timeout)
}

/// [`pool_options`] for a SQLite file: no ping before each acquire (a
/// connection to a file does not go stale, and the ping is a round trip to
/// the connection's worker thread, about 100 µs, before every statement).
pub fn sqlite_pool_options(options: &DbOptions) -> PoolOptions<sqlx::Sqlite> {
    pool_options(options).test_before_acquire(false)
}

impl Db {
    /// Opens a pool for `url` (`sqlite://…` or `postgres://…`) and checks it with a round trip.
    pub async fn connect(url: &str, options: DbOptions) -> Result<Db> {
        let db = match DbConnectOptions::parse(url, &options)? {
            DbConnectOptions::Sqlite(connect) => Db::Sqlite(sqlite_pool_options(&options).connect_with(connect).await?),
            DbConnectOptions::Postgres(connect) => Db::Postgres(pool_options(&options).connect_with(connect).await?),
        };
        db.execute("SELECT 1").await?;
        Ok(db)
    }

    /// Runs one statement without parameters.
    pub async fn execute(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
    }

    /// Runs a statement with parameters; returns the number of rows affected.
    pub async fn execute_with(&self, sql: &str, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        macro_rules! run {
            ($pool:expr) => {{
                let q = bound_query!(sql, args);
                q.execute($pool).await.map(|r| r.rows_affected())
            }};
        }
        match self {
            Db::Sqlite(p) => run!(p),
            Db::Postgres(p) => run!(p),
        }
    }

    /// Runs a query with parameters and returns every column as text (cast
    /// non-text columns in the SQL); NULL is `None`.
    pub async fn fetch_text(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        use sqlx::Row;
        macro_rules! run {
            ($pool:expr) => {{
                let q = bound_query!(sql, args);
                let rows = q.fetch_all($pool).await?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<Option<String>, _>(i))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect()
            }};
        }
        match self {
            Db::Sqlite(p) => run!(p),
            Db::Postgres(p) => run!(p),
        }
    }

    /// The `n`th (1-based) bind placeholder in this dialect.
    pub fn placeholder(&self, n: usize) -> String {
        match self {
            Db::Sqlite(_) => format!("?{n}"),
            Db::Postgres(_) => format!("${n}"),
        }
    }
}

/// A bind parameter of [`Db::execute_with`] and [`Db::fetch_text`].
#[derive(Debug, Clone)]
pub enum Arg {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// Whether an error may go away on retry: connection lost, pool exhausted,
/// server shutting down, SQLite busy.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        // Class 08: connection exception; 57P: operator intervention; 40001/40P01:
        // serialization failure, deadlock (the statement was rolled back; again may
        // succeed); SQLite 5/6: busy/locked.
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01" || c == "5" || c == "6"
        }),
        _ => false,
    }
}
