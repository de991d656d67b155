//! `synthetic`: any number of generated keys with generated values, for
//! benchmarks and load tests.
//!
//! Keys are `{prefix}{i}` for `i` in `0..keys`, priority normal, no tags, no
//! arg. The value of key `i` is exactly `value_size` bytes of printable ASCII:
//! the decimal index, a `:`, then filler drawn from a splitmix64 stream
//! seeded by `i` (truncated when `value_size` is smaller than the header).
//! The same index always gives the same value.
//!
//! Settings (all optional):
//!
//! * `keys`: how many keys (default 1000).
//! * `prefix`: key prefix (default `synthetic:`).
//! * `value_size`: bytes per value (default 200).
//! * `page_size`: keys per `enumerate` page (default 1000, at least 1).
//! * `ttl`: time to live in seconds applied to every key (default: the host's).
//!
//! The cursor is the next index, in decimal.
//!
//! In a sharded run that hands it the shard (`sharding = "plugin"`), it
//! lists only the indexes `i` with `i % count == index`, which is how a
//! plugin keeps to its share at the source (`WHERE id % count = index`).
//!
//! Built for millions of keys: no JSON, one allocation per listed key, none
//! per produced value (each is written in place, through
//! `Plugin::produce_batch`), no per-key formatting machinery.

use preheat_guest::{export_plugin, Context, KeySpec, Keys, Page, Plugin, Priority, Values, WarmError};

/// The plugin.
pub struct Synthetic;

impl Plugin for Synthetic {
    fn enumerate(ctx: &Context, cursor: Option<String>) -> Result<Page, String> {
        let keys: u64 = ctx.setting_or("keys", 1000)?;
        let page_size: u64 = ctx.setting_or("page_size", 1000)?;
        if page_size == 0 {
            return Err("setting \"page_size\" must be at least 1, got 0".to_string());
        }
        let ttl: Option<u32> = ctx.setting_parse("ttl")?;
        let prefix = ctx.setting("prefix").unwrap_or(DEFAULT_PREFIX);
        let start: u64 = match cursor.as_deref() {
            None => 0,
            Some(c) => c
                .parse()
                .map_err(|_| format!("invalid cursor {c:?}: expected a key index"))?,
        };
        let end = keys.min(start.saturating_add(page_size));
        let mut page = Vec::with_capacity(end.saturating_sub(start).min(1 << 16) as usize);
        let share = ctx.shard().map(|s| (u64::from(s.index), u64::from(s.count.max(1))));
        for i in (start..end).filter(|i| share.is_none_or(|(index, count)| i % count == index)) {
            let mut key = String::with_capacity(prefix.len() + 20);
            key.push_str(prefix);
            push_decimal(&mut key, i);
            page.push(KeySpec {
                key,
                priority: Priority::Normal,
                ttl_seconds: ttl,
                tags: Vec::new(),
                arg: None,
            });
        }
        Ok(if end < keys {
            Page::more(page, end.to_string())
        } else {
            Page::last(page)
        })
    }

    /// Writes each value straight into the batch's buffer: no copy of a key
    /// or a value on the way.
    fn produce_batch(ctx: &Context, keys: &Keys, out: &mut Values) {
        let settings = ctx
            .setting_or::<usize>("value_size", 200)
            .map(|size| (size, ctx.setting("prefix").unwrap_or(DEFAULT_PREFIX)));
        for key in keys.iter() {
            let (size, prefix) = match &settings {
                Ok(settings) => *settings,
                Err(e) => {
                    out.error(WarmError::fail(e.clone()));
                    continue;
                }
            };
            match strip_prefix(key.key, prefix).and_then(|n| n.parse::<u64>().ok()) {
                Some(index) => out.write(None, |buf| {
                    value_into(index, size, buf);
                    Ok(())
                }),
                None => out.error(WarmError::fail(format!(
                    "{:?} is not a synthetic key (expected {prefix:?} followed by an index)",
                    key.key
                ))),
            }
        }
    }
}

mod value;

use value::decimal;
pub use value::{value, value_into};

export_plugin!(Synthetic);

const DEFAULT_PREFIX: &str = "synthetic:";

/// `key` without `prefix`, if it starts with it. `str::strip_prefix` calls
/// `memcmp`, which in WebAssembly is a loop over single bytes, each paying
/// for fuel metering; this compares eight bytes at a time.
fn strip_prefix<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let head = key.as_bytes().get(..prefix.len())?;
    let (mut k, mut p) = (head.chunks_exact(8), prefix.as_bytes().chunks_exact(8));
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or_default());
    let same = k.by_ref().zip(p.by_ref()).all(|(k, p)| word(k) == word(p))
        && k.remainder().iter().zip(p.remainder()).all(|(k, p)| k == p);
    // Equal bytes: `key` starts with the whole of `prefix`, so its end is a character boundary.
    same.then(|| &key[prefix.len()..])
}

