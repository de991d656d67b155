//! Interface 0.2's packed `produce`: the host's key specs laid out in one
//! `key-batch` (one string, two lists), and a plugin's `produced` checked and
//! cut into one entry per value. Each value byte crosses the boundary once:
//! the outcomes carry lengths, not offsets, so no two values can share bytes.

use super::{Entry, KeySpec, WarmError};
use crate::wit::preheat::plugin::types::{BatchKey, KeyBatch, Produced, Span};

/// The keys of a batch, packed; refused only when the batch's text would not
/// fit the interface's 32-bit offsets (over 4 GiB of keys, args and tags).
pub(crate) fn pack(keys: &[KeySpec]) -> Result<KeyBatch, String> {
    let text_bytes: usize = keys
        .iter()
        .map(|k| k.key.len() + k.arg.as_ref().map_or(0, String::len) + k.tags.iter().map(String::len).sum::<usize>())
        .sum();
    if u32::try_from(text_bytes).is_err() {
        return Err(format!(
            "a batch of {} keys holds {text_bytes} bytes of keys, args and tags, over the 4 GiB a packed batch can address; lower max_arg_bytes or the batch size",
            keys.len()
        ));
    }
    let mut text = String::with_capacity(text_bytes);
    let mut tags = Vec::new();
    let mut packed = Vec::with_capacity(keys.len());
    for spec in keys {
        let key = append(&mut text, &spec.key);
        let first_tag = tags.len() as u32;
        tags.extend(spec.tags.iter().map(|t| append(&mut text, t)));
        let arg = spec.arg.as_deref().map(|a| append(&mut text, a));
        packed.push(BatchKey {
            key,
            priority: spec.priority,
            ttl_seconds: spec.ttl_seconds,
            tags: Span {
                start: first_tag,
                len: tags.len() as u32 - first_tag,
            },
            arg,
        });
    }
    Ok(KeyBatch {
        text,
        keys: packed,
        tags,
    })
}

/// Appends `s` to `text` and returns where it lies (in range: [`pack`] checked the total).
fn append(text: &mut String, s: &str) -> Span {
    let start = text.len() as u32;
    text.push_str(s);
    Span {
        start,
        len: s.len() as u32,
    }
}

/// One result per outcome, each value cut from `values` in order; an error
/// (for the caller to prefix with the plugin and the call) when the lengths
/// claimed by the outcomes do not add up to the bytes returned.
pub(crate) fn unpack(produced: Produced) -> Result<Vec<Result<Entry, WarmError>>, String> {
    let Produced { values, outcomes } = produced;
    let claimed: u64 = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|v| u64::from(v.len))
        .sum();
    if claimed != values.len() as u64 {
        return Err(format!(
            "returned {} bytes of values, but its outcomes give lengths adding up to {claimed}; each value's `len` must be its length in `values`, in key order",
            values.len()
        ));
    }
    let mut rest = values.as_slice();
    Ok(outcomes
        .into_iter()
        .map(|outcome| {
            outcome.map(|v| {
                let (value, after) = rest.split_at(v.len as usize);
                rest = after;
                Entry {
                    value: value.to_vec(),
                    ttl_seconds: v.ttl_seconds,
                }
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Priority;
    use crate::wit::preheat::plugin::types::ProducedValue;

    fn spec(key: &str, tags: &[&str], arg: Option<&str>) -> KeySpec {
        KeySpec {
            key: key.into(),
            priority: Priority::High,
            ttl_seconds: Some(7),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            arg: arg.map(str::to_string),
        }
    }

    fn text<'a>(batch: &'a KeyBatch, span: &Span) -> &'a str {
        &batch.text[span.start as usize..(span.start + span.len) as usize]
    }

    #[test]
    fn packed_keys_give_back_every_key_arg_and_tag() {
        let keys = [
            spec("k.1", &["a", "bé"], Some("1")),
            spec("k.é", &[], None),
            spec("", &["c"], Some("")),
        ];
        let batch = pack(&keys).unwrap();
        assert_eq!(batch.keys.len(), 3);
        for (spec, packed) in keys.iter().zip(&batch.keys) {
            assert_eq!(text(&batch, &packed.key), spec.key);
            assert_eq!(packed.arg.as_ref().map(|a| text(&batch, a)), spec.arg.as_deref());
            let tags = &batch.tags[packed.tags.start as usize..(packed.tags.start + packed.tags.len) as usize];
            let tags: Vec<&str> = tags.iter().map(|t| text(&batch, t)).collect();
            assert_eq!(tags, spec.tags);
            assert_eq!((packed.priority, packed.ttl_seconds), (Priority::High, Some(7)));
        }
        assert!(pack(&[]).unwrap().text.is_empty());
    }

    fn value(len: u32) -> Result<ProducedValue, WarmError> {
        Ok(ProducedValue { len, ttl_seconds: None })
    }

    #[test]
    fn produced_values_are_cut_in_order_and_errors_hold_no_bytes() {
        let produced = Produced {
            values: b"abcdef".to_vec(),
            outcomes: vec![value(2), Err(WarmError::Skip("s".into())), value(0), value(4)],
        };
        let entries = unpack(produced).unwrap();
        let values: Vec<Option<&[u8]>> = entries.iter().map(|e| e.as_ref().ok().map(|e| &e.value[..])).collect();
        assert_eq!(values, [Some(&b"ab"[..]), None, Some(&b""[..]), Some(&b"cdef"[..])]);
    }

    /// Lengths that claim more or fewer bytes than were returned are refused,
    /// whole: a hostile plugin cannot make the host read past `values` or
    /// hand one buffer to many keys.
    #[test]
    fn lengths_that_do_not_add_up_are_refused() {
        for outcomes in [
            vec![value(4), value(4)],
            vec![value(1)],
            vec![value(u32::MAX), value(u32::MAX)],
        ] {
            let err = unpack(Produced {
                values: b"abcdef".to_vec(),
                outcomes,
            })
            .unwrap_err();
            assert!(err.contains("returned 6 bytes of values"), "{err}");
        }
    }
}
