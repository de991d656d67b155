//! Access events as an application posts them to `POST /cache/warming/events`:
//! a JSON array of `{key, hit, ts_ms, latency_ms}`, or `{"events": [...]}`.
//! Parsed here, not yet checked against the clock and the limits
//! ([`super::Usage::check`]).

use super::MAX_EVENT_KEY_BYTES;
use preheat_usage::AccessEvent;
use serde::Deserialize;
use utoipa::ToSchema;

/// One access event as posted: `ts_ms` defaults to now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostedEvent {
    /// The key asked for.
    #[schema(min_length = 1, max_length = 1024)]
    key: String,
    /// Whether it was a hit: true, false, 1 or 0.
    #[schema(schema_with = hit_schema)]
    hit: serde_json::Value,
    /// When, in ms since the epoch (default now): at most 5 minutes ahead of the server clock, not older than the longest usage window.
    ts_ms: Option<u64>,
    /// How long the application waited, in ms (finite, at most an hour).
    latency_ms: Option<f64>,
}

/// The schema of `hit`: a boolean, or 0 or 1.
fn hit_schema() -> utoipa::openapi::schema::OneOfBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([0, 1])),
        )
}

/// The body of `POST /cache/warming/events`: a JSON array of events, or `{"events": [...]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PostedEvents {
    /// The events.
    List(Vec<PostedEvent>),
    /// The events, wrapped.
    Wrapped {
        /// The events.
        events: Vec<PostedEvent>,
    },
}

impl Default for PostedEvents {
    fn default() -> Self {
        PostedEvents::List(Vec::new())
    }
}

impl PostedEvents {
    /// The events, `ts_ms` defaulting to `now_ms`; the first one with a `hit`
    /// other than true, false, 1 or 0, or a key that is empty or longer than
    /// [`MAX_EVENT_KEY_BYTES`], is an error naming it (`events[i]`).
    pub fn into_events(self, now_ms: u64) -> Result<Vec<AccessEvent>, String> {
        let (PostedEvents::List(events) | PostedEvents::Wrapped { events }) = self;
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let hit = match &e.hit {
                    serde_json::Value::Bool(b) => *b,
                    serde_json::Value::Number(n) if n.as_u64() == Some(1) => true,
                    serde_json::Value::Number(n) if n.as_u64() == Some(0) => false,
                    other => return Err(format!("events[{i}].hit must be true, false, 1 or 0, got {other}")),
                };
                if e.key.is_empty() || e.key.len() > MAX_EVENT_KEY_BYTES {
                    return Err(format!(
                        "events[{i}].key is {} bytes long; it must be 1 to {MAX_EVENT_KEY_BYTES} bytes",
                        e.key.len()
                    ));
                }
                Ok(AccessEvent {
                    ts_ms: e.ts_ms.unwrap_or(now_ms),
                    key: e.key,
                    hit,
                    latency_ms: e.latency_ms,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(json: &str) -> Result<Vec<AccessEvent>, String> {
        serde_json::from_str::<PostedEvents>(json)
            .map_err(|e| e.to_string())?
            .into_events(7)
    }

    #[test]
    fn both_shapes_read_and_time_defaults_to_now() {
        let list = events(r#"[{"key": "a", "hit": 1, "latency_ms": 2.5}, {"key": "b", "hit": false, "ts_ms": 3}]"#);
        let wrapped =
            events(r#"{"events": [{"key": "a", "hit": true, "latency_ms": 2.5}, {"key": "b", "hit": 0, "ts_ms": 3}]}"#);
        assert_eq!(list, wrapped);
        let list = list.unwrap();
        assert_eq!((list[0].ts_ms, list[0].hit, list[0].latency_ms), (7, true, Some(2.5)));
        assert_eq!((list[1].ts_ms, list[1].hit), (3, false));
    }

    #[test]
    fn a_bad_event_is_named() {
        assert_eq!(
            events(r#"[{"key": "a", "hit": 1}, {"key": "b", "hit": 2}]"#).unwrap_err(),
            "events[1].hit must be true, false, 1 or 0, got 2"
        );
        assert!(events(r#"[{"key": "", "hit": 1}]"#)
            .unwrap_err()
            .starts_with("events[0].key is 0 bytes"));
        let long = format!(r#"[{{"key": "{}", "hit": 1}}]"#, "k".repeat(MAX_EVENT_KEY_BYTES + 1));
        assert!(events(&long).unwrap_err().contains("it must be 1 to 1024 bytes"));
        assert!(events(r#"[{"key": "a", "hit": 1, "extra": 1}]"#).is_err());
    }
}
