//! Which enumerated keys a run warms: a key glob, tags and a minimum priority
//! (the filters of `POST /cache/warming/start` and `warm-pattern`).

use super::level;
use crate::runtime::{KeySpec, Priority};
use anyhow::{anyhow, Result};

/// A compiled key glob: `*` matches any run of characters (including `/` and `:`),
/// `?` one character, `[abc]` one of a set.
#[derive(Debug, Clone)]
pub struct KeyGlob {
    pattern: String,
    matcher: globset::GlobMatcher,
}

/// Longest key pattern accepted, in bytes (API patterns and `key_patterns` alike).
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Most glob operators (`*`, `?`, `[`, `{`, `,`) in one pattern: each one grows
/// the regex globset compiles it into (and globset panics on a huge one).
pub const MAX_PATTERN_OPERATORS: usize = 64;

/// How many glob operators `pattern` holds (see [`MAX_PATTERN_OPERATORS`]).
fn operators(pattern: &str) -> usize {
    pattern
        .chars()
        .filter(|c| matches!(c, '*' | '?' | '[' | '{' | ','))
        .count()
}

impl KeyGlob {
    /// Compiles a glob, saying what is wrong with a bad one. A pattern longer
    /// than [`MAX_PATTERN_BYTES`] or with more than [`MAX_PATTERN_OPERATORS`]
    /// operators is refused before globset sees it.
    pub fn new(pattern: &str) -> Result<KeyGlob> {
        if pattern.len() > MAX_PATTERN_BYTES {
            return Err(anyhow!(
                "key pattern is {} bytes long; the limit is {MAX_PATTERN_BYTES} bytes: match a shorter prefix, e.g. \"products/*\"",
                pattern.len()
            ));
        }
        let count = operators(pattern);
        if count > MAX_PATTERN_OPERATORS {
            return Err(anyhow!(
                "key pattern has {count} glob operators (*, ?, [, {{, ,); the limit is {MAX_PATTERN_OPERATORS}: use fewer wildcards and alternatives"
            ));
        }
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| {
                anyhow!(
                    "invalid key pattern {pattern:?}: {e} (use `*` for any characters, e.g. \"products/category/*\")"
                )
            })?;
        Ok(KeyGlob {
            pattern: pattern.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `key` matches.
    pub fn is_match(&self, key: &str) -> bool {
        self.matcher.is_match(key)
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

/// Parses a priority name (`critical`, `high`, `normal`, `low`).
pub fn parse_priority(name: &str) -> Result<Priority> {
    Ok(match name {
        "critical" => Priority::Critical,
        "high" => Priority::High,
        "normal" => Priority::Normal,
        "low" => Priority::Low,
        other => return Err(anyhow!("unknown priority {other:?}: use critical, high, normal or low")),
    })
}

/// Keeps the enumerated keys a run was asked for; the rest are left out of
/// the run entirely (not counted as enumerated).
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Keys must match this glob.
    pub pattern: Option<KeyGlob>,
    /// Keys must carry at least one of these tags (none = any key).
    pub tags: Vec<String>,
    /// Keys must be at least this urgent.
    pub min_priority: Option<Priority>,
}

impl KeyFilter {
    /// Whether the filter lets every key through.
    pub fn is_empty(&self) -> bool {
        self.pattern.is_none() && self.tags.is_empty() && self.min_priority.is_none()
    }

    /// Whether `spec` is wanted.
    pub fn accepts(&self, spec: &KeySpec) -> bool {
        self.pattern.as_ref().is_none_or(|g| g.is_match(&spec.key))
            && (self.tags.is_empty() || spec.tags.iter().any(|t| self.tags.contains(t)))
            && self.min_priority.is_none_or(|min| level(spec.priority) <= level(min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &str, priority: Priority, tags: &[&str]) -> KeySpec {
        KeySpec {
            key: key.into(),
            priority,
            ttl_seconds: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            arg: None,
        }
    }

    #[test]
    fn globs_cross_separators() {
        let g = KeyGlob::new("products/category/*").unwrap();
        assert!(g.is_match("products/category/shoes"));
        assert!(g.is_match("products/category/shoes/page/2"));
        assert!(!g.is_match("products/featured"));
        assert!(KeyGlob::new("user.profile.?").unwrap().is_match("user.profile.7"));
        assert!(KeyGlob::new("a[")
            .unwrap_err()
            .to_string()
            .contains("invalid key pattern"));
    }

    #[test]
    fn patterns_past_the_limits_are_refused_and_the_worst_within_them_compile() {
        let refused = |p: &str| KeyGlob::new(p).unwrap_err().to_string();
        assert!(refused(&"a".repeat(300 * 1024)).contains("limit is 1024 bytes"));
        assert!(refused(&"*".repeat(65)).contains("limit is 64"));
        // A hostile author's best within the bounds: every operator a negated
        // class, an alternation, or a wildcard, padded to 1 KiB.
        for unit in ["[^a]", "{a,b}", "*?", "[!\u{10FFFF}-\u{10FFFF}]"] {
            let mut pattern = String::new();
            while pattern.len() + unit.len() <= MAX_PATTERN_BYTES
                && operators(&pattern) + operators(unit) <= MAX_PATTERN_OPERATORS
            {
                pattern.push_str(unit);
            }
            pattern.push_str(&"x".repeat(MAX_PATTERN_BYTES - pattern.len()));
            let glob = KeyGlob::new(&pattern).unwrap_or_else(|e| panic!("{unit}: {e:#}"));
            assert!(!glob.is_match("short"));
        }
    }

    #[test]
    fn filters_combine_pattern_tags_and_priority() {
        let f = KeyFilter {
            pattern: Some(KeyGlob::new("cat:*").unwrap()),
            tags: vec!["home".into()],
            min_priority: Some(Priority::High),
        };
        assert!(f.accepts(&spec("cat:1", Priority::Critical, &["home", "x"])));
        assert!(f.accepts(&spec("cat:1", Priority::High, &["home"])));
        assert!(!f.accepts(&spec("cat:1", Priority::Normal, &["home"])));
        assert!(!f.accepts(&spec("cat:1", Priority::High, &["other"])));
        assert!(!f.accepts(&spec("dog:1", Priority::High, &["home"])));
        assert!(KeyFilter::default().accepts(&spec("anything", Priority::Low, &[])));
        assert_eq!(parse_priority("high").unwrap(), Priority::High);
        assert!(parse_priority("urgent").is_err());
    }
}
