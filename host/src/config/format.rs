//! `format = { kind = … }`: how values and keys are laid out for the
//! application that reads them (`[backend] format`, overridable per plugin).

use super::{BackendConfig, ByteSize, Target};
use serde::Deserialize;

/// The value format of a target or a plugin.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum FormatConfig {
    /// Bytes exactly as the plugin produced them, under the plugin's key
    /// (a struct variant so that unknown fields are refused here too).
    Raw {},
    /// Rails `ActiveSupport::Cache::RedisCacheStore`.
    Rails(RailsFormat),
    /// Laravel `RedisStore` / `DatabaseStore`.
    Laravel(LaravelFormat),
    /// Django `django.core.cache.backends.redis.RedisCache`.
    Django(DjangoFormat),
}

impl FormatConfig {
    /// The kind as written in the config (`kind = "…"`).
    pub fn kind(&self) -> &'static str {
        match self {
            FormatConfig::Raw {} => "raw",
            FormatConfig::Rails(_) => "rails",
            FormatConfig::Laravel(_) => "laravel",
            FormatConfig::Django(_) => "django",
        }
    }
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig::Raw {}
    }
}

/// `{ kind = "rails", … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RailsFormat {
    /// The store's `namespace:` (keys become `namespace:key`); none by default.
    #[serde(default)]
    pub namespace: Option<String>,
    /// `config.active_support.cache_format_version` of the app: "6.1", "7.0" or "7.1".
    #[serde(default)]
    pub cache_format_version: RailsVersion,
    /// Deflate values at or over `compress_threshold`, as the store's `compress:` option (default true).
    #[serde(default = "yes")]
    pub compress: bool,
    /// The store's `compress_threshold:` (default 1 KiB, Rails' own).
    #[serde(default = "default_compress_threshold")]
    pub compress_threshold: ByteSize,
}

fn yes() -> bool {
    true
}
fn default_compress_threshold() -> ByteSize {
    ByteSize(1024)
}

/// Rails' `cache_format_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RailsVersion {
    /// `Marshal.dump(Entry)`: Rails 6.1 and apps that keep its format.
    #[serde(rename = "6.1")]
    V6_1,
    /// `"\x00"` + `Marshal.dump([value, expires_at])`: `load_defaults 7.0`.
    #[serde(rename = "7.0")]
    V7_0,
    /// The binary header + payload: `load_defaults 7.1` and later (Rails 7.1–8).
    #[default]
    #[serde(rename = "7.1")]
    V7_1,
}

impl RailsVersion {
    /// The version as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            RailsVersion::V6_1 => "6.1",
            RailsVersion::V7_0 => "7.0",
            RailsVersion::V7_1 => "7.1",
        }
    }
}

/// `{ kind = "laravel", … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaravelFormat {
    /// The app's Laravel major version: "8" to "13".
    pub version: LaravelVersion,
    /// `APP_NAME`, from which the default prefixes derive (default "laravel").
    #[serde(default)]
    pub app_name: Option<String>,
    /// `config('cache.prefix')`; default: what the version's skeleton derives from `app_name`.
    #[serde(default)]
    pub cache_prefix: Option<String>,
    /// `config('database.redis.options.prefix')` (Redis store only); default: the skeleton's.
    #[serde(default)]
    pub redis_prefix: Option<String>,
}

/// Laravel's major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum LaravelVersion {
    /// Laravel 8.
    #[serde(rename = "8")]
    V8,
    /// Laravel 9.
    #[serde(rename = "9")]
    V9,
    /// Laravel 10.
    #[serde(rename = "10")]
    V10,
    /// Laravel 11.
    #[serde(rename = "11")]
    V11,
    /// Laravel 12.
    #[serde(rename = "12")]
    V12,
    /// Laravel 13.
    #[serde(rename = "13")]
    V13,
}

/// `{ kind = "django", … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DjangoFormat {
    /// The cache's `KEY_PREFIX` (default "").
    #[serde(default)]
    pub key_prefix: String,
    /// The cache's `VERSION` (default 1).
    #[serde(default = "default_django_version")]
    pub version: i64,
}

fn default_django_version() -> i64 {
    1
}

/// Where a formatted value is stored: Laravel lays keys and values out differently per store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// A Redis server (and the in-process memory backend, which stands in for one).
    Redis,
    /// A SQLite cache table.
    Sqlite,
    /// A PostgreSQL cache table.
    Postgres,
    /// A memcached pool (Laravel's `MemcachedStore`, Rails' `MemCacheStore`).
    Memcached,
}

impl Store {
    /// The store of a backend config.
    pub fn of(backend: &BackendConfig) -> Store {
        match &backend.target {
            Target::Sql(sql) if sql.url.as_deref().is_some_and(|url| url.starts_with("postgres")) => Store::Postgres,
            Target::Sql(_) => Store::Sqlite,
            Target::Memcached(_) => Store::Memcached,
            Target::Redis(_) | Target::RedisCluster(_) | Target::Memory(_) => Store::Redis,
        }
    }
}

