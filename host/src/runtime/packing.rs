//! Interface 0.2's columns: the host's key specs laid out in one
//! `key-batch` (one string, lists of integers, and runs, args and tags only
//! where there are some) for `produce`; a plugin's `key-batch` (an
//! `enumerate` page) checked and read back into key specs; and a plugin's
//! `produced` checked and cut into one outcome per key. Each value byte
//! crosses the boundary once: the lengths cut `values` in key order, so no
//! two values can share bytes.

use super::{Entry, KeySpec, WarmError};
use crate::wit::preheat::plugin::types::{KeyBatch, KeyRun, KeyText, Produced};
use std::iter::Peekable;

/// The keys of a batch, packed; refused only when the batch's text would not
/// fit the interface's 32-bit offsets (over 4 GiB of keys, args and tags).
pub(crate) fn pack(keys: &[KeySpec]) -> Result<KeyBatch, String> {
    let text_bytes: usize = keys
        .iter()
        .map(|k| k.key.len() + k.arg.as_ref().map_or(0, String::len) + k.tags.iter().map(String::len).sum::<usize>())
        .sum();
    if u32::try_from(text_bytes).is_err() || u32::try_from(keys.len()).is_err() {
        return Err(format!(
            "a batch of {} keys holds {text_bytes} bytes of keys, args and tags, over the 4 GiB a packed batch can address; lower max_arg_bytes or the batch size",
            keys.len()
        ));
    }
    let mut text = String::with_capacity(text_bytes);
    let mut key_ends = Vec::with_capacity(keys.len());
    let mut runs: Vec<KeyRun> = Vec::new();
    for spec in keys {
        text.push_str(&spec.key);
        key_ends.push(text.len() as u32);
        match runs.last_mut() {
            Some(run) if run.priority == spec.priority && run.ttl_seconds == spec.ttl_seconds => run.count += 1,
            _ => runs.push(KeyRun {
                count: 1,
                priority: spec.priority,
                ttl_seconds: spec.ttl_seconds,
            }),
        }
    }
    let mut args = Vec::new();
    let mut tags = Vec::new();
    for (i, spec) in keys.iter().enumerate() {
        let key = i as u32;
        if let Some(arg) = &spec.arg {
            args.push(append(&mut text, key, arg));
        }
        tags.extend(spec.tags.iter().map(|t| append(&mut text, key, t)));
    }
    Ok(KeyBatch {
        text,
        key_ends,
        runs,
        args,
        tags,
    })
}

/// Appends `s`, a string of key `key`, to `text` and returns where it lies
/// (in range: [`pack`] checked the total).
fn append(text: &mut String, key: u32, s: &str) -> KeyText {
    let start = text.len() as u32;
    text.push_str(s);
    KeyText {
        key,
        start,
        len: s.len() as u32,
    }
}

/// The most keys one `enumerate` page of a 0.2 plugin may list: a page's key
/// ends are 4 bytes each in the guest, but a key spec on the host is about a
/// hundred, so the page, not the instance's memory, bounds what one call can
/// make the host hold (about 10 MB of specs, plus the page's text).
pub const MAX_PAGE_KEYS: usize = 100_000;

