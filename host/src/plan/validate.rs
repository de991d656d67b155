//! Key validation: nothing is written under a key that fails these rules.

use crate::config::PluginConfig;
use regex::Regex;

/// The rules a plugin's keys must follow, from its config.
#[derive(Debug, Clone)]
pub struct KeyRules {
    prefixes: Vec<String>,
    max_bytes: usize,
    regex: Option<Regex>,
}

impl KeyRules {
    /// The rules of one plugin.
    pub fn for_plugin(config: &PluginConfig) -> KeyRules {
        KeyRules {
            prefixes: config.key_prefixes.clone(),
            max_bytes: config.max_key_bytes,
            regex: config.key_regex.as_ref().map(|r| r.0.clone()),
        }
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

    fn rules() -> KeyRules {
        KeyRules {
            prefixes: vec!["user.".into(), "products.".into()],
            max_bytes: 20,
            regex: Some(Regex::new(r"^[a-z.0-9]+$").unwrap()),
        }
    }

    #[test]
    fn accepts_keys_within_the_rules() {
        assert!(rules().check("user.profile.42").is_ok());
        assert!(rules().check("products.all").is_ok());
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
}
