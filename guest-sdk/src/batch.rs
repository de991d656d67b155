//! A produce batch without copies: [`Keys`] lends each key of the host's
//! packed batch as borrowed strings, and [`Values`] writes each value straight
//! into the buffer the host takes back. [`Plugin::produce_batch`](crate::Plugin::produce_batch)
//! works on these; the owned [`KeySpec`]s and [`Entry`]s of
//! [`Plugin::produce`](crate::Plugin::produce) are built from them only when
//! a plugin asks for them.

use serde::Serialize;

use crate::bindings::preheat::plugin::types::{KeyBatch, KeyError, KeyRun, KeyText, KeyTtl, Produced};
use crate::{Entry, KeySpec, Priority, WarmError};

/// The keys of one `produce` call, as the host packed them: every key, arg
/// and tag is a slice of one string.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    batch: KeyBatch,
}

/// One key of a [`Keys`] batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key<'a> {
    /// The key.
    pub key: &'a str,
    /// How urgently it is warmed.
    pub priority: Priority,
    /// The key spec's time to live, in seconds, if it had one.
    pub ttl_seconds: Option<u32>,
    /// The key spec's opaque data, if it had one.
    pub arg: Option<&'a str>,
    tags: &'a [KeyText],
    text: &'a str,
}

impl Keys {
    /// Packs key specs as the host does (and as the SDK packs an
    /// `enumerate` page for the host), for tests of a plugin's
    /// [`Plugin::produce_batch`](crate::Plugin::produce_batch) on the native target.
    ///
    /// ```
    /// use preheat_guest::{KeySpec, Keys};
    ///
    /// let keys = Keys::new(&[KeySpec::new("a").arg("1"), KeySpec::new("b").tag("t")]);
    /// assert_eq!(keys.len(), 2);
    /// assert_eq!(keys.iter().map(|k| k.key).collect::<Vec<_>>(), ["a", "b"]);
    /// assert_eq!(keys.iter().next().unwrap().arg, Some("1"));
    /// ```
    pub fn new(specs: &[KeySpec]) -> Self {
        let mut text = String::new();
        let mut key_ends = Vec::with_capacity(specs.len());
        let mut runs: Vec<KeyRun> = Vec::new();
        for spec in specs {
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
        let (mut args, mut tags) = (Vec::new(), Vec::new());
        let mut append = |key: usize, s: &str| {
            let start = text.len() as u32;
            text.push_str(s);
            KeyText {
                key: key as u32,
                start,
                len: s.len() as u32,
            }
        };
        for (i, spec) in specs.iter().enumerate() {
            args.extend(spec.arg.as_deref().map(|a| append(i, a)));
            tags.extend(spec.tags.iter().map(|t| append(i, t)));
        }
        Keys::from(KeyBatch {
            text,
            key_ends,
            runs,
            args,
            tags,
        })
    }

    /// The packed batch, as the interface carries it (an `enumerate` page's
    /// keys), for a plugin that writes the interface's types itself.
    pub fn into_batch(self) -> KeyBatch {
        self.batch
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.batch.key_ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.batch.key_ends.is_empty()
    }

    /// The keys, in the order the host gave them (the order of the outcomes).
    pub fn iter(&self) -> KeyIter<'_> {
        KeyIter {
            keys: self,
            next: 0,
            start: 0,
            run: 0,
            run_left: 0,
            arg: 0,
            tag: 0,
        }
    }

    /// Key `index`, if there is one (walks the keys before it).
    pub fn get(&self, index: usize) -> Option<Key<'_>> {
        self.iter().nth(index)
    }

    /// Every key as an owned [`KeySpec`] (copies every string).
    pub fn to_specs(&self) -> Vec<KeySpec> {
        self.iter().map(|k| k.to_spec()).collect()
    }
}

/// The keys of a [`Keys`] batch in order, walked once: each key's run, arg
/// and tags are found by moving forward (the host lists them in key order),
/// not by a search.
#[derive(Debug, Clone)]
pub struct KeyIter<'a> {
    keys: &'a Keys,
    next: usize,
    /// Where the next key starts in the text.
    start: usize,
    /// The run after the current one, and how many keys the current one has left.
    run: usize,
    run_left: u32,
    arg: usize,
    tag: usize,
}

impl<'a> Iterator for KeyIter<'a> {
    type Item = Key<'a>;

