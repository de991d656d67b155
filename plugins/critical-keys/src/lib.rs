//! `critical-keys`: the seed application's critical keys, plus user profiles.
//!
//! Keys, in enumeration order:
//!
//! | key                    | priority | tags                       | value                         |
//! |------------------------|----------|----------------------------|-------------------------------|
//! | `system.settings`      | critical | `critical`, `config`       | settings map                  |
//! | `products.catalog.all` | critical | `critical`, `catalog`      | list of products              |
//! | `navigation.menu`      | critical | `critical`, `navigation`   | menu tree                     |
//! | `featured.products`    | critical | `critical`, `catalog`      | featured product ids + titles |
//! | `user.profile.{id}`    | normal   | `users` (arg = the id)     | `{id, name, email, preferences}` |
//!
//! Every value is a small JSON document, the same on every run.
//!
//! Settings (all optional):
//!
//! * `user_ids`: which user profiles to warm: ranges and single ids separated
//!   by commas, e.g. `1-100`, `1,5,9`, `1-10,20`. Overlaps are merged; ids are
//!   warmed in ascending order. Absent or empty: no user keys.
//! * `page_size`: keys per `enumerate` page (default 500, at least 1).
//! * `ttl`: time to live in seconds applied to every key (default: the host's).
//!
//! The cursor is the offset of the next key in the list above.

use std::ops::RangeInclusive;

use preheat_guest::{
    export_plugin, log, Context, Entry, KeySpec, Page, Plugin, Priority, WarmError,
};
use serde_json::{json, Value};

/// The critical keys and the extra tag of each.
const CRITICAL: [(&str, &str); 4] = [
    ("system.settings", "config"),
    ("products.catalog.all", "catalog"),
    ("navigation.menu", "navigation"),
    ("featured.products", "catalog"),
];

const USER_PREFIX: &str = "user.profile.";

/// The plugin.
pub struct CriticalKeys;

impl Plugin for CriticalKeys {
    fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String> {
        let settings = Settings::from_context(ctx)?;
        let start: u64 = match cursor.as_deref() {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| format!("invalid cursor {c:?}: expected a key offset"))?,
        };
        let total = (CRITICAL.len() as u64).saturating_add(settings.users.len());
        if start == 0 {
            log::debug!(
                "enumerating {} critical keys and {} user profiles",
                CRITICAL.len(),
                settings.users.len()
            );
        }
        let end = total.min(start.saturating_add(settings.page_size));
        let mut keys = Vec::with_capacity(end.saturating_sub(start).min(4096) as usize);
        for offset in start..end {
            let spec = match CRITICAL.get(offset as usize) {
                Some((key, tag)) => KeySpec::new(*key)
                    .priority(Priority::Critical)
                    .tag("critical")
                    .tag(*tag),
                None => {
                    let id = settings.users.nth(offset - CRITICAL.len() as u64);
                    KeySpec::new(format!("{USER_PREFIX}{id}"))
                        .tag("users")
                        .arg(id.to_string())
                }
            };
            keys.push(spec.maybe_ttl(settings.ttl));
        }
        Ok(if end < total {
            Page::more(keys, end.to_string())
        } else {
            Page::last(keys)
        })
    }

    fn produce(_ctx: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
        keys.iter().map(produce_one).collect()
    }
}

export_plugin!(CriticalKeys);

/// The parsed settings.
struct Settings {
    users: UserIds,
    page_size: u64,
    ttl: Option<u32>,
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, String> {
        let users = match ctx.setting("user_ids") {
            Some(spec) => UserIds::parse(spec).map_err(|e| format!("setting \"user_ids\": {e}"))?,
            None => UserIds::default(),
        };
        let page_size: u64 = ctx.setting_or("page_size", 500)?;
        if page_size == 0 {
            return Err("setting \"page_size\" must be at least 1, got 0".to_string());
        }
        Ok(Settings {
            users,
            page_size,
            ttl: ctx.setting_parse("ttl")?,
        })
    }
}

/// A set of user ids: sorted, non-overlapping inclusive ranges.
#[derive(Debug, Default, PartialEq)]
struct UserIds {
    ranges: Vec<RangeInclusive<u64>>,
}

