//! The `sql` backend: a cache table in SQLite or PostgreSQL, laid out like
//! Laravel's database cache store (`key` unique, `value`, `expiration` in unix
//! seconds), optionally with `created_at`/`updated_at` (detected). Each batch is
//! one multi-row `INSERT … ON CONFLICT … DO UPDATE … WHERE <policy> RETURNING key`,
//! so the policy is applied atomically per key and the returned keys are the written ones.
//! `create_table` makes Laravel's own schema (text `value`) when the format is
//! Laravel's, else a binary `value` column that holds any bytes.

use super::{BackendError, Outcome, Write};
use crate::config::{FormatConfig, SqlTarget, WritePolicy};
use crate::db::{Arg, Db, DbOptions};
use anyhow::{bail, Context, Result};
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo};
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Expiry written for values without a TTL (Laravel's `forever` is ten years).
const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A connected cache table.
#[derive(Clone)]
pub struct SqlBackend {
    db: Db,
    table: String,
    key_prefix: String,
    address: String,
    /// `created_at`/`updated_at` columns exist.
    timestamps: bool,
    /// The `value` column holds bytes (BLOB/BYTEA) rather than text.
    binary_values: bool,
    /// The `value` column is SQLite text, which holds any bytes: SQLite
    /// never checks a text's encoding, and PHP's PDO stores Laravel's
    /// serialized bytes (a binary string in a PHP value) there as they are.
    /// Values are bound as bytes and cast to text, and read back as bytes.
    sqlite_text: bool,
    /// The `key` column's length limit in characters (PostgreSQL
    /// `varchar(n)`, 255 in Laravel's schema); SQLite has none.
    max_key_chars: Option<usize>,
}

/// Most rows in one statement: each binds three parameters, and SQLite binds
/// at most 32,766 (PostgreSQL 65,535).
const MAX_ROWS_PER_STATEMENT: usize = 32_766 / 3;

/// One row of an upsert: the write it comes from, and what it binds.
struct UpsertRow {
    index: usize,
    key: String,
    value: Arg,
    expiration: i64,
}

/// The `expiration` column for a value written at `now` (since the epoch)
/// to live `ttl`: whole seconds, rounded up, so that the row is live (for
/// Laravel: `expiration > now`) for at least its TTL.
fn expiration(now: Duration, ttl: Duration) -> i64 {
    let end = now.saturating_add(ttl);
    let secs = end.as_secs() + u64::from(end.subsec_nanos() > 0);
    secs.max(now.as_secs() + 1).min(i64::MAX as u64) as i64
}

/// The time since the epoch.
fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn now_secs() -> i64 {
    now().as_secs() as i64
}

impl SqlBackend {
    /// Connects, creates the table when asked (laid out for `format`), and inspects its columns.
    pub async fn connect(config: &SqlTarget, format: &FormatConfig) -> Result<SqlBackend> {
        let url = config
            .url
            .as_deref()
            .context("[backend] url is required for kind = \"sql\"")?;
        let address = crate::support::redact_url(url);
        let options = DbOptions {
            read_only: false,
            create_if_missing: config.create_table,
            max_connections: 8,
            connect_timeout: config.connect_timeout,
        };
        let db = Db::connect(url, options)
            .await
            .with_context(|| format!("cannot reach the SQL cache database {address}: check [backend] url"))?;
        let table = config.table.clone();
        if config.create_table {
            for ddl in create_table_sql(&db, &table, format) {
                db.execute(&ddl)
                    .await
                    .with_context(|| format!("creating cache table `{table}` in {address}"))?;
            }
        }
        let columns = describe(&db, &table).await.with_context(|| {
            format!("cache table `{table}` not found in {address}: create it (Laravel: `php artisan cache:table`) or set [backend] create_table = true")
        })?;
        let find = |name: &str| columns.iter().find(|(c, _)| c == name).map(|(_, t)| t.as_str());
        for required in ["key", "value", "expiration"] {
            if find(required).is_none() {
                bail!("cache table `{table}` in {address} has no `{required}` column (found {columns:?}); it needs key, value and expiration");
            }
        }
        let binary_values =
            matches!(find("value"), Some(t) if t.eq_ignore_ascii_case("BLOB") || t.eq_ignore_ascii_case("BYTEA"));
        let sqlite_text = !binary_values && matches!(db, Db::Sqlite(_));
        let timestamps = find("created_at").is_some() && find("updated_at").is_some();
        let max_key_chars = key_length_limit(&db, &table)
            .await
            .with_context(|| format!("reading the `key` column of `{table}` in {address}"))?;
        Ok(SqlBackend {
            db,
            table,
            key_prefix: config.key_prefix.clone(),
            address,
            timestamps,
            binary_values,
            sqlite_text,
            max_key_chars,
        })
    }

    /// The database address without credentials, and the table.
    pub fn describe(&self) -> String {
        format!("{} table {}", self.address, self.table)
    }

    /// Writes a batch in as few statements as it takes (usually one); per-key
    /// outcomes from `RETURNING`. A statement holds each key once (`ON
    /// CONFLICT` cannot touch a row twice), so a repeated key starts the next
    /// statement, which sees the first write as a second batch would; and at
    /// most `MAX_ROWS_PER_STATEMENT` rows. Rows go in key order, one lock
    /// order for every statement, so concurrent batches over the same keys
    /// cannot deadlock.
    pub async fn write_batch(&self, policy: WritePolicy, writes: &[Write]) -> Result<Vec<Outcome>, BackendError> {
        let now = now();
        let postgres = matches!(self.db, Db::Postgres(_));
        let mut outcomes = vec![Outcome::Fresh; writes.len()];
        let mut statements: Vec<Vec<UpsertRow>> = vec![Vec::new()];
        // The plugin keys of the last statement (the prefix is the same for all).
        let mut keys_in_last: HashSet<&str> = HashSet::new();
        for (i, w) in writes.iter().enumerate() {
            let value = if self.binary_values || self.sqlite_text {
                Arg::Bytes(w.value.to_vec())
            } else {
                match String::from_utf8(w.value.to_vec()) {
                    Ok(text) if postgres && text.contains('\0') => {
                        // One such value would fail the whole statement.
                        outcomes[i] = Outcome::Rejected(format!(
                            "value holds a NUL character, and the `value` column of `{}` is PostgreSQL text, which cannot hold one; use a BYTEA column (Laravel's format base64-encodes such values itself)",
                            self.table
                        ));
                        continue;
                    }
                    Ok(text) => Arg::Text(text),
                    Err(_) => {
                        outcomes[i] = Outcome::Rejected(format!(
                            "value is not UTF-8 text, and the `value` column of `{}` is PostgreSQL text, which holds only UTF-8; use a BYTEA column or produce text",
                            self.table
                        ));
                        continue;
                    }
                }
            };
            let key = format!("{}{}", self.key_prefix, w.key);
            if let Some(max) = self.max_key_chars.filter(|&max| key.chars().count() > max) {
                // One over-long key would fail the whole multi-row statement.
                outcomes[i] = Outcome::Rejected(format!(
                    "the stored key {:?} is {} characters, over the {max} the `key` column of `{}` holds; shorten the key or its prefix",
                    crate::report::clip(&key, 80),
                    key.chars().count(),
                    self.table
                ));
                continue;
            }
            if keys_in_last.contains(w.key.as_str())
                || statements
                    .last()
                    .is_some_and(|rows| rows.len() == MAX_ROWS_PER_STATEMENT)
            {
                statements.push(Vec::new());
                keys_in_last.clear();
            }
            keys_in_last.insert(&w.key);
            let expiration = expiration(now, w.ttl.unwrap_or(FOREVER));
            statements
                .last_mut()
                .expect("there is always a statement")
                .push(UpsertRow {
                    index: i,
                    key,
                    value,
                    expiration,
                });
        }
        for mut rows in statements.into_iter().filter(|rows| !rows.is_empty()) {
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            let sql = self.upsert_sql(policy, rows.len(), now.as_secs() as i64);
            let indexes: Vec<(usize, String)> = rows.iter().map(|r| (r.index, r.key.clone())).collect();
            let written = self.run_upsert(&sql, rows).await.map_err(|e| BackendError {
                transient: crate::db::is_transient(&e),
                message: format!("SQL cache {} write failed: {e}", self.describe()),
            })?;
            for (index, key) in indexes {
                if written.contains(&key) {
                    outcomes[index] = Outcome::Written;
                }
            }
        }
        Ok(outcomes)
    }

    /// `INSERT … ON CONFLICT ("key") DO UPDATE … WHERE <policy> RETURNING "key"`.
    fn upsert_sql(&self, policy: WritePolicy, n: usize, now: i64) -> String {
        let t = &self.table;
        let mut columns = String::from("\"key\", \"value\", \"expiration\"");
        let stamps = if self.timestamps {
            columns.push_str(", \"created_at\", \"updated_at\"");
            ", CURRENT_TIMESTAMP, CURRENT_TIMESTAMP"
        } else {
            ""
        };
        let values: Vec<String> = (0..n)
            .map(|i| {
                let p = |k: usize| self.db.placeholder(3 * i + k);
                let value = if self.sqlite_text {
                    format!("CAST({} AS TEXT)", p(2))
                } else {
                    p(2)
                };
                format!("({}, {value}, {}{stamps})", p(1), p(3))
            })
            .collect();
        let mut set = String::from("\"value\" = excluded.\"value\", \"expiration\" = excluded.\"expiration\"");
        if self.timestamps {
            set.push_str(", \"updated_at\" = excluded.\"updated_at\"");
        }
        let condition = match policy {
            WritePolicy::Always => String::new(),
            WritePolicy::IfMissing => format!(" WHERE {t}.\"expiration\" <= {now}"),
            // Expired (`expiration <= now`, as Laravel reads it), or live with less than the threshold left.
            WritePolicy::RefreshIfTtlBelow(threshold) => format!(
                " WHERE {t}.\"expiration\" <= {now} OR {t}.\"expiration\" < {}",
                now.saturating_add(threshold.as_secs().min(i64::MAX as u64) as i64)
            ),
        };
        format!(
            "INSERT INTO {t} ({columns}) VALUES {} ON CONFLICT (\"key\") DO UPDATE SET {set}{condition} RETURNING \"key\"",
            values.join(", ")
        )
    }

    async fn run_upsert(&self, sql: &str, rows: Vec<UpsertRow>) -> Result<HashSet<String>, sqlx::Error> {
        let mut args = Vec::with_capacity(rows.len() * 3);
        for row in rows {
            args.push(Arg::Text(row.key));
            args.push(row.value);
            args.push(Arg::Int(row.expiration));
        }
        let returned = self.db.fetch_text(sql, args).await?;
        Ok(returned.into_iter().filter_map(|mut r| r.pop().flatten()).collect())
    }

    /// The remaining time to live of a live key (the table always has an expiry).
    pub async fn ttl(&self, key: &str) -> Result<Option<Option<Duration>>, BackendError> {
        let sql = format!(
            "SELECT CAST(\"expiration\" AS TEXT) FROM {} WHERE \"key\" = {}",
            self.table,
            self.db.placeholder(1)
        );
        let rows = self
            .db
            .fetch_text(&sql, vec![Arg::Text(format!("{}{key}", self.key_prefix))])
            .await
            .map_err(|e| BackendError {
                transient: crate::db::is_transient(&e),
                message: format!("SQL cache {} read failed: {e}", self.describe()),
            })?;
        let expiration = rows
            .into_iter()
            .next()
            .and_then(|mut r| r.pop().flatten())
            .and_then(|e| e.parse::<i64>().ok());
        // Whole seconds left, rounded down: the expiration was rounded up when written.
        let now = now();
        Ok(expiration.filter(|&e| e > now.as_secs() as i64).map(|e| {
            Some(Duration::from_secs(
                Duration::from_secs(e as u64).saturating_sub(now).as_secs(),
            ))
        }))
    }

    /// The live value of a key if it is at most `max` bytes: the database
    /// measures it (`octet_length`) and sends it only when it fits.
    pub async fn get_at_most(&self, key: &str, max: u64) -> Result<super::Bounded, BackendError> {
        // SQLite text is read as its bytes, which need not be UTF-8.
        let value = if self.sqlite_text {
            "CAST(\"value\" AS BLOB)"
        } else {
            "\"value\""
        };
        let sql = format!(
            "SELECT CAST(octet_length(\"value\") AS BIGINT), CASE WHEN octet_length(\"value\") <= {max} THEN {value} END FROM {} WHERE \"key\" = {} AND \"expiration\" > {}",
            self.table,
            self.db.placeholder(1),
            now_secs()
        );
        let key = format!("{}{key}", self.key_prefix);
        macro_rules! fetch {
            ($pool:expr) => {{
                let row = sqlx::query(AssertSqlSafe(sql))
                    .bind(key)
                    .fetch_optional($pool)
                    .await;
                row.and_then(|r| {
                    let Some(r) = r else {
                        return Ok(super::Bounded::Absent);
                    };
                    let bytes = r.try_get::<i64, _>(0)? as u64;
                    if bytes > max {
                        return Ok(super::Bounded::TooLarge { bytes });
                    }
                    if self.binary_values || self.sqlite_text {
                        r.try_get::<Vec<u8>, _>(1).map(super::Bounded::Value)
                    } else {
                        r.try_get::<String, _>(1)
                            .map(|s| super::Bounded::Value(s.into_bytes()))
                    }
                })
            }};
        }
        let result = match &self.db {
            Db::Sqlite(pool) => fetch!(pool),
            Db::Postgres(pool) => fetch!(pool),
        };
        result.map_err(|e| BackendError {
            transient: crate::db::is_transient(&e),
            message: format!("SQL cache {} read failed: {e}", self.describe()),
        })
    }

    /// The live value of a key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(match self.get_at_most(key, i64::MAX as u64).await? {
            super::Bounded::Value(value) => Some(value),
            super::Bounded::Absent | super::Bounded::TooLarge { .. } => None,
        })
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the cache table. Laravel's format gets
/// Laravel's migration (`string('key')->primary()`, `mediumText('value')`,
/// `bigInteger('expiration')->index()`, as its grammars map them for SQLite and
/// PostgreSQL), so its DatabaseStore reads text; raw values get a binary column.
fn create_table_sql(db: &Db, table: &str, format: &FormatConfig) -> Vec<String> {
    let postgres = matches!(db, Db::Postgres(_));
    if let FormatConfig::Laravel(_) = format {
        let expiration = if postgres { "bigint" } else { "integer" };
        let index = table.replace('.', "_");
        return vec![
            format!("CREATE TABLE IF NOT EXISTS {table} (\"key\" varchar(255) NOT NULL PRIMARY KEY, \"value\" text NOT NULL, \"expiration\" {expiration} NOT NULL)"),
            format!("CREATE INDEX IF NOT EXISTS {index}_expiration_index ON {table} (\"expiration\")"),
        ];
    }
    let (value_type, expiration_type) = if postgres {
        ("BYTEA", "BIGINT")
    } else {
        ("BLOB", "INTEGER")
    };
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {table} (\"key\" VARCHAR(255) PRIMARY KEY, \"value\" {value_type} NOT NULL, \"expiration\" {expiration_type} NOT NULL)"
    )]
}

