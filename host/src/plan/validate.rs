//! Key validation: nothing is written under a key that fails these rules, and
//! no key spec larger than its caps is held by the host.

use crate::config::PluginConfig;
use crate::report::FORMAT_CHARACTER;
use crate::runtime::KeySpec;
use regex::Regex;

/// Longest tag accepted, in bytes.
pub const MAX_TAG_BYTES: usize = 128;

/// The rules a plugin's key specs must follow, from its config.
#[derive(Debug, Clone)]
pub struct KeyRules {
    prefixes: Vec<String>,
    max_bytes: usize,
    regex: Option<Regex>,
    max_arg_bytes: usize,
    max_tags: usize,
    allow_format_characters: bool,
}

impl KeyRules {
    /// The rules of one plugin.
    pub fn for_plugin(config: &PluginConfig) -> KeyRules {
        KeyRules {
            prefixes: config.key_prefixes.clone(),
            max_bytes: config.max_key_bytes,
            regex: config.key_regex.as_ref().map(|r| r.0.clone()),
            max_arg_bytes: config.max_arg_bytes.0 as usize,
            max_tags: config.max_tags,
            allow_format_characters: config.allow_format_characters,
        }
    }

    /// `Ok` when the spec may be queued (key rules, then the caps on `arg` and `tags`), otherwise the reason.
    pub fn check_spec(&self, spec: &KeySpec) -> Result<(), String> {
        self.check(&spec.key)?;
        if let Some(arg) = spec.arg.as_deref().filter(|a| a.len() > self.max_arg_bytes) {
            return Err(format!(
                "arg is {} bytes, over max_arg_bytes = {}; pass an id in `arg` and look the rest up in produce",
                arg.len(),
                self.max_arg_bytes
            ));
        }
        if spec.tags.len() > self.max_tags {
            return Err(format!("{} tags, over max_tags = {}", spec.tags.len(), self.max_tags));
        }
        if let Some(tag) = spec.tags.iter().find(|t| t.len() > MAX_TAG_BYTES) {
            return Err(format!(
                "a tag is {} bytes, over the {MAX_TAG_BYTES}-byte limit per tag",
                tag.len()
            ));
        }
        Ok(())
    }

    /// `Ok` when the key may be written, otherwise the reason.
    pub fn check(&self, key: &str) -> Result<(), String> {
        if key.is_empty() {
            return Err("empty key".into());
        }
        if key.len() > self.max_bytes {
            return Err(format!(
                "key is {} bytes, over max_key_bytes = {}",
                key.len(),
                self.max_bytes
            ));
        }
        if let Some((i, c)) = key.char_indices().find(|(_, c)| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "key contains whitespace or a control character ({c:?} at byte {i})"
            ));
        }
        // Every format character is outside ASCII: an ASCII key (the usual
        // one) skips the search, which costs a regex pool round trip per key.
        if !self.allow_format_characters && !key.is_ascii() {
            if let Some(m) = FORMAT_CHARACTER.find(key) {
                let c = m.as_str().chars().next().expect("a match is one character");
                return Err(format!(
                    "key contains an invisible Unicode format character (U+{:04X} at byte {}); set allow_format_characters = true for this plugin if that is intended",
                    c as u32,
                    m.start()
                ));
            }
        }
        if !self.prefixes.iter().any(|p| key.starts_with(p.as_str())) {
            return Err(format!("key is outside the plugin's key_prefixes {:?}", self.prefixes));
        }
        if let Some(re) = &self.regex {
            if !re.is_match(key) {
                return Err(format!("key does not match key_regex {:?}", re.as_str()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Priority;

    fn rules() -> KeyRules {
        KeyRules {
            prefixes: vec!["user.".into(), "products.".into()],
            max_bytes: 20,
            regex: Some(Regex::new(r"^[a-z.0-9]+$").unwrap()),
            max_arg_bytes: 8,
            max_tags: 2,
            allow_format_characters: false,
        }
    }

    fn spec(arg: Option<&str>, tags: &[&str]) -> KeySpec {
        KeySpec {
            key: "user.1".into(),
            priority: Priority::Normal,
            ttl_seconds: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            arg: arg.map(str::to_string),
        }
    }

    #[test]
    fn accepts_keys_within_the_rules() {
        assert!(rules().check("user.profile.42").is_ok());
        assert!(rules().check("products.all").is_ok());
        assert!(rules().check_spec(&spec(Some("12345678"), &["a", "b"])).is_ok());
    }

    #[test]
    fn rejects_each_kind_of_bad_key_with_a_reason() {
        let r = rules();
        assert_eq!(r.check("").unwrap_err(), "empty key");
        assert!(r
            .check("user.a very long key here")
            .unwrap_err()
            .contains("max_key_bytes = 20"));
        assert!(r.check("user.has space").unwrap_err().contains("whitespace"));
        assert!(r.check("user.bell\u{7}").unwrap_err().contains("control"));
        assert!(r.check("orders.1").unwrap_err().contains("key_prefixes"));
        assert!(r.check("user.UPPER").unwrap_err().contains("key_regex"));
    }

    #[test]
    fn invisible_format_characters_are_refused_unless_allowed() {
        let mut r = rules();
        r.regex = None;
        for (key, code) in [
            ("user.\u{200B}1", "U+200B"),
            ("user.\u{202E}1", "U+202E"),
            ("\u{FEFF}user.1", "U+FEFF"),
            ("user.1\u{2066}", "U+2066"),
        ] {
            let err = r.check(key).unwrap_err();
            assert!(
                err.contains(code) && err.contains("allow_format_characters"),
                "{key:?}: {err}"
            );
        }
        r.allow_format_characters = true;
        assert!(r.check("user.\u{200B}1").is_ok());
        // Visible non-ASCII keys are fine either way.
        assert!(r.check("user.café").is_ok());
    }

    /// `check` searches only non-ASCII keys for format characters: that is
    /// right only while no ASCII character is one.
    #[test]
    fn no_ascii_character_is_a_format_character() {
        let ascii: String = (0u8..128).map(char::from).collect();
        assert_eq!(FORMAT_CHARACTER.find(&ascii), None);
        // The lowest one, U+00AD (soft hyphen), is found just past ASCII.
        assert_eq!(FORMAT_CHARACTER.find("a\u{AD}").map(|m| m.start()), Some(1));
    }

    #[test]
    fn args_and_tags_over_their_caps_are_refused_with_the_limit() {
        let r = rules();
        let err = r.check_spec(&spec(Some("123456789"), &[])).unwrap_err();
        assert!(err.contains("max_arg_bytes = 8"), "{err}");
        let err = r.check_spec(&spec(None, &["a", "b", "c"])).unwrap_err();
        assert!(err.contains("max_tags = 2"), "{err}");
        let long = "t".repeat(MAX_TAG_BYTES + 1);
        let err = r.check_spec(&spec(None, &[&long])).unwrap_err();
        assert!(err.contains("128-byte"), "{err}");
    }
}
