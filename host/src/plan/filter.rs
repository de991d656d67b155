//! Which enumerated keys a run warms: a key glob ([`KeyGlob`]), tags and a
//! minimum priority (the filters of `POST /cache/warming/start` and `warm-pattern`).

use super::level;
use crate::config::KeyGlob;
use crate::runtime::{KeySpec, Priority};
use anyhow::{anyhow, Result};

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