/// Column names and declared types of `table` (an error when it does not exist).
/// The declared length of `table`'s `key` column, where the database enforces one.
async fn key_length_limit(db: &Db, table: &str) -> Result<Option<usize>> {
    let Db::Postgres(_) = db else {
        return Ok(None);
    };
    // `schema.table` names its schema; a bare name is the one the search path finds first.
    let unquote = |name: &str| name.trim_matches('"').to_string();
    let rows = match table.rsplit_once('.') {
        Some((schema, bare)) => {
            db.fetch_text(
                "SELECT character_maximum_length::text FROM information_schema.columns WHERE table_name = $1 AND column_name = 'key' AND table_schema = $2",
                vec![Arg::Text(unquote(bare)), Arg::Text(unquote(schema))],
            )
            .await?
        }
        None => {
            db.fetch_text(
                "SELECT c.character_maximum_length::text FROM information_schema.columns c, unnest(current_schemas(false)) WITH ORDINALITY AS s(name, position) WHERE c.table_schema = s.name AND c.table_name = $1 AND c.column_name = 'key' ORDER BY s.position LIMIT 1",
                vec![Arg::Text(unquote(table))],
            )
            .await?
        }
    };
    Ok(rows.first().and_then(|r| r[0].as_deref()).and_then(|n| n.parse().ok()))
}

async fn describe(db: &Db, table: &str) -> Result<Vec<(String, String)>> {
    let sql = format!("SELECT * FROM {table} WHERE 1 = 0");
    let sql = sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(sql));
    macro_rules! columns {
        ($pool:expr) => {{
            let described = sqlx::Executor::describe($pool, sql).await?;
            described
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_info().name().to_string()))
                .collect()
        }};
    }
    let columns = match db {
        Db::Sqlite(pool) => columns!(pool),
        Db::Postgres(pool) => columns!(pool),
    };
    Ok(columns)
}