/// The key specs of a batch a plugin packed (an `enumerate` page); an error
/// (for the caller to prefix with the plugin and the call) when its columns
/// disagree: key ends decreasing or past `text`, runs that do not add up to
/// the keys, args or tags out of key order, out of the batch or past `text`,
/// a string cut inside a character, or strings adding up to more bytes than
/// `text` has (so a page cannot make the host copy one string many times),
/// or more than [`MAX_PAGE_KEYS`] keys.
pub(crate) fn unpack_keys(batch: KeyBatch) -> Result<Vec<KeySpec>, String> {
    let KeyBatch {
        text,
        key_ends,
        runs,
        args,
        tags,
    } = batch;
    let keys = key_ends.len();
    if keys > MAX_PAGE_KEYS {
        return Err(format!(
            "listed {keys} keys in one page, over the {MAX_PAGE_KEYS} a page may hold (MAX_PAGE_KEYS); return smaller pages (a page of a few hundred to a few thousand keys is typical)"
        ));
    }
    let in_runs: u64 = runs.iter().map(|r| u64::from(r.count)).sum();
    if in_runs != keys as u64 {
        return Err(format!(
            "listed {keys} keys (`key-ends`) but runs of {in_runs}; the counts of `runs` must add up to the number of keys"
        ));
    }
    check_order("args", args.iter().map(|a| a.key), keys, "keys listed", true)?;
    check_order("tags", tags.iter().map(|t| t.key), keys, "keys listed", false)?;
    let cut = |list: &str, start: u32, len: u32| -> Result<String, String> {
        let (start, end) = (start as usize, start as usize + len as usize);
        match text.get(start..end) {
            Some(s) => Ok(s.to_string()),
            None => Err(format!(
                "listed a string of `{list}` at bytes {start}..{end} of a {}-byte `text`: past its end or inside a character",
                text.len()
            )),
        }
    };
    let key_bytes = key_ends.last().map_or(0, |&e| u64::from(e));
    let other_bytes: u64 = args.iter().chain(&tags).map(|t| u64::from(t.len)).sum();
    if key_bytes + other_bytes > text.len() as u64 {
        return Err(format!(
            "listed {} bytes of keys, args and tags in a {}-byte `text`; each string must have bytes of its own",
            key_bytes + other_bytes,
            text.len()
        ));
    }
    let mut runs = runs
        .iter()
        .flat_map(|r| (0..r.count).map(move |_| (r.priority, r.ttl_seconds)));
    let (mut args, mut tags) = (args.into_iter().peekable(), tags.into_iter().peekable());
    let mut start = 0;
    let mut specs = Vec::with_capacity(keys);
    for (i, &end) in key_ends.iter().enumerate() {
        let key = i as u32;
        if end < start {
            return Err(format!(
                "listed key {i} as ending at byte {end}, before the end of key {} at byte {start}; `key-ends` must not decrease",
                i - 1
            ));
        }
        let (priority, ttl_seconds) = runs.next().expect("the runs add up to the keys");
        let of_key = |list: &mut Peekable<std::vec::IntoIter<KeyText>>| list.next_if(|t| t.key == key);
        let arg = of_key(&mut args).map(|a| cut("args", a.start, a.len)).transpose()?;
        let mut own_tags = Vec::new();
        while let Some(t) = of_key(&mut tags) {
            own_tags.push(cut("tags", t.start, t.len)?);
        }
        specs.push(KeySpec {
            key: cut("key-ends", start, end - start)?,
            priority,
            ttl_seconds,
            tags: own_tags,
            arg,
        });
        start = end;
    }
    Ok(specs)
}

/// One outcome per length, each value cut from `values` in order; an error
/// (for the caller to prefix with the plugin and the call) when the lengths
/// do not add up to the bytes returned, or when `errors` or `ttls` name a key
/// out of order, out of the batch, or (for `ttls`) one in `errors`.
pub(crate) fn unpack(produced: Produced) -> Result<Vec<Result<Entry, WarmError>>, String> {
    let Produced {
        values,
        lens,
        errors,
        ttls,
    } = produced;
    let total: u64 = lens.iter().map(|&l| u64::from(l)).sum();
    if total != values.len() as u64 {
        return Err(format!(
            "returned {} bytes of values, but its lengths add up to {total}; `lens` must give each key's value length in `values`, in key order",
            values.len()
        ));
    }
    check_order(
        "errors",
        errors.iter().map(|e| e.key),
        lens.len(),
        "lengths returned",
        true,
    )?;
    check_order("ttls", ttls.iter().map(|t| t.key), lens.len(), "lengths returned", true)?;
    let mut errors = errors.into_iter().peekable();
    let mut ttls = ttls.into_iter().peekable();
    // One buffer for the batch: each value is a slice of it, not a copy.
    let values = bytes::Bytes::from(values);
    let mut at = 0;
    let mut out = Vec::with_capacity(lens.len());
    for (i, &len) in lens.iter().enumerate() {
        let key = i as u32;
        let ttl_seconds = ttls.next_if(|t| t.key == key).map(|t| t.ttl_seconds);
        if let Some(e) = errors.next_if(|e| e.key == key) {
            if len != 0 || ttl_seconds.is_some() {
                return Err(format!(
                    "gave key {i} of the batch an error and also {}; a key in `errors` must have length 0 and no entry in `ttls`",
                    if len != 0 { format!("a value of {len} bytes") } else { "a ttl".to_string() }
                ));
            }
            out.push(Err(e.error));
            continue;
        }
        let end = at + len as usize;
        out.push(Ok(Entry {
            value: values.slice(at..end),
            ttl_seconds,
        }));
        at = end;
    }
    Ok(out)
}