    fn next(&mut self) -> Option<Key<'a>> {
        let (keys, i) = (self.keys, self.next);
        let b = &keys.batch;
        let end = *b.key_ends.get(i)? as usize;
        let start = core::mem::replace(&mut self.start, end);
        // The host gives every key a run (the counts add up to the keys).
        while self.run_left == 0 {
            self.run_left = b.runs[self.run].count;
            self.run += 1;
        }
        self.run_left -= 1;
        let run = &b.runs[self.run - 1];
        let text = b.text.as_str();
        let mut arg = None;
        if let Some(a) = b.args.get(self.arg).filter(|a| a.key as usize == i) {
            arg = Some(slice(text, a));
            self.arg += 1;
        }
        let first_tag = self.tag;
        while b.tags.get(self.tag).is_some_and(|t| t.key as usize == i) {
            self.tag += 1;
        }
        self.next += 1;
        Some(Key {
            key: &text[start..end],
            priority: run.priority,
            ttl_seconds: run.ttl_seconds,
            arg,
            tags: &b.tags[first_tag..self.tag],
            text,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.keys.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for KeyIter<'_> {}

impl From<KeyBatch> for Keys {
    fn from(batch: KeyBatch) -> Self {
        Keys { batch }
    }
}

/// The bytes of `text` a key's string covers.
fn slice<'a>(text: &'a str, t: &KeyText) -> &'a str {
    &text[t.start as usize..(t.start + t.len) as usize]
}

impl<'a> Key<'a> {
    /// The key's tags.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let text = self.text;
        self.tags.iter().map(move |t| slice(text, t))
    }

    /// The key as an owned [`KeySpec`] (copies its strings).
    pub fn to_spec(&self) -> KeySpec {
        KeySpec {
            key: self.key.to_string(),
            priority: self.priority,
            ttl_seconds: self.ttl_seconds,
            tags: self.tags().map(str::to_string).collect(),
            arg: self.arg.map(str::to_string),
        }
    }
}

/// The outcomes of one `produce` call, in key order, with every value written
/// into one buffer: push exactly one per key (the host fails a batch whose
/// count differs).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Values {
    bytes: Vec<u8>,
    lens: Vec<u32>,
    errors: Vec<KeyError>,
    ttls: Vec<KeyTtl>,
}

impl Values {
    /// Room for `keys` outcomes.
    pub fn with_capacity(keys: usize) -> Self {
        Values {
            lens: Vec::with_capacity(keys),
            ..Values::default()
        }
    }

    /// How many outcomes were pushed.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether none was pushed.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// The next key's outcome, from an [`Entry`] (its bytes are copied).
    pub fn push(&mut self, result: Result<Entry, WarmError>) {
        match result {
            Ok(entry) => self.write(entry.ttl_seconds, |buf| {
                buf.extend_from_slice(&entry.value);
                Ok(())
            }),
            Err(e) => self.error(e),
        }
    }

    /// The next key's value, written by `write` at the end of the buffer
    /// (which holds the values before it: append only), with `ttl_seconds`
    /// overriding the key spec's. When `write` returns an error, what it
    /// wrote is dropped and the key gets the error. A value over 4 GiB fails.
    ///
    /// ```
    /// use preheat_guest::{Values, WarmError};
    ///
    /// let mut out = Values::default();
    /// out.write(None, |buf| Ok(buf.extend_from_slice(b"hello")));
    /// out.write(Some(60), |buf| {
    ///     buf.extend_from_slice(b"half");
    ///     Err(WarmError::retry("source busy"))
    /// });
    /// let entries = out.into_entries();
    /// assert_eq!(entries[0].as_ref().unwrap().value, b"hello");
    /// assert_eq!(entries[1], Err(WarmError::retry("source busy")));
    /// ```
    pub fn write(&mut self, ttl_seconds: Option<u32>, write: impl FnOnce(&mut Vec<u8>) -> Result<(), WarmError>) {
        let start = self.bytes.len();
        let written = write(&mut self.bytes).and_then(|()| {
            let len = self.bytes.len() - start;
            u32::try_from(len).map_err(|_| WarmError::fail(format!("a value of {len} bytes is over 4 GiB")))
        });
        match written {
            Ok(len) => {
                if let Some(ttl_seconds) = ttl_seconds {
                    self.ttls.push(KeyTtl {
                        key: self.lens.len() as u32,
                        ttl_seconds,
                    });
                }
                self.lens.push(len);
            }
            Err(e) => {
                self.bytes.truncate(start);
                self.error(e);
            }
        }
    }

