//! Key → plugin routing: a hot key seen in traffic is warmed by the plugin
//! whose `key_patterns` match it, or without patterns, one of whose
//! `key_prefixes` it starts with.

use crate::config::Config;
use crate::config::KeyGlob;

/// The plugins' routes, in config order (the first match wins).
#[derive(Debug, Clone, Default)]
pub struct KeyRouter {
    routes: Vec<(String, Route)>,
}

/// What keys one plugin produces.
#[derive(Debug, Clone)]
enum Route {
    /// Its `key_patterns`.
    Patterns(Vec<KeyGlob>),
    /// Without patterns, any key starting with one of its `key_prefixes`
    /// (matched as text, however long, whatever characters it holds).
    Prefixes(Vec<String>),
}

impl Route {
    fn matches(&self, key: &str) -> bool {
        match self {
            Route::Patterns(globs) => globs.iter().any(|g| g.is_match(key)),
            Route::Prefixes(prefixes) => prefixes.iter().any(|p| key.starts_with(p.as_str())),
        }
    }
}

impl KeyRouter {
    /// Routes of the enabled plugins (patterns were validated with the config).
    pub fn new(config: &Config) -> KeyRouter {
        let routes = config
            .enabled_plugins()
            .map(|p| {
                let route = if p.key_patterns.is_empty() {
                    Route::Prefixes(p.key_prefixes.clone())
                } else {
                    Route::Patterns(p.key_patterns.clone())
                };
                (p.name.clone(), route)
            })
            .collect();
        KeyRouter { routes }
    }

    /// The plugin that produces `key`, if any.
    pub fn route(&self, key: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(_, route)| route.matches(key))
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

    #[test]
    fn a_prefix_of_any_length_and_glob_characters_routes_its_keys() {
        // Over the 1 KiB and 64-operator bounds of a glob: it used to be dropped silently.
        let long = format!("{}/", "[*]".repeat(700));
        let config = Config::parse(
            &format!("[[plugins]]\nname = \"long\"\npath = \"l.wasm\"\nkey_prefixes = [{long:?}]\n"),
            Path::new("x.toml"),
        )
        .unwrap();
        let router = KeyRouter::new(&config);
        assert_eq!(router.route(&format!("{long}42")), Some("long"));
        assert_eq!(router.route("[*]/42"), None);
    }
}
