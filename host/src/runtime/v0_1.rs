//! Plugins built against the frozen interface 0.1: their values converted to
//! and from the host's (0.2's) at the boundary, and their host imports served
//! by the same functions as 0.2's, with a typed error flattened to its message.

use super::host_api;
use super::sandbox::HostState;
use super::{Entry, KeySpec, Level, Page, Priority, Rows, RunContext, SqlValue, WarmError};
use crate::wit::v0_1::preheat::plugin::{host, types as old};

impl old::Host for HostState {}

impl host::Host for HostState {
    async fn log(&mut self, level: old::Level, message: String) {
        self.output.log(level_from(level), &message);
    }

    async fn cache_get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
        host_api::cache_get(self, key).await.map_err(|e| e.message)
    }

    async fn query(&mut self, source: String, sql: String, params: Vec<old::SqlValue>) -> Result<old::Rows, String> {
        let params = params.into_iter().map(sql_value_from).collect();
        match host_api::query(self, source, sql, params).await {
            Ok(rows) => Ok(rows_to(rows)),
            Err(e) => Err(e.message),
        }
    }
}

/// The run context as 0.1 has it (no shard).
pub(crate) fn run_context_to(ctx: &RunContext) -> old::RunContext {
    old::RunContext {
        run_id: ctx.run_id.clone(),
        strategy: ctx.strategy.clone(),
        settings: ctx.settings.clone(),
    }
}

/// A page a 0.1 plugin listed.
pub(crate) fn page_from(page: old::Page) -> Page {
    Page {
        keys: page.keys.into_iter().map(key_spec_from).collect(),
        cursor: page.cursor,
    }
}

/// The key specs of a batch, as 0.1 takes them.
pub(crate) fn key_specs_to(keys: &[KeySpec]) -> Vec<old::KeySpec> {
    keys.iter()
        .map(|k| old::KeySpec {
            key: k.key.clone(),
            priority: priority_to(k.priority),
            ttl_seconds: k.ttl_seconds,
            tags: k.tags.clone(),
            arg: k.arg.clone(),
        })
        .collect()
}

/// One result of a 0.1 `produce`.
pub(crate) fn result_from(result: Result<old::Entry, old::WarmError>) -> Result<Entry, WarmError> {
    match result {
        Ok(e) => Ok(Entry {
            value: e.value.into(),
            ttl_seconds: e.ttl_seconds,
        }),
        Err(old::WarmError::Skip(r)) => Err(WarmError::Skip(r)),
        Err(old::WarmError::Retry(r)) => Err(WarmError::Retry(r)),
        Err(old::WarmError::Fail(r)) => Err(WarmError::Fail(r)),
    }
}

fn key_spec_from(k: old::KeySpec) -> KeySpec {
    KeySpec {
        key: k.key,
        priority: match k.priority {
            old::Priority::Critical => Priority::Critical,
            old::Priority::High => Priority::High,
            old::Priority::Normal => Priority::Normal,
            old::Priority::Low => Priority::Low,
        },
        ttl_seconds: k.ttl_seconds,
        tags: k.tags,
        arg: k.arg,
    }
}

fn priority_to(p: Priority) -> old::Priority {
    match p {
        Priority::Critical => old::Priority::Critical,
        Priority::High => old::Priority::High,
        Priority::Normal => old::Priority::Normal,
        Priority::Low => old::Priority::Low,
    }
}

fn level_from(level: old::Level) -> Level {
    match level {
        old::Level::Trace => Level::Trace,
        old::Level::Debug => Level::Debug,
        old::Level::Info => Level::Info,
        old::Level::Warn => Level::Warn,
        old::Level::Error => Level::Error,
    }
}

fn sql_value_from(v: old::SqlValue) -> SqlValue {
    match v {
        old::SqlValue::Null => SqlValue::Null,
        old::SqlValue::Int(i) => SqlValue::Int(i),
        old::SqlValue::Float(f) => SqlValue::Float(f),
        old::SqlValue::Text(t) => SqlValue::Text(t),
        old::SqlValue::Bytes(b) => SqlValue::Bytes(b),
        old::SqlValue::Boolean(b) => SqlValue::Boolean(b),
    }
}

fn sql_value_to(v: SqlValue) -> old::SqlValue {
    match v {
        SqlValue::Null => old::SqlValue::Null,
        SqlValue::Int(i) => old::SqlValue::Int(i),
        SqlValue::Float(f) => old::SqlValue::Float(f),
        SqlValue::Text(t) => old::SqlValue::Text(t),
        SqlValue::Bytes(b) => old::SqlValue::Bytes(b),
        SqlValue::Boolean(b) => old::SqlValue::Boolean(b),
    }
}

fn rows_to(rows: Rows) -> old::Rows {
    old::Rows {
        columns: rows.columns,
        rows: rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(sql_value_to).collect())
            .collect(),
    }
}