impl LaravelFormat {
    /// The prefix Laravel's `store` puts before every key (see
    /// `format/laravel.rs` for the layout): the explicit prefixes, else the
    /// skeleton's defaults derived from `app_name`; an error when a default
    /// must be derived from a name that is not ASCII.
    pub fn key_prefix(&self, store: Store) -> Result<String, String> {
        let v = self.version;
        let app = self.app_name.as_deref().unwrap_or("laravel");
        let slug = |sep: char| {
            slug(app, sep).ok_or_else(|| {
                format!(
                    "app_name = {app:?}: preheat derives Laravel's default prefixes only from ASCII names (Laravel transliterates others); set cache_prefix (and redis_prefix) explicitly"
                )
            })
        };
        let cache_prefix = match &self.cache_prefix {
            Some(p) => p.clone(),
            None => match v {
                LaravelVersion::V8 => format!("{}_cache", slug('_')?),
                LaravelVersion::V9 | LaravelVersion::V10 | LaravelVersion::V11 => format!("{}_cache_", slug('_')?),
                LaravelVersion::V12 | LaravelVersion::V13 => format!("{}-cache-", slug('-')?),
            },
        };
        let colon = v < LaravelVersion::V11 && !cache_prefix.is_empty();
        Ok(match store {
            Store::Redis => {
                let redis_prefix = match &self.redis_prefix {
                    Some(p) => p.clone(),
                    None if v >= LaravelVersion::V12 => format!("{}-database-", slug('-')?),
                    None => format!("{}_database_", slug('_')?),
                };
                format!("{redis_prefix}{cache_prefix}{}", if colon { ":" } else { "" })
            }
            // `MemcachedStore::setPrefix` appends the colon as RedisStore does.
            Store::Memcached => format!("{cache_prefix}{}", if colon { ":" } else { "" }),
            Store::Sqlite | Store::Postgres => cache_prefix,
        })
    }
}

/// `Str::slug($title, $separator)` for ASCII titles; `None` for others.
fn slug(title: &str, sep: char) -> Option<String> {
    if !title.is_ascii() {
        return None;
    }
    let flip = if sep == '-' { '_' } else { '-' };
    let title = title.replace(flip, &sep.to_string());
    let title = title.replace('@', &format!("{sep}at{sep}"));
    let kept: String = title
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c == sep || c.is_ascii_alphanumeric() || c.is_ascii_whitespace())
        .collect();
    let mut out = String::new();
    for c in kept.chars() {
        let c = if c == sep || c.is_ascii_whitespace() { sep } else { c };
        if !(c == sep && out.ends_with(sep)) {
            out.push(c);
        }
    }
    Some(out.trim_matches(sep).to_string())
}

#[cfg(test)]
mod tests {
    use super::slug;
    use crate::config::{Config, FormatConfig, LaravelVersion, RailsVersion};
    use std::path::Path;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(text, Path::new("/etc/preheat/preheat.toml"))
    }

    const PLUGIN: &str = "[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nkey_prefixes = [\"k.\"]\n";

    #[test]
    fn inline_and_table_forms_mean_the_same() {
        let inline = parse("[backend]\nkind = \"redis\"\nurl = \"redis://h/0\"\nformat = { kind = \"rails\", namespace = \"myapp\", cache_format_version = \"7.1\" }\n").unwrap();
        let table = parse("[backend]\nkind = \"redis\"\nurl = \"redis://h/0\"\n[backend.format]\nkind = \"rails\"\nnamespace = \"myapp\"\n").unwrap();
        assert_eq!(inline.backend.format, table.backend.format);
        let FormatConfig::Rails(r) = &inline.backend.format else {
            panic!()
        };
        assert_eq!(
            (r.namespace.as_deref(), r.cache_format_version, r.compress),
            (Some("myapp"), RailsVersion::V7_1, true)
        );
        assert_eq!(parse("").unwrap().backend.format, FormatConfig::Raw {});
    }

    #[test]
    fn the_issue_examples_parse() {
        let c = parse("[backend]\nformat = { kind = \"laravel\", version = \"11\", cache_prefix = \"laravel_cache_\", redis_prefix = \"laravel_database_\" }\n").unwrap();
        let FormatConfig::Laravel(l) = &c.backend.format else {
            panic!()
        };
        assert_eq!(
            (l.version, l.cache_prefix.as_deref()),
            (LaravelVersion::V11, Some("laravel_cache_"))
        );
        let c = parse("[backend]\nformat = { kind = \"django\", key_prefix = \"\", version = 1 }\n").unwrap();
        assert!(matches!(&c.backend.format, FormatConfig::Django(d) if d.version == 1));
    }

    #[test]
    fn plugins_override_the_target_format() {
        let c = parse(&format!(
            "[backend]\nformat = {{ kind = \"django\" }}\n{PLUGIN}format = {{ kind = \"raw\" }}\n{}",
            PLUGIN.replace("\"p\"", "\"q\"")
        ))
        .unwrap();
        assert_eq!(c.format_of(&c.plugins[0]), &FormatConfig::Raw {});
        assert!(matches!(c.format_of(&c.plugins[1]), FormatConfig::Django(_)));
    }

    #[test]
    fn unknown_kinds_versions_and_fields_are_rejected_with_line_and_column() {
        for (bad, needle) in [
            ("format = { kind = \"symfony\" }", "symfony"),
            ("format = { kind = \"rails\", cache_format_version = \"5.2\" }", "5.2"),
            ("format = { kind = \"laravel\", version = \"7\" }", "`7`"),
            ("format = { kind = \"laravel\" }", "version"),
            ("format = { kind = \"django\", prefix = \"x\" }", "prefix"),
            ("format = { kind = \"raw\", namespace = \"x\" }", "namespace"),
        ] {
            let err = parse(&format!("[backend]\nkind = \"redis\"\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("line 3") && err.contains("column"), "{bad}: {err}");
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn slug_matches_str_slug() {
        // Values printed by Laravel 8.83's Illuminate\Support\Str::slug.
        assert_eq!(slug("Laravel", '_').unwrap(), "laravel");
        assert_eq!(slug("My App!", '_').unwrap(), "my_app");
        assert_eq!(slug("My App!", '-').unwrap(), "my-app");
        assert_eq!(slug("my_app-x", '_').unwrap(), "my_app_x");
        assert_eq!(slug("my_app-x", '-').unwrap(), "my-app-x");
        assert_eq!(slug("A@B", '_').unwrap(), "a_at_b");
    }
}
