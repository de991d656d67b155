//! Interface 0.2's packed `produce`: the host's key specs laid out in one
//! `key-batch` (one string, lists of integers, and runs, args and tags only
//! where there are some), and a plugin's `produced` checked and cut into one
//! outcome per key. Each value byte crosses the boundary once: the lengths
//! cut `values` in key order, so no two values can share bytes.

use super::{Entry, KeySpec, WarmError};
use crate::wit::preheat::plugin::types::{KeyBatch, KeyRun, KeyText, Produced};

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
    check_order("errors", errors.iter().map(|e| e.key), lens.len())?;
    check_order("ttls", ttls.iter().map(|t| t.key), lens.len())?;
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

/// Refuses key indexes (of `errors` or `ttls`) that are not strictly
/// increasing or not below `keys`, the number of lengths returned.
fn check_order(list: &str, indexes: impl Iterator<Item = u32>, keys: usize) -> Result<(), String> {
    let mut last = None;
    for key in indexes {
        if last.is_some_and(|l| key <= l) || key as usize >= keys {
            return Err(format!(
                "listed key {key} in `{list}` out of order or out of the batch ({keys} lengths returned); `{list}` must name each key once, in key order, by its index in the batch"
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

    /// Reads a packed batch back into key specs, as a guest does.
    fn read(batch: &KeyBatch) -> Vec<KeySpec> {
        let text = |start: u32, len: u32| batch.text[start as usize..(start + len) as usize].to_string();
        let mut runs = batch
            .runs
            .iter()
            .flat_map(|r| (0..r.count).map(move |_| (r.priority, r.ttl_seconds)));
        let mut start = 0;
        batch
            .key_ends
            .iter()
            .enumerate()
            .map(|(i, &end)| {
                let (priority, ttl_seconds) = runs.next().expect("a run for every key");
                let key = text(start, end - start);
                start = end;
                let mine = |t: &&KeyText| t.key == i as u32;
                KeySpec {
                    key,
                    priority,
                    ttl_seconds,
                    tags: batch.tags.iter().filter(mine).map(|t| text(t.start, t.len)).collect(),
                    arg: batch.args.iter().find(mine).map(|a| text(a.start, a.len)),
                }
            })
            .collect()
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
        assert_eq!(format!("{:?}", read(&batch)), format!("{keys:?}"));
        // Consecutive keys of the same priority and ttl share a run.
        let counts: Vec<u32> = batch.runs.iter().map(|r| r.count).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(&batch.text[..batch.key_ends[3] as usize], "k.1k.ék.4");
        let empty = pack(&[]).unwrap();
        assert!(empty.text.is_empty() && empty.key_ends.is_empty() && empty.runs.is_empty());
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
