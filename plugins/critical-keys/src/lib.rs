//! `critical-keys`: the seed application's critical keys, plus user profiles.
//!
//! Keys, in enumeration order:
//!
//! | key                    | priority | tags                       | value                         |
//! |------------------------|----------|----------------------------|-------------------------------|
//! | `system.settings`      | critical | `critical`, `config`       | `{data, key}`: `data` is the settings map |
//! | `products.catalog.all` | critical | `critical`, `catalog`      | `{category: "all", products: [product], total_count}` |
//! | `navigation.menu`      | critical | `critical`, `navigation`   | `{data, key}`: `data` is `{items: [{label, href, children?}]}` |
//! | `featured.products`    | critical | `critical`, `catalog`      | `{data, key}`: `data` is `{title, products: [{id, name, price_cents}]}` |
//! | `user.profile.{id}`    | normal   | `users` (arg = the id)     | `{email, id, name, preferences}` |
//!
//! where a `product` is `{category, id, in_stock, name, price_cents, sku,
//! stock}`. Every value is a JSON object with its keys sorted (serde_json's
//! map), and these are the shapes the seed Laravel application caches under
//! these keys (its `CacheWarmingService`): a user profile is `{id,
//! preferences, …}` (`id` an integer), a product catalog `{category,
//! products, total_count}` (`total_count` an integer: how many products),
//! and any other key `{key, data}` (the key itself, and its document). The
//! seed also stores a `cached_at` timestamp; preheat leaves it out so that a
//! value is the same on every run, and the entry's expiry carries the time.
//! With a `[backend] format` the host converts each object to the
//! framework's own type (a PHP array for Laravel, a Hash for Rails, a dict
//! for Django).
//!
//! The four critical values are fixed; the user profiles come from one of
//! two places:
//!
//! * **generated** (no `users_source`): the ids listed in `user_ids`, with a
//!   name, e-mail and preferences derived from the id, the same on every run;
//! * **a database** (`users_source` set): every active user of the `users`
//!   table of that SQL source, and their values read from it.
//!
//! Settings (all optional):
//!
//! * `users_source`: the SQL source (a `[sources.NAME]` of the host config,
//!   granted to the plugin) to read user profiles from. Keys: one per row of
//!   `SELECT id FROM users WHERE active = TRUE`, by id. Values: the columns
//!   `id` (integer), `name` (text), `email` (text) and `preferences` (a JSON
//!   document in text, NULL reading as `{}`) of that row. A user deleted or
//!   deactivated after `enumerate` is skipped, not failed. Overrides
//!   `user_ids`.
//! * `user_ids`: without `users_source`, which generated user profiles to
//!   warm: ranges and single ids separated by commas, e.g. `1-100`, `1,5,9`,
//!   `1-10,20`. Overlaps are merged; ids are warmed in ascending order.
//!   Absent or empty: no user keys.
//! * `page_size`: keys per `enumerate` page (default 500, at least 1).
//! * `ttl`: time to live in seconds applied to every key (default: the host's).
//!
//! The cursor is the offset of the next key in the list above; with
//! `users_source`, once past the critical keys, it is `users` (the first
//! user) or `users:{id}` (the users after that id: keyset pagination, so
//! pages stay cheap however many users there are).

use std::collections::HashMap;
use std::ops::RangeInclusive;