    /// The next key's value as compact JSON, with the key spec's ttl; a
    /// serialization failure fails the key, as [`Entry::json`] does.
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.write(None, |buf| {
            serde_json::to_writer(buf, value)
                .map_err(|e| WarmError::fail(format!("cannot serialize value as JSON: {e}")))
        })
    }

    /// The next key's outcome is an error: skip, retry or fail it.
    pub fn error(&mut self, error: WarmError) {
        self.errors.push(KeyError {
            key: self.lens.len() as u32,
            error,
        });
        self.lens.push(0);
    }

    /// The outcomes as owned [`Entry`]s, for tests on the native target.
    pub fn into_entries(self) -> Vec<Result<Entry, WarmError>> {
        let mut errors = self.errors.into_iter().peekable();
        let mut ttls = self.ttls.into_iter().peekable();
        let mut rest = self.bytes.as_slice();
        (0..self.lens.len() as u32)
            .zip(&self.lens)
            .map(|(key, &len)| match errors.next_if(|e| e.key == key) {
                Some(e) => Err(e.error),
                None => {
                    let (value, after) = rest.split_at(len as usize);
                    rest = after;
                    Ok(Entry {
                        value: value.to_vec(),
                        ttl_seconds: ttls.next_if(|t| t.key == key).map(|t| t.ttl_seconds),
                    })
                }
            })
            .collect()
    }

    /// What the host takes back.
    pub(crate) fn into_produced(self) -> Produced {
        Produced {
            values: self.bytes,
            lens: self.lens,
            errors: self.errors,
            ttls: self.ttls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_lend_what_the_specs_hold_and_give_it_back_owned() {
        let specs = [
            KeySpec::new("k.1")
                .priority(Priority::High)
                .ttl(5)
                .tags(["a", "bé"])
                .arg("1"),
            KeySpec::new("k.é").priority(Priority::Low),
            KeySpec::new("").tag("c").arg(""),
        ];
        let keys = Keys::new(&specs);
        assert_eq!((keys.len(), keys.is_empty()), (3, false));
        let first = keys.get(0).unwrap();
        assert_eq!((first.key, first.arg, first.ttl_seconds), ("k.1", Some("1"), Some(5)));
        assert_eq!(first.tags().collect::<Vec<_>>(), ["a", "bé"]);
        assert_eq!(keys.get(1).unwrap().tags().len(), 0);
        assert_eq!(
            (keys.get(1).unwrap().priority, keys.get(1).unwrap().arg),
            (Priority::Low, None)
        );
        assert_eq!(keys.get(2).unwrap().tags().collect::<Vec<_>>(), ["c"]);
        assert!(keys.get(3).is_none());
        assert_eq!(keys.to_specs(), specs);
        // Walking and looking up give the same keys.
        let walked: Vec<Key> = keys.iter().collect();
        let looked_up: Vec<Key> = (0..keys.len()).map(|i| keys.get(i).unwrap()).collect();
        assert_eq!(walked, looked_up);
        assert_eq!(keys.iter().len(), 3);
        assert!(Keys::new(&[]).is_empty());
    }

    #[test]
    fn values_pack_in_order_and_a_failed_write_leaves_no_bytes() {
        let mut out = Values::with_capacity(5);
        out.push(Ok(Entry::text("xy")));
        out.error(WarmError::skip("s"));
        out.write(Some(9), |_| Ok(()));
        out.write(None, |buf| {
            buf.extend_from_slice(b"dropped");
            Err(WarmError::fail("no"))
        });
        out.json(&[1, 2]);
        assert_eq!(out.len(), 5);
        let produced = out.clone().into_produced();
        assert_eq!(produced.values, b"xy[1,2]");
        assert_eq!(produced.lens, [2, 0, 0, 0, 5]);
        let errors: Vec<u32> = produced.errors.iter().map(|e| e.key).collect();
        assert_eq!(errors, [1, 3]);
        assert_eq!(produced.ttls, [KeyTtl { key: 2, ttl_seconds: 9 }]);
        let entries = out.into_entries();
        assert_eq!(entries[3], Err(WarmError::fail("no")));
        assert_eq!(entries[4].as_ref().unwrap().value, b"[1,2]");
    }
}
