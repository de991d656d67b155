//! Key validation: `KeyRules::check_spec` (what a plugin enumerates) under
//! rules drawn like a plugin's config (prefixes, `max_key_bytes`, `key_regex`,
//! `max_arg_bytes`, `max_tags`, `allow_format_characters`).
//!
//! Properties: an accepted spec meets every rule: its key is non-empty, at
//! most `max_key_bytes`, free of whitespace and control characters, under a
//! granted prefix and matching the regex; its `arg` and tags are within their
//! caps; a spec whose key `check` refuses is refused.

#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use preheat::config::{ByteSize, KeyRegex, PluginConfig};
use preheat::plan::KeyRules;
use preheat::runtime::{KeySpec, Priority};

/// Longest `key_regex` drawn: compiling it is not what this target measures.
const MAX_REGEX_BYTES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let _ = check(&mut Unstructured::new(data));
});

fn check(u: &mut Unstructured<'_>) -> arbitrary::Result<()> {
    let prefixes: Vec<String> = u.arbitrary()?;
    let mut plugin = PluginConfig::for_path("fuzz", "fuzz.wasm".into(), prefixes);
    plugin.max_key_bytes = u.int_in_range(0..=2048)?;
    plugin.max_arg_bytes = ByteSize(u.int_in_range(0..=256)?);
    plugin.max_tags = u.int_in_range(0..=8)?;
    plugin.allow_format_characters = u.arbitrary()?;
    if u.arbitrary()? {
        let mut pattern: String = u.arbitrary()?;
        pattern.truncate(pattern.floor_char_boundary(MAX_REGEX_BYTES));
        plugin.key_regex = regex::Regex::new(&pattern).ok().map(KeyRegex);
    }
    let rules = KeyRules::for_plugin(&plugin);
    let spec = KeySpec {
        priority: *u.choose(&[Priority::Critical, Priority::High, Priority::Normal, Priority::Low])?,
        ttl_seconds: u.arbitrary()?,
        tags: u.arbitrary()?,
        arg: u.arbitrary()?,
        key: String::from_utf8_lossy(u.bytes(u.len())?).into_owned(),
    };
    let key_ok = rules.check(&spec.key).is_ok();
    let Ok(()) = rules.check_spec(&spec) else { return Ok(()) };
    assert!(key_ok, "check refused the key of a spec check_spec accepted: {spec:?}");
    let key = &spec.key;
    assert!(!key.is_empty() && key.len() <= plugin.max_key_bytes, "{key:?}");
    assert!(!key.chars().any(|c| c.is_whitespace() || c.is_control()), "{key:?}");
    assert!(
        plugin.key_prefixes.iter().any(|p| key.starts_with(p.as_str())),
        "{key:?}"
    );
    assert!(plugin.key_regex.as_ref().is_none_or(|r| r.0.is_match(key)), "{key:?}");
    assert!(spec
        .arg
        .as_ref()
        .is_none_or(|a| a.len() as u64 <= plugin.max_arg_bytes.0));
    assert!(spec.tags.len() <= plugin.max_tags);
    assert!(spec.tags.iter().all(|t| t.len() <= preheat::plan::MAX_TAG_BYTES));
    Ok(())
}