use preheat_guest::{
    export_plugin, log, params, query, Context, Entry, Error, KeySpec, Page, Plugin, Priority, Row, Rows, WarmError,
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

/// One page of active user ids after the id `$1`, at most `$2` rows.
pub const SQL_USER_PAGE: &str = "\
SELECT id FROM users \
WHERE active = TRUE AND id > $1 \
ORDER BY id \
LIMIT $2";

/// The profiles of the active users with ids in `$1..=$2`.
pub const SQL_USER_PROFILES: &str = "\
SELECT id, name, email, preferences FROM users \
WHERE active = TRUE AND id >= $1 AND id <= $2 \
ORDER BY id";

/// `produce` reads the users of a batch with one range query per run of ids
/// spanning at most this many ids (so it never reads more rows than this).
const USER_SPAN: i64 = 500;

/// The cursor of the first page of users (with `users_source`).
const USERS_CURSOR: &str = "users";

/// The plugin.
pub struct CriticalKeys;

impl Plugin for CriticalKeys {
    fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String> {
        let settings = Settings::from_context(ctx)?;
        match &settings.users {
            Users::Ids(ids) => enumerate_ids(&settings, ids, cursor),
            Users::Source(source) => enumerate_source(&settings, source, cursor),
        }
    }

    fn produce(ctx: &Context, keys: Vec<KeySpec>) -> Vec<Result<Entry, WarmError>> {
        match ctx.setting("users_source").map(str::trim) {
            Some(source) if !source.is_empty() => produce_with_source(source, &keys),
            _ => keys.iter().map(produce_one).collect(),
        }
    }
}

export_plugin!(CriticalKeys);

/// The key spec of critical key number `offset` (< 4).
fn critical_spec(offset: usize) -> KeySpec {
    let (key, tag) = CRITICAL[offset];
    KeySpec::new(key).priority(Priority::Critical).tag("critical").tag(tag)
}

/// The key spec of the profile of user `id`.
fn user_spec(id: impl ToString) -> KeySpec {
    let id = id.to_string();
    KeySpec::new(format!("{USER_PREFIX}{id}")).tag("users").arg(id)
}

/// Enumerates the critical keys, then the generated users of `user_ids`.
fn enumerate_ids(settings: &Settings, users: &UserIds, cursor: Option<String>) -> Result<Page, String> {
    let start: u64 = match cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse()
            .map_err(|_| format!("invalid cursor {c:?}: expected a key offset"))?,
    };
    let total = (CRITICAL.len() as u64).saturating_add(users.len());
    if start == 0 {
        log::debug!(
            "enumerating {} critical keys and {} user profiles",
            CRITICAL.len(),
            users.len()
        );
    }
    let end = total.min(start.saturating_add(settings.page_size));
    let mut keys = Vec::with_capacity(end.saturating_sub(start).min(4096) as usize);
    for offset in start..end {
        let spec = if offset < CRITICAL.len() as u64 {
            critical_spec(offset as usize)
        } else {
            user_spec(users.nth(offset - CRITICAL.len() as u64))
        };
        keys.push(spec.maybe_ttl(settings.ttl));
    }
    Ok(if end < total {
        Page::more(keys, end.to_string())
    } else {
        Page::last(keys)
    })
}

/// Where an `enumerate` with `users_source` resumes.
#[derive(Debug, PartialEq)]
enum SourceCursor {
    /// At this offset in the critical keys.
    Critical(u64),
    /// At the first user after this id (`None`: the first user).
    UsersAfter(Option<i64>),
}

impl SourceCursor {
    fn parse(cursor: Option<&str>) -> Result<Self, String> {
        let bad = |c: &str| {
            format!(
                "invalid cursor {c:?}: expected a key offset below {}, \
                 \"{USERS_CURSOR}\" or \"{USERS_CURSOR}:{{id}}\"",
                CRITICAL.len()
            )
        };
        match cursor {
            None => Ok(SourceCursor::Critical(0)),
            Some(USERS_CURSOR) => Ok(SourceCursor::UsersAfter(None)),
            Some(c) => match c.strip_prefix(USERS_CURSOR).and_then(|r| r.strip_prefix(':')) {
                Some(id) => id
                    .parse()
                    .map(|id| SourceCursor::UsersAfter(Some(id)))
                    .map_err(|_| bad(c)),
                None => match c.parse::<u64>() {
                    Ok(n) if n < CRITICAL.len() as u64 => Ok(SourceCursor::Critical(n)),
                    _ => Err(bad(c)),
                },
            },
        }
    }
}

