//! Builders and helpers on the generated interface types.

use core::fmt;
use core::str::FromStr;

use serde::Serialize;

use crate::{KeySpec, Level, Priority, WarmError};

impl KeySpec {
    /// A key with [`Priority::Normal`], no ttl (the config default applies),
    /// no tags and no arg.
    ///
    /// ```
    /// use preheat_guest::{KeySpec, Priority};
    ///
    /// let spec = KeySpec::new("user.profile.1")
    ///     .priority(Priority::High)
    ///     .ttl(3600)
    ///     .tag("users")
    ///     .arg("1");
    /// assert_eq!(spec.key, "user.profile.1");
    /// assert_eq!(spec.ttl_seconds, Some(3600));
    /// assert_eq!(spec.tags, ["users"]);
    /// assert_eq!(spec.arg.as_deref(), Some("1"));
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        KeySpec {
            key: key.into(),
            priority: Priority::Normal,
            ttl_seconds: None,
            tags: Vec::new(),
            arg: None,
        }
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the time to live of the written value, in seconds.
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl_seconds = Some(seconds);
        self
    }

    /// Sets or clears the time to live (handy with an optional `ttl` setting).
    pub fn maybe_ttl(mut self, seconds: Option<u32>) -> Self {
        self.ttl_seconds = seconds;
        self
    }

    /// Adds one tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds several tags.
    pub fn tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Sets the opaque data handed back to [`Plugin::produce`](crate::Plugin::produce).
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.arg = Some(arg.into());
        self
    }
}

/// One page of [`Plugin::enumerate`](crate::Plugin::enumerate); build one
/// with [`Page::last`] or [`Page::more`]. The SDK packs its keys for the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The keys of this page, in the order they are listed.
    pub keys: Vec<KeySpec>,
    /// Handed back to the next `enumerate` call; none on the last page.
    pub cursor: Option<String>,
}

impl Page {
    /// The last page: the host stops calling `enumerate` after it.
    pub fn last(keys: Vec<KeySpec>) -> Self {
        Page { keys, cursor: None }
    }

    /// A page with more to come: the host calls `enumerate` again with `cursor`.
    pub fn more(keys: Vec<KeySpec>, cursor: impl Into<String>) -> Self {
        Page {
            keys,
            cursor: Some(cursor.into()),
        }
    }

    /// Whether this is the last page.
    pub fn is_last(&self) -> bool {
        self.cursor.is_none()
    }
}

/// A produced value; build one with [`Entry::bytes`], [`Entry::text`] or
/// [`Entry::json`]. The SDK packs the values of a batch for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value bytes, written as they are (JSON is the convention, not a rule).
    pub value: Vec<u8>,
    /// Overrides the key spec's ttl when present, in seconds.
    pub ttl_seconds: Option<u32>,
}

impl Entry {
    /// A value made of raw bytes, with the key spec's ttl.
    pub fn bytes(value: impl Into<Vec<u8>>) -> Self {
        Entry {
            value: value.into(),
            ttl_seconds: None,
        }
    }

    /// A value made of UTF-8 text, with the key spec's ttl.
    pub fn text(value: impl Into<String>) -> Self {
        Self::bytes(value.into().into_bytes())
    }

    /// A value serialized as compact JSON, with the key spec's ttl.
    ///
    /// A serialization failure becomes [`WarmError::Fail`].
    ///
    /// ```
    /// let entry = preheat_guest::Entry::json(&serde_json::json!({"id": 1})).unwrap();
    /// assert_eq!(entry.value, br#"{"id":1}"#);
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, WarmError> {
        serde_json::to_vec(value)
            .map(Self::bytes)
            .map_err(|e| WarmError::fail(format!("cannot serialize value as JSON: {e}")))
    }

    /// Overrides the key spec's time to live, in seconds.
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.ttl_seconds = Some(seconds);
        self
    }
}

impl WarmError {
    /// Nothing to warm for this key: counted as skipped, not as an error.
    pub fn skip(reason: impl Into<String>) -> Self {
        WarmError::Skip(reason.into())
    }

