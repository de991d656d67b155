//! Key → plugin routing: a hot key seen in traffic is warmed by the plugin
//! whose `key_patterns` (default: each key prefix followed by `*`) match it.

use crate::config::Config;
use crate::config::KeyGlob;

/// The plugins' key patterns, in config order (the first match wins).
#[derive(Debug, Clone, Default)]
pub struct KeyRouter {
    routes: Vec<(String, Vec<KeyGlob>)>,
}

/// Escapes glob metacharacters so a key prefix matches literally.
fn literal(prefix: &str) -> String {
    prefix
        .chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

impl KeyRouter {
    /// Routes of the enabled plugins (patterns were validated with the config).
    pub fn new(config: &Config) -> KeyRouter {
        let routes = config
            .enabled_plugins()
            .map(|p| {
                let globs = if p.key_patterns.is_empty() {
                    p.key_prefixes
                        .iter()
                        .filter_map(|prefix| KeyGlob::new(&format!("{}*", literal(prefix))).ok())
                        .collect()
                } else {
                    p.key_patterns.clone()
                };
                (p.name.clone(), globs)
            })
            .collect();
        KeyRouter { routes }
    }

    /// The plugin that produces `key`, if any.
    pub fn route(&self, key: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(_, globs)| globs.iter().any(|g| g.is_match(key)))
            .map(|(name, _)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn keys_go_to_the_first_plugin_whose_patterns_match() {
        let config = Config::parse(
            r#"
[[plugins]]
name = "catalog"
path = "c.wasm"
key_prefixes = ["category/", "homepage_featured"]
[[plugins]]
name = "users"
path = "u.wasm"
key_prefixes = ["user.profile."]
key_patterns = ["user.profile.[0-9]*"]
[[plugins]]
name = "weird"
path = "w.wasm"
key_prefixes = ["a*b"]
"#,
            Path::new("x.toml"),
        )
        .unwrap();
        let router = KeyRouter::new(&config);
        assert_eq!(router.route("category/shoes"), Some("catalog"));
        assert_eq!(router.route("homepage_featured"), Some("catalog"));
        assert_eq!(router.route("user.profile.42"), Some("users"));
        assert_eq!(router.route("user.profile.x"), None, "outside the declared pattern");
        assert_eq!(router.route("a*b1"), Some("weird"));
        assert_eq!(router.route("axb1"), None, "prefixes match literally");
        assert_eq!(router.route("nobody/1"), None);
    }
}