/// Enumerates the critical keys, then the active users of `source`.
fn enumerate_source(settings: &Settings, source: &str, cursor: Option<String>) -> Result<Page, String> {
    let mut keys = Vec::new();
    let after = match SourceCursor::parse(cursor.as_deref())? {
        SourceCursor::Critical(start) => {
            if start == 0 {
                log::debug!(
                    "enumerating {} critical keys and the active users of source {source:?}",
                    CRITICAL.len()
                );
                if settings.user_ids_ignored {
                    log::warn!(
                        "settings \"user_ids\" and \"users_source\" are both set: \
                         user profiles come from source {source:?}, \"user_ids\" is ignored"
                    );
                }
            }
            let end = (CRITICAL.len() as u64).min(start.saturating_add(settings.page_size));
            keys.extend((start..end).map(|o| critical_spec(o as usize).maybe_ttl(settings.ttl)));
            if end < CRITICAL.len() as u64 {
                return Ok(Page::more(keys, end.to_string()));
            }
            if keys.len() as u64 == settings.page_size {
                return Ok(Page::more(keys, USERS_CURSOR));
            }
            None
        }
        SourceCursor::UsersAfter(after) => after,
    };
    let room = settings.page_size - keys.len() as u64;
    let limit = i64::try_from(room.saturating_add(1)).unwrap_or(i64::MAX);
    let rows = query(source, SQL_USER_PAGE, &params![after.unwrap_or(i64::MIN), limit])
        .map_err(|e| format!("listing users in source {source:?}: {e}"))?;
    let (ids, more) = user_page(&rows, room)?;
    keys.extend(ids.iter().map(|id| user_spec(id).maybe_ttl(settings.ttl)));
    Ok(match ids.last() {
        Some(last) if more => Page::more(keys, format!("{USERS_CURSOR}:{last}")),
        _ => Page::last(keys),
    })
}

