//! A native Rust twin of `plugins/synthetic`: the same keys, the same values,
//! no WebAssembly. Run behind the same executor, it shows what the pipeline
//! costs without the sandbox, so the WASM share of a run is visible.

use futures_util::future::BoxFuture;
use preheat::exec::{CallResult, Producer};
use preheat::runtime::{CallStats, Entry, KeySpec, Page, Priority, RunContext, WarmError};
use preheat::support::Cancel;
use std::time::Instant;

/// The synthetic plugin, compiled into the host.
pub struct NativeSynthetic {
    name: String,
}

impl NativeSynthetic {
    /// A producer standing in for the plugin called `name`.
    pub fn new(name: &str) -> NativeSynthetic {
        NativeSynthetic { name: name.to_string() }
    }
}

fn setting<'a>(ctx: &'a RunContext, name: &str) -> Option<&'a str> {
    ctx.settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn number(ctx: &RunContext, name: &str, default: u64) -> u64 {
    setting(ctx, name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Producer for NativeSynthetic {
    fn name(&self) -> &str {
        &self.name
    }

    fn enumerate<'a>(
        &'a self,
        ctx: &'a RunContext,
        cursor: Option<&'a str>,
        _cancel: &'a Cancel,
    ) -> BoxFuture<'a, CallResult<Result<Page, String>>> {
        Box::pin(async move {
            let started = Instant::now();
            let keys = number(ctx, "keys", 1000);
            let page_size = number(ctx, "page_size", 1000).max(1);
            let prefix = setting(ctx, "prefix").unwrap_or("synthetic:");
            let start: u64 = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
            let end = keys.min(start + page_size);
            let page = (start..end)
                .map(|i| KeySpec {
                    key: format!("{prefix}{i}"),
                    priority: Priority::Normal,
                    ttl_seconds: None,
                    tags: Vec::new(),
                    arg: None,
                })
                .collect();
            let page = Page {
                keys: page,
                cursor: (end < keys).then(|| end.to_string()),
            };
            let stats = CallStats {
                fuel: 0,
                elapsed: started.elapsed(),
            };
            Ok((Ok(page), stats))
        })
    }

    fn produce<'a>(
        &'a self,
        ctx: &'a RunContext,
        keys: &'a [KeySpec],
        _cancel: &'a Cancel,
    ) -> BoxFuture<'a, CallResult<Vec<Result<Entry, WarmError>>>> {
        Box::pin(async move {
            let started = Instant::now();
            let size = number(ctx, "value_size", 200) as usize;
            let prefix = setting(ctx, "prefix").unwrap_or("synthetic:");
            let results = keys
                .iter()
                .map(|spec| {
                    let index = spec
                        .key
                        .strip_prefix(prefix)
                        .and_then(|n| n.parse::<u64>().ok())
                        .ok_or_else(|| WarmError::Fail(format!("{:?} is not a synthetic key", spec.key)))?;
                    Ok(Entry {
                        value: value(index, size).into(),
                        ttl_seconds: None,
                    })
                })
                .collect();
            let stats = CallStats {
                fuel: 0,
                elapsed: started.elapsed(),
            };
            Ok((results, stats))
        })
    }
}

/// The value of key `index`, byte for byte as `plugins/synthetic` builds it:
/// the same source file, compiled natively.
#[path = "../../../plugins/synthetic/src/value.rs"]
mod synthetic_value;

pub use synthetic_value::value;
