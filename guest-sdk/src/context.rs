//! [`Context`]: what the host tells the plugin about the current run.

use core::fmt::Display;
use core::str::FromStr;

use crate::{RunContext, Shard};

/// The current run, as the host describes it, with typed access to the
/// plugin's settings.
///
/// Settings come from the plugin's `[plugins.settings]` table in the host
/// configuration and arrive as strings; [`Context::setting_or`] and
/// [`Context::setting_parse`] parse them with [`FromStr`] and report bad
/// values with a message that names the setting and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    raw: RunContext,
}

impl Context {
    /// Builds a context by hand, for tests of a plugin's logic on the native
    /// target (the host builds the real one).
    ///
    /// ```
    /// let ctx = preheat_guest::Context::new("run-1", "proactive", [("page_size", "10")]);
    /// assert_eq!(ctx.setting("page_size"), Some("10"));
    /// ```
    pub fn new<K, V>(
        run_id: impl Into<String>,
        strategy: impl Into<String>,
        settings: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Context {
            raw: RunContext {
                run_id: run_id.into(),
                strategy: strategy.into(),
                settings: settings.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                shard: None,
            },
        }
    }

    /// The same context as shard `index` of `count`, for tests of a plugin
    /// that lists only its share.
    ///
    /// ```
    /// let ctx = preheat_guest::Context::new("run-1", "proactive", [("a", "1")]).with_shard(2, 4);
    /// assert_eq!(ctx.shard().map(|s| (s.index, s.count)), Some((2, 4)));
    /// ```
    pub fn with_shard(mut self, index: u32, count: u32) -> Self {
        self.raw.shard = Some(Shard { index, count });
        self
    }

    /// Which share of a run split across workers this is (`index` of
    /// `count`, 0-based). It is `Some` only when the plugin's config says
    /// `sharding = "plugin"`: list only the share then (`WHERE id % count =
    /// index`), since the host keeps every key listed. It is `None` when the
    /// run is not split, or when the host keeps each shard to its share
    /// (`sharding = "host"`, the default): list every key.
    pub fn shard(&self) -> Option<Shard> {
        self.raw.shard
    }

    /// The id of the current run, as shown in the host's reports.
    pub fn run_id(&self) -> &str {
        &self.raw.run_id
    }

    /// The warming strategy of the current run: `proactive`, `on-demand`,
    /// `reactive`, `predictive`, ...
    pub fn strategy(&self) -> &str {
        &self.raw.strategy
    }

    /// The raw value of setting `name`, or `None` when it is not set.
    ///
    /// When the host passes the same name twice, the last value wins.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.raw
            .settings
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Setting `name` parsed as a `T`, or `None` when it is not set.
    ///
    /// Surrounding whitespace is ignored. A value that does not parse gives
    /// an error naming the setting, the value and the reason.
    ///
    /// ```
    /// let ctx = preheat_guest::Context::new("r", "proactive", [("limit", "ten")]);
    /// assert_eq!(ctx.setting_parse::<u32>("other"), Ok(None));
    /// let err = ctx.setting_parse::<u32>("limit").unwrap_err();
    /// assert!(err.contains("\"limit\"") && err.contains("\"ten\""), "{err}");
    /// ```
    pub fn setting_parse<T>(&self, name: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.setting(name) {
            None => Ok(None),
            Some(raw) => raw.trim().parse::<T>().map(Some).map_err(|e| {
                format!(
                    "invalid value {raw:?} for setting {name:?}: {e} (expected {})",
                    short_type_name::<T>()
                )
            }),
        }
    }

    /// Setting `name` parsed as a `T`, or `default` when it is not set.
    ///
    /// ```
    /// let ctx = preheat_guest::Context::new("r", "proactive", [("page_size", " 250 ")]);
    /// assert_eq!(ctx.setting_or("page_size", 500u32), Ok(250));
    /// assert_eq!(ctx.setting_or("missing", 500u32), Ok(500));
    /// ```
    pub fn setting_or<T>(&self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.setting_parse(name)?.unwrap_or(default))
    }

    /// All settings, in the order the host passed them.
    pub fn settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.raw.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw run context as the host passed it.
    pub fn raw(&self) -> &RunContext {
        &self.raw
    }
}

impl From<RunContext> for Context {
    fn from(raw: RunContext) -> Self {
        Context { raw }
    }
}

/// `u32` rather than `core::primitive::u32`, `String` rather than `alloc::string::String`.
fn short_type_name<T>() -> &'static str {
    let full = core::any::type_name::<T>();
    match full.find('<') {
        // Keep generic arguments readable: only trim the outer path.
        Some(open) => {
            let head = &full[..open];
            let start = head.rfind("::").map_or(0, |i| i + 2);
            &full[start..]
        }
        None => full.rsplit("::").next().unwrap_or(full),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(settings: &[(&str, &str)]) -> Context {
        Context::new("run-7", "on-demand", settings.iter().copied())
    }

    #[test]
    fn exposes_run_id_and_strategy() {
        let c = ctx(&[]);
        assert_eq!(c.run_id(), "run-7");
        assert_eq!(c.strategy(), "on-demand");
    }

    #[test]
    fn missing_setting_is_none_and_default_applies() {
        let c = ctx(&[("a", "1")]);
        assert_eq!(c.setting("b"), None);
        assert_eq!(c.setting_or("b", 42u64), Ok(42));
        assert_eq!(c.setting_parse::<u64>("b"), Ok(None));
    }

    #[test]
    fn last_duplicate_wins() {
        let c = ctx(&[("a", "1"), ("a", "2")]);
        assert_eq!(c.setting("a"), Some("2"));
    }

    #[test]
    fn parses_trimmed_values() {
        let c = ctx(&[("n", " 12 "), ("on", "true"), ("name", "x")]);
        assert_eq!(c.setting_or("n", 0u32), Ok(12));
        assert_eq!(c.setting_or("on", false), Ok(true));
        assert_eq!(c.setting_or("name", String::new()), Ok("x".to_string()));
    }

    #[test]
    fn bad_value_error_names_setting_value_and_type() {
        let c = ctx(&[("page_size", "-3")]);
        let err = c.setting_or("page_size", 500u32).unwrap_err();
        assert!(err.contains("\"page_size\""), "{err}");
        assert!(err.contains("\"-3\""), "{err}");
        assert!(err.contains("u32"), "{err}");
    }

    #[test]
    fn settings_iterates_in_order() {
        let c = ctx(&[("a", "1"), ("b", "2")]);
        let all: Vec<_> = c.settings().collect();
        assert_eq!(all, vec![("a", "1"), ("b", "2")]);
    }

    #[test]
    fn short_type_names() {
        assert_eq!(short_type_name::<u32>(), "u32");
        assert_eq!(short_type_name::<String>(), "String");
    }
}