/// The ids of a page of [`SQL_USER_PAGE`] (asked for `room + 1` rows), and
/// whether there are more.
fn user_page(rows: &Rows, room: u64) -> Result<(Vec<i64>, bool), String> {
    let mut ids = rows
        .iter()
        .map(|row| row.get::<i64>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    let more = ids.len() as u64 > room;
    ids.truncate(room as usize);
    Ok((ids, more))
}

/// Produces a batch with user profiles read from `source`: the critical keys
/// as usual, the users with one range query per run of nearby ids.
fn produce_with_source(source: &str, keys: &[KeySpec]) -> Vec<Result<Entry, WarmError>> {
    let mut out: Vec<Option<Result<Entry, WarmError>>> = Vec::with_capacity(keys.len());
    let mut wanted: Vec<(usize, i64)> = Vec::new();
    for (i, spec) in keys.iter().enumerate() {
        match spec.key.strip_prefix(USER_PREFIX) {
            Some(rest) => {
                let raw = spec.arg.as_deref().unwrap_or(rest);
                match raw.parse::<i64>() {
                    Ok(id) => {
                        wanted.push((i, id));
                        out.push(None);
                    }
                    Err(_) => out.push(Some(Err(WarmError::fail(format!(
                        "{}: {raw:?} is not a user id",
                        spec.key
                    ))))),
                }
            }
            None => out.push(Some(produce_one(spec))),
        }
    }
    let mut ids: Vec<i64> = wanted.iter().map(|&(_, id)| id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found: HashMap<i64, Result<Value, String>> = HashMap::new();
    let mut failed: HashMap<i64, WarmError> = HashMap::new();
    for (lo, hi) in id_runs(&ids, USER_SPAN) {
        match query(source, SQL_USER_PROFILES, &params![lo, hi]) {
            Ok(rows) => {
                for row in rows.iter() {
                    match row.get::<i64>("id") {
                        Ok(id) => {
                            found.insert(id, profile_from_row(&row));
                        }
                        Err(e) => {
                            for &id in ids.iter().filter(|&&id| (lo..=hi).contains(&id)) {
                                failed.entry(id).or_insert_with(|| WarmError::fail(e.clone()));
                            }
                        }
                    }
                }
            }
            Err(e) => {
                for &id in ids.iter().filter(|&&id| (lo..=hi).contains(&id)) {
                    failed.insert(id, query_failure(&e));
                }
            }
        }
    }
    for (i, id) in wanted {
        let key = &keys[i].key;
        out[i] = Some(if let Some(err) = failed.get(&id) {
            Err(prefixed(key, err))
        } else {
            match found.get(&id) {
                Some(Ok(doc)) => Entry::json(doc),
                Some(Err(e)) => Err(WarmError::fail(format!("{key}: {e}"))),
                None => Err(WarmError::skip(format!(
                    "{key}: no active user {id} in source {source:?}"
                ))),
            }
        });
    }
    out.into_iter().map(|r| r.expect("every key has a result")).collect()
}

/// Splits sorted, distinct ids into inclusive ranges spanning at most `span`
/// ids each.
fn id_runs(ids: &[i64], span: i64) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((lo, hi)) if id.saturating_sub(*lo) < span => *hi = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// `{id, name, email, preferences}` from a row of [`SQL_USER_PROFILES`].
fn profile_from_row(row: &Row<'_>) -> Result<Value, String> {
    let id: i64 = row.get("id")?;
    let name: String = row.get("name")?;
    let email: String = row.get("email")?;
    let preferences = row
        .get_json::<Option<Value>>("preferences")?
        .unwrap_or_else(|| json!({}));
    Ok(json!({ "id": id, "name": name, "email": email, "preferences": preferences }))
}

/// A failed query: retried when the host says it is transient (a lost
/// connection), failed otherwise (an ungranted source, a missing table or
/// column, a query over its limits will not fix themselves).
fn query_failure(error: &Error) -> WarmError {
    WarmError::from(error.clone())
}

/// The same error, with the key in front of its reason.
fn prefixed(key: &str, err: &WarmError) -> WarmError {
    let reason = format!("{key}: {}", err.reason());
    match err {
        WarmError::Skip(_) => WarmError::skip(reason),
        WarmError::Retry(_) => WarmError::retry(reason),
        WarmError::Fail(_) => WarmError::fail(reason),
    }
}

/// Where user profiles come from.
enum Users {
    /// Generated, for these ids (`user_ids`).
    Ids(UserIds),
    /// The `users` table of this SQL source (`users_source`).
    Source(String),
}

/// The parsed settings.
struct Settings {
    users: Users,
    /// `user_ids` is set but `users_source` overrides it.
    user_ids_ignored: bool,
    page_size: u64,
    ttl: Option<u32>,
}

impl Settings {
    fn from_context(ctx: &Context) -> Result<Self, String> {
        let source = ctx.setting("users_source").map(str::trim).filter(|s| !s.is_empty());
        let user_ids_ignored = source.is_some() && ctx.setting("user_ids").is_some();
        let users = match (source, ctx.setting("user_ids")) {
            (Some(source), _) => Users::Source(source.to_string()),
            (None, Some(spec)) => Users::Ids(UserIds::parse(spec).map_err(|e| format!("setting \"user_ids\": {e}"))?),
            (None, None) => Users::Ids(UserIds::default()),
        };
        let page_size: u64 = ctx.setting_or("page_size", 500)?;
        if page_size == 0 {
            return Err("setting \"page_size\" must be at least 1, got 0".to_string());
        }
        Ok(Settings {
            users,
            user_ids_ignored,
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
                format!(
                    "bad part {:?} in {spec:?}: {why} (expected ids like \"1-100\", \"1,5,9\" or \"1-10,20\")",
                    part.trim()
                )
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
        key @ "system.settings" => keyed(key, system_settings()),
        "products.catalog.all" => catalog_all(),
        key @ "navigation.menu" => keyed(key, navigation_menu()),
        key @ "featured.products" => keyed(key, featured_products()),
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

/// `{key, data}`: how the seed application caches a key that is neither a
/// user profile nor a product catalog.
fn keyed(key: &str, data: Value) -> Value {
    json!({ "key": key, "data": data })
}

/// The catalog of every category, as the seed application caches
/// `products.catalog.{category}`: `{category, products, total_count}`.
fn catalog_all() -> Value {
    let products = catalog();
    json!({ "category": "all", "total_count": products.len(), "products": products })
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
    (101, "KB-001", "Mechanical Keyboard", 8999, "peripherals", 42),
    (102, "MS-002", "Wireless Mouse", 2999, "peripherals", 120),
    (103, "MN-003", "27\" Monitor", 24999, "displays", 15),
    (104, "HS-004", "Noise-Cancelling Headset", 14999, "audio", 33),
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
        .map(|&(id, _, name, price_cents, _, _)| json!({ "id": id, "name": name, "price_cents": price_cents }))
        .collect();
    json!({ "title": "Featured this week", "products": featured })
}

const FIRST_NAMES: [&str; 8] = ["Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Margaret", "Dennis"];
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
    use preheat_guest::ErrorKind;

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
        assert!(keys.iter().all(|k| k.tags.contains(&"critical".to_string())));
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

    fn value_of(key: &str) -> Value {
        let out = CriticalKeys::produce(&ctx(&[]), vec![KeySpec::new(key)]);
        let entry = out[0].as_ref().unwrap_or_else(|e| panic!("{key}: {e:?}"));
        serde_json::from_slice(&entry.value).unwrap()
    }

    #[test]
    fn values_have_the_seed_applications_shapes() {
        // Any other key: {key, data}.
        for key in ["system.settings", "navigation.menu", "featured.products"] {
            let doc = value_of(key);
            assert_eq!(doc.as_object().unwrap().len(), 2, "{key}: {doc}");
            assert_eq!(doc["key"], key);
            assert!(doc["data"].is_object(), "{key}: {doc}");
        }
        assert_eq!(value_of("system.settings")["data"]["currency"], "EUR");
        assert!(value_of("navigation.menu")["data"]["items"].is_array());
        assert_eq!(value_of("featured.products")["data"]["products"][0]["id"], 101);
        // A product catalog: {category, products, total_count}, the count an integer.
        let catalog = value_of("products.catalog.all");
        assert_eq!(catalog["category"], "all");
        assert_eq!(catalog["total_count"], json!(6));
        assert!(catalog["total_count"].is_u64());
        assert_eq!(catalog["products"].as_array().unwrap().len(), 6);
        assert_eq!(catalog["products"][2]["name"], "27\" Monitor");
        // A user profile: {id, ...} with an integer id, no timestamp.
        let user = value_of("user.profile.9");
        assert!(user["id"].is_u64());
        let mut fields: Vec<&str> = user.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["email", "id", "name", "preferences"]);
        // Sorted keys, no whitespace: the bytes the Python and JS twins match.
        let out = CriticalKeys::produce(&ctx(&[]), vec![KeySpec::new("system.settings")]);
        let text = String::from_utf8(out[0].as_ref().unwrap().value.clone()).unwrap();
        assert!(text.starts_with(r#"{"data":{"checkout":"#), "{text}");
        assert!(text.ends_with(r#""key":"system.settings"}"#), "{text}");
    }

    #[test]
    fn unknown_key_fails() {
        let out = CriticalKeys::produce(&ctx(&[]), vec![KeySpec::new("nope")]);
        assert!(matches!(&out[0], Err(WarmError::Fail(m)) if m.contains("nope")));
    }

    // --- users_source mode -------------------------------------------------

    use preheat_guest::{Rows, SqlValue};

    #[test]
    fn source_cursor_forms() {
        assert_eq!(SourceCursor::parse(None), Ok(SourceCursor::Critical(0)));
        assert_eq!(SourceCursor::parse(Some("3")), Ok(SourceCursor::Critical(3)));
        assert_eq!(SourceCursor::parse(Some("users")), Ok(SourceCursor::UsersAfter(None)));
        assert_eq!(
            SourceCursor::parse(Some("users:42")),
            Ok(SourceCursor::UsersAfter(Some(42)))
        );
        assert_eq!(
            SourceCursor::parse(Some("users:-7")),
            Ok(SourceCursor::UsersAfter(Some(-7)))
        );
        for bad in ["4", "x", "users:", "users:x", "users42"] {
            let err = SourceCursor::parse(Some(bad)).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn source_mode_lists_critical_keys_before_asking_the_database() {
        let c = ctx(&[("users_source", "app"), ("page_size", "2"), ("ttl", "60")]);
        let first = CriticalKeys::enumerate(&c, None).unwrap();
        assert_eq!(first.keys.len(), 2);
        assert_eq!(first.cursor.as_deref(), Some("2"));
        let second = CriticalKeys::enumerate(&c, first.cursor).unwrap();
        assert_eq!(second.keys[1].key, "featured.products");
        assert!(second.keys.iter().all(|k| k.ttl_seconds == Some(60)));
        assert_eq!(second.cursor.as_deref(), Some("users"));
        // The users come from the host: natively, the query is refused.
        let err = CriticalKeys::enumerate(&c, second.cursor).unwrap_err();
        assert!(err.contains("listing users in source \"app\""), "{err}");
        let err = CriticalKeys::enumerate(&ctx(&[("users_source", "app")]), None).unwrap_err();
        assert!(err.contains("preheat host"), "{err}");
    }

    #[test]
    fn users_source_overrides_user_ids_and_empty_means_absent() {
        let s = Settings::from_context(&ctx(&[("user_ids", "1-3"), ("users_source", " db ")])).unwrap();
        assert!(matches!(&s.users, Users::Source(name) if name == "db"));
        assert!(s.user_ids_ignored);
        let s = Settings::from_context(&ctx(&[("user_ids", "1-3"), ("users_source", "")])).unwrap();
        assert!(matches!(&s.users, Users::Ids(ids) if ids.len() == 3));
    }

    #[test]
    fn user_pages_keep_room_rows_and_report_more() {
        let rows = |ids: &[i64]| Rows::new(["id"], ids.iter().map(|&i| vec![SqlValue::Int(i)]).collect());
        assert_eq!(user_page(&rows(&[1, 2, 5]), 2), Ok((vec![1, 2], true)));
        assert_eq!(user_page(&rows(&[1, 2]), 2), Ok((vec![1, 2], false)));
        assert_eq!(user_page(&rows(&[]), 2), Ok((vec![], false)));
        let bad = Rows::new(["id"], vec![vec![SqlValue::Text("x".into())]]);
        assert!(user_page(&bad, 2).unwrap_err().contains("\"id\""));
    }

    #[test]
    fn id_runs_bound_the_rows_read() {
        assert_eq!(id_runs(&[], 500), vec![]);
        assert_eq!(id_runs(&[1, 2, 3, 499, 500, 501], 500), vec![(1, 500), (501, 501)]);
        assert_eq!(id_runs(&[5, 10_000, 10_001], 500), vec![(5, 5), (10_000, 10_001)]);
    }

    fn profile_rows(preferences: SqlValue) -> Rows {
        Rows::new(
            ["id", "name", "email", "preferences"],
            vec![vec![
                SqlValue::Int(7),
                SqlValue::Text("Ada Lovelace".into()),
                SqlValue::Text("ada@example.com".into()),
                preferences,
            ]],
        )
    }

    #[test]
    fn profile_from_a_row() {
        let rows = profile_rows(SqlValue::Text(r#"{"theme":"dark","newsletter":true}"#.into()));
        let doc = profile_from_row(&rows.first().unwrap()).unwrap();
        assert_eq!(
            doc,
            json!({
                "id": 7, "name": "Ada Lovelace", "email": "ada@example.com",
                "preferences": {"theme": "dark", "newsletter": true}
            })
        );
        let rows = profile_rows(SqlValue::Null);
        assert_eq!(
            profile_from_row(&rows.first().unwrap()).unwrap()["preferences"],
            json!({})
        );
        let rows = profile_rows(SqlValue::Text("{oops".into()));
        let err = profile_from_row(&rows.first().unwrap()).unwrap_err();
        assert!(err.contains("\"preferences\"") && err.contains("invalid JSON"), "{err}");
    }

    #[test]
    fn source_mode_produces_critical_keys_and_fails_users_outside_the_host() {
        let c = ctx(&[("users_source", "app")]);
        let keys = vec![
            KeySpec::new("system.settings"),
            KeySpec::new("user.profile.5"),
            KeySpec::new("user.profile.x"),
            KeySpec::new("nope"),
        ];
        let out = CriticalKeys::produce(&c, keys);
        assert_eq!(out.len(), 4);
        assert!(out[0].is_ok());
        assert!(
            matches!(&out[1], Err(WarmError::Fail(m)) if m.starts_with("user.profile.5: query on source \"app\"")),
            "{:?}",
            out[1]
        );
        assert!(matches!(&out[2], Err(WarmError::Fail(m)) if m.contains("not a user id")));
        assert!(matches!(&out[3], Err(WarmError::Fail(m)) if m.contains("nope")));
    }

    #[test]
    fn transient_query_errors_are_retried() {
        assert!(matches!(
            query_failure(&Error::transient("connection lost")),
            WarmError::Retry(_)
        ));
        let denied = Error::new(ErrorKind::Denied, "source \"app\" is not granted");
        assert!(matches!(query_failure(&denied), WarmError::Fail(_)));
        let timeout = Error::new(ErrorKind::Limit, "timed out (query_timeout)");
        assert!(matches!(query_failure(&timeout), WarmError::Fail(_)));
        let e = prefixed("k", &WarmError::retry("r"));
        assert_eq!(e, WarmError::retry("k: r"));
    }
}