    /// A transient problem: the host retries the key with backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        WarmError::Retry(reason.into())
    }

    /// A permanent problem: the key is reported as failed.
    pub fn fail(reason: impl Into<String>) -> Self {
        WarmError::Fail(reason.into())
    }

    /// The reason given, whatever the kind.
    pub fn reason(&self) -> &str {
        match self {
            WarmError::Skip(r) | WarmError::Retry(r) | WarmError::Fail(r) => r,
        }
    }
}

/// Error returned when a string names no [`Priority`] or [`Level`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    name: String,
    expected: &'static str,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected one of {})",
            self.what, self.name, self.expected
        )
    }
}

impl std::error::Error for UnknownName {}

impl Priority {
    /// The name used in the interface and in configs: `critical`, `high`, `normal`, `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl FromStr for Priority {
    type Err = UnknownName;

    /// Parses `critical`, `high`, `normal` or `low` (ASCII case-insensitive),
    /// so a plugin can read a priority from a setting with
    /// [`Context::setting_or`](crate::Context::setting_or).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Priority::Critical, Priority::High, Priority::Normal, Priority::Low]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                what: "priority",
                name: s.to_string(),
                expected: "critical, high, normal, low",
            })
    }
}

impl Level {
    /// The name of the level: `trace`, `debug`, `info`, `warn`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl FromStr for Level {
    type Err = UnknownName;

    /// Parses `trace`, `debug`, `info`, `warn` or `error` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error]
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName {
                what: "log level",
                name: s.to_string(),
                expected: "trace, debug, info, warn, error",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_spec_defaults() {
        let k = KeySpec::new("a");
        assert_eq!(k.key, "a");
        assert_eq!(k.priority, Priority::Normal);
        assert_eq!(k.ttl_seconds, None);
        assert!(k.tags.is_empty());
        assert_eq!(k.arg, None);
    }

    #[test]
    fn key_spec_builder_sets_everything() {
        let k = KeySpec::new("user.profile.1")
            .priority(Priority::Critical)
            .ttl(60)
            .tag("users")
            .tags(["a", "b"])
            .arg("1");
        assert_eq!(k.priority, Priority::Critical);
        assert_eq!(k.ttl_seconds, Some(60));
        assert_eq!(k.tags, ["users", "a", "b"]);
        assert_eq!(k.arg.as_deref(), Some("1"));
        assert_eq!(k.maybe_ttl(None).ttl_seconds, None);
    }

    #[test]
    fn pages() {
        assert!(Page::last(vec![]).is_last());
        let p = Page::more(vec![KeySpec::new("k")], "10");
        assert!(!p.is_last());
        assert_eq!(p.cursor.as_deref(), Some("10"));
    }

    #[test]
    fn entries() {
        assert_eq!(Entry::bytes(vec![1, 2]).value, [1, 2]);
        assert_eq!(Entry::text("hi").value, b"hi");
        let e = Entry::json(&[1, 2, 3]).unwrap().ttl(5);
        assert_eq!(e.value, b"[1,2,3]");
        assert_eq!(e.ttl_seconds, Some(5));
    }

    #[test]
    fn json_failure_is_fail() {
        let mut bad = std::collections::HashMap::new();
        bad.insert(vec![1u8], 1u8); // non-string map keys cannot be JSON
        let err = Entry::json(&bad).unwrap_err();
        assert!(matches!(err, WarmError::Fail(_)), "{err:?}");
        assert!(err.reason().contains("JSON"));
    }

    #[test]
    fn warm_error_constructors() {
        assert_eq!(WarmError::skip("s"), WarmError::Skip("s".into()));
        assert_eq!(WarmError::retry("r"), WarmError::Retry("r".into()));
        assert_eq!(WarmError::fail("f").reason(), "f");
    }

    #[test]
    fn priority_and_level_parse() {
        assert_eq!("HIGH".parse::<Priority>(), Ok(Priority::High));
        assert_eq!("warn".parse::<Level>(), Ok(Level::Warn));
        let err = "urgent".parse::<Priority>().unwrap_err().to_string();
        assert!(err.contains("\"urgent\"") && err.contains("critical"), "{err}");
    }
}
