//! Key globs: `key_patterns` in the config (parsed with the file, so a bad
//! one is reported at its line and column) and the `pattern` of the API's
//! runs. Bounded before globset compiles them.

use anyhow::{anyhow, Result};
use serde::{de, Deserialize, Deserializer};

/// A compiled key glob: `*` matches any run of characters (including `/` and `:`),
/// `?` one character, `[abc]` one of a set.
#[derive(Debug, Clone)]
pub struct KeyGlob {
    pattern: String,
    matcher: regex::bytes::Regex,
}

/// One UTF-8 encoded character of a key (a `&str`): a leading byte and its continuation
/// bytes. globset reads keys as bytes and writes `?` as `.`, one byte, so that `?` did
/// not match a character of two or more bytes ("?" against "â").
const ONE_CHARACTER: &str = r"(?:[\x00-\x7F\xC0-\xFF][\x80-\xBF]*)";

/// globset's regex for a glob (`(?-u)`, bytes) with each `?` (a `.` not followed by `*`:
/// globset escapes a literal `.` and writes `*` as `.*`) matching one character.
fn with_character_wildcards(regex: &str) -> String {
    let mut out = String::with_capacity(regex.len());
    let mut chars = regex.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                out.extend(chars.next());
            }
            '.' if chars.peek() != Some(&'*') => out.push_str(ONE_CHARACTER),
            _ => out.push(c),
        }
    }
    out
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
    /// than `MAX_PATTERN_BYTES` or with more than `MAX_PATTERN_OPERATORS`
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
        let matcher = regex::bytes::RegexBuilder::new(&with_character_wildcards(glob.regex()))
            .dot_matches_new_line(true)
            .build()
            .map_err(|e| anyhow!("key pattern {pattern:?} does not compile: {e}"))?;
        Ok(KeyGlob {
            pattern: pattern.to_string(),
            matcher,
        })
    }

    /// Whether `key` matches.
    pub fn is_match(&self, key: &str) -> bool {
        self.matcher.is_match(key.as_bytes())
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl<'de> Deserialize<'de> for KeyGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyGlob::new(&s).map_err(|e| de::Error::custom(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_cross_separators() {
        let g = KeyGlob::new("products/category/*").unwrap();
        assert!(g.is_match("products/category/shoes"));
        assert!(g.is_match("products/category/shoes/page/2"));
        assert!(!g.is_match("products/featured"));
        assert!(KeyGlob::new("user.profile.?").unwrap().is_match("user.profile.7"));
        // `?` is one character of any length in bytes, never one byte of it; a literal
        // `.` is not a wildcard.
        let one = KeyGlob::new("?").unwrap();
        assert!(one.is_match("â") && one.is_match("😀") && one.is_match("a"));
        assert!(!one.is_match("ab") && !one.is_match("âb") && !one.is_match(""));
        let glob = KeyGlob::new("p.?*x").unwrap();
        assert!(glob.is_match("p.éx") && glob.is_match("p.é😀x") && !glob.is_match("pééx"));
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
}