impl UserIds {
    /// Parses `1-100`, `1,5,9`, `1-10,20`, ...; the error names the bad part.
    fn parse(spec: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        if spec.trim().is_empty() {
            return Ok(UserIds { ranges });
        }
        for part in spec.split(',') {
            let bad = |why: &str| {
                format!("bad part {:?} in {spec:?}: {why} (expected ids like \"1-100\", \"1,5,9\" or \"1-10,20\")", part.trim())
            };
            let id = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(&format!("{:?} is not a user id", s.trim())))
            };
            let range = match part.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (id(lo)?, id(hi)?);
                    if lo > hi {
                        return Err(bad("the range is reversed"));
                    }
                    lo..=hi
                }
                None => {
                    let one = id(part)?;
                    one..=one
                }
            };
            ranges.push(range);
        }
        ranges.sort_by_key(|r| *r.start());
        let mut merged: Vec<RangeInclusive<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if *r.start() <= last.end().saturating_add(1) => {
                    *last = *last.start()..=(*last.end()).max(*r.end());
                }
                _ => merged.push(r),
            }
        }
        Ok(UserIds { ranges: merged })
    }

    /// How many ids.
    fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|r| (r.end() - r.start()).saturating_add(1))
            .fold(0, u64::saturating_add)
    }

    /// The `n`th id in ascending order (`n < len()`).
    fn nth(&self, mut n: u64) -> u64 {
        for r in &self.ranges {
            let len = (r.end() - r.start()).saturating_add(1);
            if n < len {
                return r.start() + n;
            }
            n -= len;
        }
        unreachable!("user id index out of range")
    }
}

fn produce_one(spec: &KeySpec) -> Result<Entry, WarmError> {
    let doc = match spec.key.as_str() {
        "system.settings" => system_settings(),
        "products.catalog.all" => json!({ "products": catalog() }),
        "navigation.menu" => navigation_menu(),
        "featured.products" => featured_products(),
        key => match key.strip_prefix(USER_PREFIX) {
            Some(rest) => {
                let raw = spec.arg.as_deref().unwrap_or(rest);
                let id = raw
                    .parse::<u64>()
                    .map_err(|_| WarmError::fail(format!("{key}: {raw:?} is not a user id")))?;
                user_profile(id)
            }
            None => return Err(WarmError::fail(format!("unknown key {key:?}"))),
        },
    };
    Entry::json(&doc)
}

fn system_settings() -> Value {
    json!({
        "site_name": "Preheat Demo Shop",
        "currency": "EUR",
        "default_locale": "en-GB",
        "supported_locales": ["en-GB", "fr-FR", "de-DE"],
        "maintenance_mode": false,
        "checkout": { "guest_checkout": true, "max_items_per_order": 50 },
        "features": { "reviews": true, "wishlist": true, "recommendations": true }
    })
}

/// (id, sku, name, price in cents, category, stock)
const PRODUCTS: [(u32, &str, &str, u32, &str, u32); 6] = [
    (
        101,
        "KB-001",
        "Mechanical Keyboard",
        8999,
        "peripherals",
        42,
    ),
    (102, "MS-002", "Wireless Mouse", 2999, "peripherals", 120),
    (103, "MN-003", "27\" Monitor", 24999, "displays", 15),
    (
        104,
        "HS-004",
        "Noise-Cancelling Headset",
        14999,
        "audio",
        33,
    ),
    (105, "DK-005", "USB-C Dock", 11999, "accessories", 0),
    (106, "CM-006", "4K Webcam", 9999, "video", 27),
];

fn catalog() -> Vec<Value> {
    PRODUCTS
        .iter()
        .map(|&(id, sku, name, price_cents, category, stock)| {
            json!({
                "id": id,
                "sku": sku,
                "name": name,
                "price_cents": price_cents,
                "category": category,
                "in_stock": stock > 0,
                "stock": stock,
            })
        })
        .collect()
}

fn navigation_menu() -> Value {
    json!({
        "items": [
            { "label": "Home", "href": "/" },
            { "label": "Shop", "href": "/shop", "children": [
                { "label": "Peripherals", "href": "/shop/peripherals" },
                { "label": "Displays", "href": "/shop/displays" },
                { "label": "Audio", "href": "/shop/audio" },
                { "label": "Accessories", "href": "/shop/accessories" }
            ]},
            { "label": "Deals", "href": "/deals" },
            { "label": "Account", "href": "/account", "children": [
                { "label": "Orders", "href": "/account/orders" },
                { "label": "Wishlist", "href": "/account/wishlist" }
            ]},
            { "label": "Help", "href": "/help" }
        ]
    })
}

fn featured_products() -> Value {
    let featured: Vec<Value> = PRODUCTS
        .iter()
        .filter(|p| [101, 103, 104].contains(&p.0))
        .map(|&(id, _, name, price_cents, _, _)| {
            json!({ "id": id, "name": name, "price_cents": price_cents })
        })
        .collect();
    json!({ "title": "Featured this week", "products": featured })
}

const FIRST_NAMES: [&str; 8] = [
    "Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis",
];
const LAST_NAMES: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Hamilton", "Ritchie",
];
const THEMES: [&str; 3] = ["light", "dark", "system"];
const LANGUAGES: [&str; 3] = ["en", "fr", "de"];

