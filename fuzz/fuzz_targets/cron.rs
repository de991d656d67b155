//! Cron expressions and jitter: `CronSchedule::parse` (croner; `schedule` in
//! the config) and `Schedules::update` (`POST /cache/warming/schedule`: the
//! cron text, the humantime jitter, and the check that the schedule fires and
//! its jitter is below its period).
//!
//! Input: the cron expression, a NUL byte, then the jitter.
//!
//! Properties: a parsed expression's text parses again to the same schedule;
//! its next fire times strictly increase; a schedule update that is accepted
//! shows a cron meaning the one sent, a jitter equal to the one sent, and a
//! next fire time.

#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use preheat::config::CronSchedule;
use preheat::schedule::{ScheduleUpdate, Schedules};
use std::sync::OnceLock;

/// Fire times followed from a fixed start.
const FIRES: usize = 4;

fuzz_target!(|input: &str| {
    let (cron, jitter) = input.split_once('\0').unwrap_or((input, ""));
    if let Ok(schedule) = CronSchedule::parse(cron) {
        // `pattern()` is croner's text: `@hourly` comes back as `0 * * * *`.
        assert_same_schedule(schedule.pattern(), &schedule);
        let mut after: DateTime<Utc> = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap();
        for _ in 0..FIRES {
            let Ok(next) = schedule.0.find_next_occurrence(&after, false) else {
                break;
            };
            assert!(next > after, "{cron:?}: {next} is not after {after}");
            after = next;
        }
    }

    let update = ScheduleUpdate {
        plugin: "p".into(),
        cron: Some(Some(cron.to_string())),
        jitter: Some((!jitter.is_empty()).then(|| jitter.to_string())),
        enabled: Some(true),
        reset: false,
    };
    if let Ok(view) = preheat_fuzz::block_on(schedules().update(update)) {
        let shown = view.cron.as_deref().expect("the schedule has a cron expression");
        assert_same_schedule(shown, &CronSchedule::parse(cron).expect("an accepted cron parses"));
        let sent = humantime::parse_duration(jitter.trim()).ok().filter(|j| !j.is_zero());
        let shown_jitter = view
            .jitter
            .as_deref()
            .map(|j| humantime::parse_duration(j).expect("a shown jitter parses"));
        assert_eq!(shown_jitter, sent, "jitter {jitter:?} shown as {:?}", view.jitter);
        assert!(view.next_fire.is_some(), "an accepted schedule fires: {view:?}");
    }
});

/// `text` parses to the same schedule as `schedule`.
fn assert_same_schedule(text: &str, schedule: &CronSchedule) {
    let again = CronSchedule::parse(text).unwrap_or_else(|e| panic!("{text:?} no longer parses: {e}"));
    assert_eq!(format!("{:?}", again.0), format!("{:?}", schedule.0), "{text:?}");
}

/// The schedules of a config with one plugin `p`, without a job store.
fn schedules() -> &'static Schedules {
    static SCHEDULES: OnceLock<Schedules> = OnceLock::new();
    SCHEDULES.get_or_init(|| {
        let config = preheat::Config::parse(
            "[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nkey_prefixes = [\"p.\"]\n",
            std::path::Path::new(preheat_fuzz::CONFIG_PATH),
        )
        .expect("the fixed config parses");
        preheat_fuzz::block_on(Schedules::load(&config, None)).expect("no schedule to refuse")
    })
}
