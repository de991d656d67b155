//! Converting between SQL values and the interface's `sql-value`.

use crate::wit::preheat::plugin::types::SqlValue;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Column, Postgres, Row, Sqlite, TypeInfo, ValueRef};

/// Binds one parameter to a SQLite query.
pub(super) fn bind_sqlite<'q>(
    q: Query<'q, Sqlite, SqliteArguments>,
    v: &SqlValue,
) -> Query<'q, Sqlite, SqliteArguments> {
    match v.clone() {
        SqlValue::Null => q.bind(None::<i64>),
        SqlValue::Int(i) => q.bind(i),
        SqlValue::Float(f) => q.bind(f),
        SqlValue::Text(s) => q.bind(s),
        SqlValue::Bytes(b) => q.bind(b),
        SqlValue::Boolean(b) => q.bind(b),
    }
}

/// Binds one parameter to a PostgreSQL query.
pub(super) fn bind_postgres<'q>(q: Query<'q, Postgres, PgArguments>, v: &SqlValue) -> Query<'q, Postgres, PgArguments> {
    match v.clone() {
        SqlValue::Null => q.bind(None::<String>),
        SqlValue::Int(i) => q.bind(i),
        SqlValue::Float(f) => q.bind(f),
        SqlValue::Text(s) => q.bind(s),
        SqlValue::Bytes(b) => q.bind(b),
        SqlValue::Boolean(b) => q.bind(b),
    }
}

fn err(column: &str, e: sqlx::Error) -> String {
    format!("column {column:?}: {e}")
}

/// Decodes a SQLite row by each value's storage class.
pub(super) fn sqlite_row(row: &SqliteRow) -> Result<Vec<SqlValue>, String> {
    (0..row.len())
        .map(|i| {
            let name = row.column(i).name();
            let raw = row.try_get_raw(i).map_err(|e| err(name, e))?;
            if raw.is_null() {
                return Ok(SqlValue::Null);
            }
            let ty = raw.type_info().name().to_ascii_uppercase();
            Ok(match ty.as_str() {
                "INTEGER" | "INT8" | "BIGINT" => {
                    SqlValue::Int(row.try_get_unchecked::<i64, _>(i).map_err(|e| err(name, e))?)
                }
                "BOOLEAN" => SqlValue::Boolean(row.try_get_unchecked::<bool, _>(i).map_err(|e| err(name, e))?),
                "REAL" | "NUMERIC" => SqlValue::Float(row.try_get_unchecked::<f64, _>(i).map_err(|e| err(name, e))?),
                "BLOB" => SqlValue::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(|e| err(name, e))?),
                _ => SqlValue::Text(row.try_get_unchecked::<String, _>(i).map_err(|e| err(name, e))?),
            })
        })
        .collect()
}

/// Decodes a PostgreSQL row by column type.
pub(super) fn postgres_row(row: &PgRow) -> Result<Vec<SqlValue>, String> {
    (0..row.len())
        .map(|i| {
            let column = row.column(i);
            let name = column.name();
            let raw = row.try_get_raw(i).map_err(|e| err(name, e))?;
            if raw.is_null() {
                return Ok(SqlValue::Null);
            }
            let get = |e| err(name, e);
            Ok(match column.type_info().name() {
                "INT2" => SqlValue::Int(row.try_get::<i16, _>(i).map_err(get)?.into()),
                "INT4" => SqlValue::Int(row.try_get::<i32, _>(i).map_err(get)?.into()),
                "INT8" => SqlValue::Int(row.try_get::<i64, _>(i).map_err(get)?),
                "FLOAT4" => SqlValue::Float(row.try_get::<f32, _>(i).map_err(get)?.into()),
                "FLOAT8" => SqlValue::Float(row.try_get::<f64, _>(i).map_err(get)?),
                "BOOL" => SqlValue::Boolean(row.try_get::<bool, _>(i).map_err(get)?),
                "BYTEA" => SqlValue::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(get)?),
                "TEXT" | "VARCHAR" | "BPCHAR" | "CHAR" | "NAME" | "CITEXT" => {
                    SqlValue::Text(row.try_get::<String, _>(i).map_err(get)?)
                }
                "TIMESTAMPTZ" => {
                    let t: chrono::DateTime<chrono::Utc> = row.try_get(i).map_err(get)?;
                    SqlValue::Text(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                }
                "TIMESTAMP" => {
                    let t: chrono::NaiveDateTime = row.try_get(i).map_err(get)?;
                    SqlValue::Text(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                }
                "DATE" => SqlValue::Text(row.try_get::<chrono::NaiveDate, _>(i).map_err(get)?.to_string()),
                "JSON" | "JSONB" => SqlValue::Text(row.try_get::<serde_json::Value, _>(i).map_err(get)?.to_string()),
                other => {
                    return Err(format!(
                        "column {name:?} has type {other}, which the query import does not carry; cast it in SQL, e.g. CAST({name} AS TEXT) or CAST({name} AS DOUBLE PRECISION)"
                    ))
                }
            })
        })
        .collect()
}

/// The bytes a value counts against `max_result_bytes`: its length for text
/// and bytes, 8 for anything else.
pub(super) fn value_bytes(v: &SqlValue) -> u64 {
    match v {
        SqlValue::Text(s) => s.len() as u64,
        SqlValue::Bytes(b) => b.len() as u64,
        SqlValue::Null | SqlValue::Int(_) | SqlValue::Float(_) | SqlValue::Boolean(_) => 8,
    }
}