fn push_decimal(s: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    // `decimal` only produces ASCII digits.
    s.push_str(core::str::from_utf8(decimal(n, &mut buf)).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(settings: &[(&str, &str)]) -> Context {
        Context::new("run", "bulk", settings.iter().copied())
    }

    fn produce(ctx: &Context, specs: &[KeySpec]) -> Vec<Result<preheat_guest::Entry, WarmError>> {
        let mut out = Values::default();
        Synthetic::produce_batch(ctx, &Keys::new(specs), &mut out);
        out.into_entries()
    }

    #[test]
    fn default_thousand_keys_in_one_page() {
        let page = Synthetic::enumerate(&ctx(&[]), None).unwrap();
        assert_eq!(page.keys.len(), 1000);
        assert!(page.cursor.is_none());
        assert_eq!(page.keys[0].key, "synthetic:0");
        assert_eq!(page.keys[999].key, "synthetic:999");
        assert_eq!(page.keys[0].ttl_seconds, None);
    }

    #[test]
    fn pages_follow_the_cursor() {
        let c = ctx(&[("keys", "25"), ("page_size", "10"), ("prefix", "b:"), ("ttl", "9")]);
        let p1 = Synthetic::enumerate(&c, None).unwrap();
        assert_eq!(p1.cursor.as_deref(), Some("10"));
        let p3 = Synthetic::enumerate(&c, Some("20".into())).unwrap();
        assert_eq!(p3.keys.len(), 5);
        assert_eq!(p3.keys[4].key, "b:24");
        assert_eq!(p3.keys[4].ttl_seconds, Some(9));
        assert!(p3.cursor.is_none());
    }

    #[test]
    fn a_shard_lists_its_share_and_the_shares_cover_every_key_once() {
        let mut seen = Vec::new();
        for index in 0..3 {
            let c = ctx(&[("keys", "25"), ("page_size", "10")]).with_shard(index, 3);
            let mut cursor = None;
            loop {
                let page = Synthetic::enumerate(&c, cursor).unwrap();
                seen.extend(page.keys.into_iter().map(|k| k.key));
                cursor = page.cursor;
                if cursor.is_none() {
                    break;
                }
            }
        }
        seen.sort();
        let mut all: Vec<String> = (0..25).map(|i| format!("synthetic:{i}")).collect();
        all.sort();
        assert_eq!(seen, all);
        let first = Synthetic::enumerate(&ctx(&[("keys", "25")]).with_shard(1, 3), None).unwrap();
        assert_eq!(first.keys[0].key, "synthetic:1");
        assert_eq!(first.keys[1].key, "synthetic:4");
    }

    #[test]
    fn zero_keys_is_one_empty_page() {
        let page = Synthetic::enumerate(&ctx(&[("keys", "0")]), None).unwrap();
        assert!(page.keys.is_empty() && page.cursor.is_none());
    }

    #[test]
    fn values_are_deterministic_and_sized() {
        assert_eq!(value(42, 200).len(), 200);
        assert_eq!(value(42, 200), value(42, 200));
        assert_ne!(value(42, 200), value(43, 200));
        assert!(value(42, 200).starts_with(b"42:"));
        assert_eq!(value(12345, 3), b"123");
        assert_eq!(value(7, 0), b"");
        assert!(value(1, 1000).iter().all(u8::is_ascii_graphic));
        // The same bytes in every version: benchmark runs are compared over time.
        assert_eq!(value(42, 27), b"42:w6_u0FdtPcKnhzj_jyp_hUhq");
    }

    #[test]
    fn produce_uses_value_size_and_rejects_foreign_keys() {
        let c = ctx(&[("value_size", "64")]);
        let out = produce(
            &c,
            &[
                KeySpec::new("synthetic:5"),
                KeySpec::new("x:5"),
                KeySpec::new("synthetic:6"),
            ],
        );
        assert_eq!(out[0].as_ref().unwrap().value, value(5, 64));
        assert!(matches!(&out[1], Err(WarmError::Fail(m)) if m.contains("\"x:5\"")));
        assert_eq!(out[2].as_ref().unwrap().value, value(6, 64));
        for (key, prefix, rest) in [
            ("synthetic:12", "synthetic:", Some("12")),
            ("synthetiC:12", "synthetic:", None),
            ("synthetic;12", "synthetic:", None),
            ("synth", "synthetic:", None),
            ("abcdefgh", "abcdefgh", Some("")),
            ("abcdefgX1", "abcdefgh", None),
            ("é:1", "é:", Some("1")),
            ("x", "", Some("x")),
        ] {
            assert_eq!(strip_prefix(key, prefix), rest, "{key} {prefix}");
        }
    }

    #[test]
    fn bad_settings_are_reported() {
        let err = Synthetic::enumerate(&ctx(&[("keys", "many")]), None).unwrap_err();
        assert!(err.contains("\"keys\"") && err.contains("\"many\""), "{err}");
        let out = produce(&ctx(&[("value_size", "-1")]), &[KeySpec::new("synthetic:1")]);
        assert!(matches!(&out[0], Err(WarmError::Fail(m)) if m.contains("value_size")));
    }
}
