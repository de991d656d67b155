//! Access events: the trace reader of `preheat simulate --trace` (CSV and JSON
//! lines, sniffed or by extension), the Redis Stream entry parser of
//! `[usage.stream]`, the JSON body of `POST /cache/warming/events`, and the
//! check every live event passes before it is tracked.
//!
//! Input: one mode byte, then the text. Mode `& 8`: the text is a posted JSON
//! body. Otherwise mode `& 3`: 0 sniffs the trace format, 1 reads CSV, 2 JSON
//! lines, 3 a stream entry (first line its id, then one `field value` per
//! line); mode `& 4` requires a sorted trace.
//!
//! Properties: an event read from a trace has a key and a finite latency >= 0
//! (and time order when required); a trace written back reads back identically
//! in both formats; a posted body's events have keys of 1 to
//! `MAX_EVENT_KEY_BYTES` bytes, the default time when none is given, and post
//! back as themselves; an event the live check accepts has a key of 1 to
//! `MAX_EVENT_KEY_BYTES` bytes, a time within the bounds and a bounded latency.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preheat::usage::{PostedEvents, MAX_EVENT_KEY_BYTES};
use preheat_usage::event::{TraceFormat, TraceReader, TraceWriter};
use preheat_usage::{AccessEvent, EventBounds};

const BOUNDS: EventBounds = EventBounds {
    max_key_bytes: MAX_EVENT_KEY_BYTES,
    now_ms: 1_700_000_000_000,
    max_future_ms: 300_000,
    max_age_ms: 86_400_000,
    max_latency_ms: 3_600_000.0,
};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, text)) = input.split_first() else {
        return;
    };
    if mode & 8 != 0 {
        return posted(text);
    }
    let format = match mode & 3 {
        0 => None,
        1 => Some(TraceFormat::Csv),
        2 => Some(TraceFormat::JsonLines),
        _ => return stream_entry(text),
    };
    let mut reader = TraceReader::new(text, format, "trace").expect("reading from memory cannot fail");
    if mode & 4 != 0 {
        reader = reader.require_sorted();
    }
    let mut last_ts = 0;
    for event in reader.flatten() {
        assert!(!event.key.is_empty(), "{event:?}");
        assert!(event.latency_ms.is_none_or(|l| l.is_finite() && l >= 0.0), "{event:?}");
        if mode & 4 != 0 {
            assert!(event.ts_ms >= last_ts, "out of order: {event:?} after {last_ts}");
            last_ts = event.ts_ms;
        }
        reads_back(&event);
        live_check(&event);
    }
});

/// A trace holding `event` reads back as `event`, in both formats (or the
/// writer refuses it).
fn reads_back(event: &AccessEvent) {
    for format in [TraceFormat::Csv, TraceFormat::JsonLines] {
        let mut writer = TraceWriter::new(Vec::new(), format).expect("writing to memory");
        if writer.write(event).is_err() {
            continue;
        }
        let bytes = writer.finish().expect("writing to memory");
        let back: Vec<_> = TraceReader::new(&bytes[..], Some(format), "written")
            .expect("reading from memory")
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| {
                panic!(
                    "{format:?}: {event:?} written as {:?} does not read back: {e:#}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        assert_eq!(
            back,
            std::slice::from_ref(event),
            "{format:?}: {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

/// What the live check accepts is within every bound it states.
fn live_check(event: &AccessEvent) {
    if event.check(&BOUNDS).is_err() {
        return;
    }
    assert!((1..=BOUNDS.max_key_bytes).contains(&event.key.len()), "{event:?}");
    assert!(event.ts_ms >= BOUNDS.now_ms - BOUNDS.max_age_ms && event.ts_ms <= BOUNDS.now_ms + BOUNDS.max_future_ms);
    assert!(event
        .latency_ms
        .is_none_or(|l| l.is_finite() && (0.0..=BOUNDS.max_latency_ms).contains(&l)));
}

/// A posted body: what it holds is within the bounds, and posting those
/// events again (every field written out) gives them back.
fn posted(text: &[u8]) {
    let Ok(body) = serde_json::from_slice::<PostedEvents>(text) else {
        return;
    };
    let Ok(events) = body.into_events(BOUNDS.now_ms) else {
        return;
    };
    let as_posted: serde_json::Value = serde_json::from_slice(text).expect("it parsed as events");
    let posted = as_posted
        .get("events")
        .unwrap_or(&as_posted)
        .as_array()
        .expect("a list of events");
    assert_eq!(posted.len(), events.len());
    for (event, as_posted) in events.iter().zip(posted) {
        assert!((1..=MAX_EVENT_KEY_BYTES).contains(&event.key.len()), "{event:?}");
        if as_posted.get("ts_ms").is_none_or(serde_json::Value::is_null) {
            assert_eq!(event.ts_ms, BOUNDS.now_ms, "no ts_ms is now: {event:?}");
        }
        live_check(event);
    }
    let again: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::json!({"key": e.key, "hit": e.hit, "ts_ms": e.ts_ms, "latency_ms": e.latency_ms}))
        .collect();
    let back = serde_json::from_value::<PostedEvents>(serde_json::Value::Array(again))
        .expect("posted events post again")
        .into_events(0)
        .expect("posted events are accepted again");
    assert_eq!(back, events);
}

/// A stream entry: its id on the first line, then `field value` lines.
fn stream_entry(text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let id = lines.next().unwrap_or_default();
    let fields: Vec<(&str, &str)> = lines.map(|l| l.split_once(' ').unwrap_or((l, ""))).collect();
    let field = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string());
    if let Ok(event) = preheat::usage::stream_event(id, field) {
        live_check(&event);
    }
}