fn user_profile(id: u64) -> Value {
    let first = FIRST_NAMES[(id % 8) as usize];
    let last = LAST_NAMES[((id / 8) % 8) as usize];
    json!({
        "id": id,
        "name": format!("{first} {last}"),
        "email": format!("{}.{}{id}@example.com", first.to_lowercase(), last.to_lowercase()),
        "preferences": {
            "theme": THEMES[(id % 3) as usize],
            "language": LANGUAGES[((id / 3) % 3) as usize],
            "newsletter": id.is_multiple_of(2),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(settings: &[(&str, &str)]) -> Context {
        Context::new("run", "proactive", settings.iter().copied())
    }

    fn all_keys(ctx: &Context) -> Vec<KeySpec> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = CriticalKeys::enumerate(ctx, cursor).unwrap();
            keys.extend(page.keys);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return keys,
            }
        }
    }

    #[test]
    fn only_critical_keys_without_user_ids() {
        let keys = all_keys(&ctx(&[]));
        let names: Vec<_> = keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "system.settings",
                "products.catalog.all",
                "navigation.menu",
                "featured.products"
            ]
        );
        assert!(keys.iter().all(|k| k.priority == Priority::Critical));
        assert!(keys
            .iter()
            .all(|k| k.tags.contains(&"critical".to_string())));
    }

    #[test]
    fn user_ids_ranges_lists_and_combinations() {
        assert_eq!(UserIds::parse("1-100").unwrap().len(), 100);
        let ids = UserIds::parse("9, 1,5").unwrap();
        assert_eq!((0..3).map(|n| ids.nth(n)).collect::<Vec<_>>(), [1, 5, 9]);
        let ids = UserIds::parse("1-10,20,5-12").unwrap();
        assert_eq!(ids.len(), 13);
        assert_eq!(ids.nth(11), 12);
        assert_eq!(ids.nth(12), 20);
        assert_eq!(UserIds::parse("  ").unwrap().len(), 0);
    }

    #[test]
    fn malformed_user_ids_name_setting_and_part() {
        for (spec, part) in [("1-x", "1-x"), ("1,,2", ""), ("10-1", "10-1"), ("a", "a")] {
            let err = CriticalKeys::enumerate(&ctx(&[("user_ids", spec)]), None).unwrap_err();
            assert!(err.contains("user_ids"), "{err}");
            assert!(err.contains(&format!("bad part {part:?}")), "{err}");
        }
    }

    #[test]
    fn pages_and_user_keys() {
        let c = ctx(&[("user_ids", "1-10,20"), ("page_size", "5"), ("ttl", "60")]);
        let first = CriticalKeys::enumerate(&c, None).unwrap();
        assert_eq!(first.keys.len(), 5);
        assert_eq!(first.cursor.as_deref(), Some("5"));
        let keys = all_keys(&c);
        assert_eq!(keys.len(), 15);
        let last = keys.last().unwrap();
        assert_eq!(last.key, "user.profile.20");
        assert_eq!(last.arg.as_deref(), Some("20"));
        assert_eq!(last.priority, Priority::Normal);
        assert_eq!(last.tags, ["users"]);
        assert!(keys.iter().all(|k| k.ttl_seconds == Some(60)));
    }

    #[test]
    fn bad_page_size_and_cursor() {
        assert!(CriticalKeys::enumerate(&ctx(&[("page_size", "0")]), None)
            .unwrap_err()
            .contains("page_size"));
        assert!(CriticalKeys::enumerate(&ctx(&[]), Some("x".into()))
            .unwrap_err()
            .contains("cursor"));
    }

    #[test]
    fn produces_json_for_every_key() {
        let c = ctx(&[("user_ids", "1-3")]);
        let keys = all_keys(&c);
        let values = CriticalKeys::produce(&c, keys.clone());
        assert_eq!(values.len(), keys.len());
        for (k, v) in keys.iter().zip(&values) {
            let entry = v.as_ref().unwrap_or_else(|e| panic!("{}: {e:?}", k.key));
            let doc: Value = serde_json::from_slice(&entry.value).unwrap();
            assert!(doc.is_object(), "{}", k.key);
        }
        let user: Value = serde_json::from_slice(&values[5].as_ref().unwrap().value).unwrap();
        assert_eq!(user["id"], 2);
        assert!(user["email"].as_str().unwrap().ends_with("2@example.com"));
    }

    #[test]
    fn unknown_key_fails() {
        let out = CriticalKeys::produce(&ctx(&[]), vec![KeySpec::new("nope")]);
        assert!(matches!(&out[0], Err(WarmError::Fail(m)) if m.contains("nope")));
    }
}