/// Refuses key indexes (of `errors`, `ttls`, `args` or `tags`) that are not
/// in increasing order (strictly: at most one entry per key) or not below
/// `keys`, the number of keys (`counted` says how they were counted).
fn check_order(
    list: &str,
    indexes: impl Iterator<Item = u32>,
    keys: usize,
    counted: &str,
    once: bool,
) -> Result<(), String> {
    let mut last = None;
    for key in indexes {
        let behind = last.is_some_and(|l| if once { key <= l } else { key < l });
        if behind || key as usize >= keys {
            let each = if once { "each key once at most" } else { "keys" };
            return Err(format!(
                "listed key {key} in `{list}` out of order or out of the batch ({keys} {counted}); `{list}` must name {each}, in key order, by its index in the batch"
            ));
        }
        last = Some(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Priority;
    use crate::wit::preheat::plugin::types::{KeyError, KeyTtl};

    fn spec(key: &str, priority: Priority, ttl: Option<u32>, tags: &[&str], arg: Option<&str>) -> KeySpec {
        KeySpec {
            key: key.into(),
            priority,
            ttl_seconds: ttl,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            arg: arg.map(str::to_string),
        }
    }

    #[test]
    fn packed_keys_give_back_every_key_arg_tag_priority_and_ttl() {
        let keys = [
            spec("k.1", Priority::High, Some(7), &["a", "bé"], Some("1")),
            spec("k.é", Priority::High, Some(7), &[], None),
            spec("", Priority::Low, None, &["c"], Some("")),
            spec("k.4", Priority::High, Some(7), &[], None),
        ];
        let batch = pack(&keys).unwrap();
        // The generated types have no PartialEq: compared by their Debug form.
        assert_eq!(
            format!("{:?}", unpack_keys(batch.clone()).unwrap()),
            format!("{keys:?}")
        );
        // Consecutive keys of the same priority and ttl share a run.
        let counts: Vec<u32> = batch.runs.iter().map(|r| r.count).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(&batch.text[..batch.key_ends[3] as usize], "k.1k.ék.4");
        let empty = pack(&[]).unwrap();
        assert!(empty.text.is_empty() && empty.key_ends.is_empty() && empty.runs.is_empty());
        assert!(unpack_keys(empty).unwrap().is_empty());
    }

    fn text(key: u32, start: u32, len: u32) -> KeyText {
        KeyText { key, start, len }
    }

    /// A hostile page cannot make the host read past `text`, cut a
    /// character, copy one string for many keys, or hold more than
    /// `MAX_PAGE_KEYS` specs: every such page is refused whole, with what was wrong.
    #[test]
    fn pages_whose_columns_disagree_are_refused() {
        let good = pack(&[
            spec("a", Priority::Normal, None, &["t"], Some("1")),
            spec("bé", Priority::Normal, None, &[], None),
        ])
        .unwrap();
        assert_eq!(good.text, "abé1t");
        let with = |change: &dyn Fn(&mut KeyBatch)| {
            let mut batch = good.clone();
            change(&mut batch);
            unpack_keys(batch).unwrap_err()
        };
        for (err, expected) in [
            (
                with(&|b| b.key_ends = vec![4, 1]),
                "key 1 as ending at byte 1, before the end of key 0 at byte 4",
            ),
            (
                with(&|b| b.key_ends = vec![1, 3]),
                "at bytes 1..3 of a 6-byte `text`: past its end or inside a character",
            ),
            (
                with(&|b| b.key_ends = vec![1, 9]),
                "listed 11 bytes of keys, args and tags in a 6-byte `text`",
            ),
            (
                with(&|b| b.runs[0].count = 3),
                "listed 2 keys (`key-ends`) but runs of 3",
            ),
            (with(&|b| b.runs[0].count = u32::MAX), "but runs of 4294967295"),
            (
                with(&|b| b.args[0].key = 2),
                "key 2 in `args` out of order or out of the batch (2 keys listed)",
            ),
            (with(&|b| b.args.push(text(0, 5, 0))), "key 0 in `args` out of order"),
            (
                with(&|b| b.tags = vec![text(1, 5, 1), text(0, 5, 0)]),
                "key 0 in `tags` out of order",
            ),
            (with(&|b| b.tags[0].start = 9), "a string of `tags` at bytes 9..10"),
            (
                with(&|b| b.tags = vec![text(0, 0, 6); 2]),
                "listed 17 bytes of keys, args and tags in a 6-byte `text`; each string must have bytes of its own",
            ),
            (
                with(&|b| {
                    b.key_ends = vec![0; MAX_PAGE_KEYS + 1];
                    b.runs[0].count = MAX_PAGE_KEYS as u32 + 1;
                    b.args.clear();
                    b.tags.clear();
                }),
                "listed 100001 keys in one page, over the 100000 a page may hold (MAX_PAGE_KEYS)",
            ),
        ] {
            assert!(err.contains(expected), "{err}");
        }
        // A key may have many tags (in order), and empty strings anywhere.
        let mut batch = good.clone();
        batch.tags = vec![text(0, 5, 1), text(0, 5, 0), text(1, 0, 0)];
        let specs = unpack_keys(batch).unwrap();
        assert_eq!(specs[0].tags, ["t", ""]);
        assert_eq!(specs[1].tags, [""]);
    }

    fn produced(values: &[u8], lens: &[u32], errors: &[(u32, WarmError)], ttls: &[(u32, u32)]) -> Produced {
        Produced {
            values: values.to_vec(),
            lens: lens.to_vec(),
            errors: errors
                .iter()
                .map(|(key, error)| KeyError {
                    key: *key,
                    error: error.clone(),
                })
                .collect(),
            ttls: ttls
                .iter()
                .map(|&(key, ttl_seconds)| KeyTtl { key, ttl_seconds })
                .collect(),
        }
    }

    #[test]
    fn produced_values_are_cut_in_order_and_errors_hold_no_bytes() {
        let skip = WarmError::Skip("s".into());
        let entries = unpack(produced(b"abcdef", &[2, 0, 0, 4], &[(1, skip.clone())], &[(2, 9)])).unwrap();
        let entry = |v: &[u8], ttl| {
            Ok(Entry {
                value: bytes::Bytes::copy_from_slice(v),
                ttl_seconds: ttl,
            })
        };
        let expected = [entry(b"ab", None), Err(skip), entry(b"", Some(9)), entry(b"cdef", None)];
        assert_eq!(format!("{entries:?}"), format!("{expected:?}"));
    }

    /// A hostile plugin cannot make the host read past `values`, hand one
    /// buffer to many keys, or give a key two outcomes: every such answer is
    /// refused whole, with what was wrong.
    #[test]
    fn answers_that_do_not_add_up_are_refused() {
        let fail = || WarmError::Fail("f".into());
        for (answer, expected) in [
            (produced(b"abcdef", &[4, 4], &[], &[]), "returned 6 bytes of values"),
            (produced(b"abcdef", &[1], &[], &[]), "returned 6 bytes of values"),
            (
                produced(b"abcdef", &[u32::MAX, u32::MAX], &[], &[]),
                "returned 6 bytes of values",
            ),
            (
                produced(b"", &[0, 0], &[(1, fail()), (1, fail())], &[]),
                "key 1 in `errors` out of order",
            ),
            (
                produced(b"", &[0, 0], &[(1, fail()), (0, fail())], &[]),
                "key 0 in `errors` out of order",
            ),
            (
                produced(b"", &[0, 0], &[(2, fail())], &[]),
                "key 2 in `errors` out of order or out of the batch",
            ),
            (produced(b"", &[0], &[], &[(5, 1)]), "key 5 in `ttls`"),
            (
                produced(b"ab", &[2], &[(0, fail())], &[]),
                "an error and also a value of 2 bytes",
            ),
            (
                produced(b"", &[0], &[(0, fail())], &[(0, 3)]),
                "an error and also a ttl",
            ),
        ] {
            let err = unpack(answer).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
