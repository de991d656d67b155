//! Key globs: `KeyGlob::new` (the `pattern` of `warm-pattern` and `start`,
//! `key_patterns` of the config) and `is_match`.
//!
//! Input: the pattern, a NUL byte, then the key.
//!
//! Properties: compiling never panics, whatever the pattern (globset panics on
//! some huge ones: the bounds must refuse them first); a pattern as written is
//! kept; a pattern of only literals, `*` and `?` matches exactly what a
//! reference matcher says (`*` any run of characters, `/` and `:` included, `?`
//! one character); a literal pattern matches itself. Slow matching is caught by
//! libFuzzer's per-input `-timeout` (scripts/fuzz.sh).

#![no_main]

use libfuzzer_sys::fuzz_target;
use preheat::config::KeyGlob;

/// Largest pattern × key (in characters) the quadratic reference matcher is run on.
const MAX_REFERENCE_WORK: usize = 1 << 16;

fuzz_target!(|input: &str| {
    let (pattern, key) = input.split_once('\0').unwrap_or((input, ""));
    let Ok(glob) = KeyGlob::new(pattern) else { return };
    assert_eq!(glob.pattern(), pattern);
    let matched = glob.is_match(key);

    let simple = !pattern.contains(['[', ']', '{', '}', '\\']) && !pattern.contains("**");
    let pattern: Vec<char> = pattern.chars().collect();
    let key: Vec<char> = key.chars().collect();
    if simple && pattern.len() * key.len() <= MAX_REFERENCE_WORK {
        assert_eq!(matched, reference(&pattern, &key), "pattern {pattern:?} key {key:?}");
    }
    if simple && !pattern.contains(&'*') && !pattern.contains(&'?') {
        let literal: String = pattern.iter().collect();
        assert!(
            glob.is_match(&literal),
            "a literal pattern must match itself: {literal:?}"
        );
    }
});

/// Whether `key` matches a pattern of literals, `*` and `?` (dynamic programming over prefixes).
fn reference(pattern: &[char], key: &[char]) -> bool {
    // matches[j]: the pattern read so far matches key[..j].
    let mut matches = vec![false; key.len() + 1];
    matches[0] = true;
    for &p in pattern {
        let mut next = vec![false; key.len() + 1];
        for j in 0..=key.len() {
            next[j] = match p {
                '*' => matches[j] || (j > 0 && next[j - 1]),
                '?' => j > 0 && matches[j - 1],
                c => j > 0 && matches[j - 1] && key[j - 1] == c,
            };
        }
        matches = next;
    }
    matches[key.len()]
}
