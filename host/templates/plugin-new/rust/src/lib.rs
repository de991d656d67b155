//! `__NAME__`: a preheat cache warming plugin.
//!
//! Warms `__NAME__:item:{n}` for n in 1..=count, each a small JSON document.
//! Replace the key listing and the values with your own; keep the shape:
//! `enumerate` lists keys a page at a time, `produce_one` builds each key's value.
//!
//! Settings (the `[plugins.settings]` table of the config, or
//! `preheat plugin test --setting name=value`):
//!
//! * `count`: how many keys (default 10).
//! * `page_size`: keys per `enumerate` page (default 100, at least 1).
//! * `ttl`: time to live in seconds of every key (default: the host's).
//!
//! Build: `cargo build --release --target wasm32-wasip2`
//! Test:  `preheat plugin test target/wasm32-wasip2/release/__SNAKE__.wasm`

use preheat_guest::{
    export_plugin, log, offset_page, Context, Entry, KeySpec, Page, Plugin, Priority, WarmError,
};
use serde_json::json;

/// Every key starts with this; grant it with `key_prefixes` in the config.
const PREFIX: &str = "__NAME__:item:";

/// The plugin.
pub struct Starter;

impl Plugin for Starter {
    fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String> {
        let count: u64 = ctx.setting_or("count", 10)?;
        let page_size: u32 = ctx.setting_or("page_size", 100)?;
        let ttl: Option<u32> = ctx.setting_parse("ttl")?;
        if cursor.is_none() {
            log::debug!("enumerating {count} keys, {page_size} per page");
        }
        // `offset_page` keeps the offset of the next key in the cursor and
        // asks for one key more than a page, to know whether more follow.
        // From a database: `SELECT id FROM items ORDER BY id LIMIT $2 OFFSET $1`
        // (or `keyset_page` with `WHERE id > $1 ORDER BY id LIMIT $2`).
        let page = offset_page(cursor, page_size, |offset, limit| {
            let end = count.min(offset.saturating_add(u64::from(limit)));
            let keys = (offset..end).map(|offset| {
                let n = offset + 1;
                KeySpec::new(format!("{PREFIX}{n}"))
                    .priority(if n == 1 {
                        Priority::High
                    } else {
                        Priority::Normal
                    })
                    .maybe_ttl(ttl)
                    .tag("items")
                    .arg(n.to_string())
            });
            Ok::<_, String>(keys.collect())
        })?;
        Ok(page)
    }

    /// One key's value. A `?` on a host call (`query`, `cache_get`) retries
    /// the key when the host says the failure is transient, and fails it
    /// otherwise.
    fn produce_one(_ctx: &Context, key: KeySpec) -> Result<Entry, WarmError> {
        let n: u64 = key
            .arg
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| WarmError::fail(format!("{}: no item number in arg", key.key)))?;
        Entry::json(&json!({ "id": n, "title": format!("Item {n}") }))
    }
}

export_plugin!(Starter);

#[cfg(test)]
mod tests {
    use super::*;

    fn all_keys(ctx: &Context) -> Vec<KeySpec> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = Starter::enumerate(ctx, cursor).unwrap();
            keys.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return keys,
            }
        }
    }

    #[test]
    fn lists_count_keys_across_pages() {
        let ctx = Context::new("run", "test", [("count", "5"), ("page_size", "2")]);
        let keys = all_keys(&ctx);
        assert_eq!(keys.len(), 5);
        assert_eq!(keys[0].key, "__NAME__:item:1");
        assert_eq!(keys[0].priority, Priority::High);
        assert_eq!(keys[4].arg.as_deref(), Some("5"));
    }

    #[test]
    fn produces_one_json_value_per_key() {
        let ctx = Context::new("run", "test", [("count", "3")]);
        let values = Starter::produce(&ctx, all_keys(&ctx));
        assert_eq!(values.len(), 3);
        let first = values[0].as_ref().unwrap();
        assert_eq!(first.value, br#"{"id":1,"title":"Item 1"}"#);
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let ctx = Context::new("run", "test", [("count", "many")]);
        assert!(Starter::enumerate(&ctx, None)
            .unwrap_err()
            .contains("count"));
    }
}
