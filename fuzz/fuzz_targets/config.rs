//! The config file: `Config::parse` (TOML, the value types that parse
//! themselves, `[backend] format`, `[usage]`), env overrides, `validate`, and
//! the schedule check `serve` makes before it starts.
//!
//! Properties: a config that parses re-parses identically from the TOML the
//! `toml` crate writes back for it; a config that validates can be used: its
//! formats resolve, its key patterns compile, its usage tracker builds and
//! records an event.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preheat::format::{Format, Store};
use preheat::Config;
use std::path::Path;

fuzz_target!(|text: &str| {
    let path = Path::new(preheat_fuzz::CONFIG_PATH);
    let Ok(mut config) = Config::parse(text, path) else {
        return;
    };

    let table: toml::Table = toml::from_str(text).expect("a config that parses is a TOML table");
    if let Ok(written) = toml::to_string(&table) {
        let again = Config::parse(&written, path)
            .unwrap_or_else(|e| panic!("the re-written config no longer parses: {e:#}\n{written}"));
        assert_eq!(format!("{config:?}"), format!("{again:?}"), "re-written:\n{written}");
    }

    config.apply_env(|_| None).expect("no environment, nothing to refuse");
    if config.validate().is_err() {
        return;
    }
    let _ = preheat::schedule::Schedules::check(&config);
    let store = Store::of(&config.backend);
    for plugin in &config.plugins {
        Format::new(config.format_of(plugin), store).expect("a validated format resolves");
        for glob in &plugin.key_patterns {
            preheat::config::KeyGlob::new(glob.pattern()).expect("a parsed key pattern compiles again");
        }
    }
    let mut tracker = preheat_usage::UsageTracker::new(config.usage.tracker.clone())
        .expect("validated tracker settings build a tracker");
    // Counters are allocated at the first event: it must fit too.
    tracker.record(&preheat_usage::AccessEvent {
        ts_ms: 1_700_000_000_000,
        key: "products/1".into(),
        hit: false,
        latency_ms: Some(12.5),
    });
});
