use super::*;
use crate::forecast::{FLAT_PROFILE_PRIOR_DAYS, PROFILE_PRIOR_DAYS};

/// 2024-01-01T00:00:00Z, a Monday.
const T0: u64 = 1_704_067_200_000;

fn tracker() -> UsageTracker {
    UsageTracker::new(TrackerConfig::default()).unwrap()
}

#[test]
fn hot_keys_come_with_counts_hit_rates_and_priorities() {
    let mut t = tracker();
    // key i gets 200 - i accesses within a minute; key:0 and key:20 miss half the time.
    for i in 0..150u64 {
        for j in 0..(200 - i) {
            let miss = (i == 0 || i == 20) && j % 2 == 0;
            t.observe(T0 + j * 100, &format!("key:{i}"), !miss);
        }
    }
    let hot = t.hot(MINUTE_MS, 120).unwrap();
    assert_eq!(hot.entries.len(), 120);
    assert_eq!(hot.accesses, (51..=200).sum::<u64>());
    let first = &hot.entries[0];
    assert_eq!(
        (first.key.as_str(), first.rank, first.accesses, first.error),
        ("key:0", 1, 200, 0)
    );
    assert_eq!((first.misses, first.hit_rate), (100, Some(0.5)));
    assert_eq!(first.priority, Priority::Critical);
    assert_eq!(hot.entries[1].priority, Priority::High);
    assert_eq!(hot.entries[20].priority, Priority::High);
    assert_eq!(hot.entries[21].priority, Priority::Normal);
    assert_eq!(hot.entries[119].priority, Priority::Low);
    assert!(t
        .hot(2 * MINUTE_MS, 1)
        .unwrap_err()
        .to_string()
        .starts_with("no window of 120000 ms"));
}

#[test]
fn windows_slide_and_forget() {
    let mut t = tracker();
    for i in 0..50 {
        t.observe(T0 + i, "old", true);
    }
    t.observe(T0 + 30 * MINUTE_MS, "new", true);
    assert_eq!(t.hot(MINUTE_MS, 5).unwrap().entries.len(), 1);
    let hour = t.hot(HOUR_MS, 5).unwrap();
    assert_eq!(hour.entries[0].key, "old");
    assert_eq!(hour.accesses, 51);
    t.advance(T0 + 2 * HOUR_MS);
    assert_eq!(t.hot(HOUR_MS, 5).unwrap().accesses, 0);
    assert_eq!(t.hot(DAY_MS, 5).unwrap().accesses, 51);
    // Time does not go backwards: a late event counts now.
    t.observe(T0, "late", true);
    assert_eq!(t.hot(MINUTE_MS, 5).unwrap().entries[0].key, "late");
}

#[test]
fn estimates_bound_keys_inside_and_outside_the_summary() {
    let config = TrackerConfig {
        summary_capacity: 10,
        keys: TrackingRule {
            top: 5,
            max: 50,
            evict_after_steps: 2,
        },
        prefixes: TrackingRule {
            top: 5,
            max: 50,
            evict_after_steps: 2,
        },
        ..TrackerConfig::default()
    };
    let mut t = UsageTracker::new(config).unwrap();
    for i in 0..1000u64 {
        t.observe(T0 + i, if i % 2 == 0 { "heavy" } else { "light" }, true);
        t.observe(T0 + i, &format!("once:{i}"), true);
    }
    let heavy = t.estimate(HOUR_MS, "heavy").unwrap();
    assert!(heavy.low <= 500 && 500 <= heavy.high);
    let once = t.estimate(HOUR_MS, "once:3").unwrap();
    assert!(once.low == 0 && once.high >= 1 && once.high <= t.hot(HOUR_MS, 10).unwrap().accesses / 10);
    assert_eq!(t.estimate(HOUR_MS, "never").unwrap().low, 0);
}

#[test]
fn trends_report_rising_and_falling_keys_above_the_noise_floor() {
    let mut t = tracker();
    // Previous hour: "fading" busy, "steady" steady, "rare" rare. Current hour: "rising" appears, "fading" drops.
    for minute in 0..120u64 {
        let ts = T0 + minute * MINUTE_MS;
        let current = minute >= 60;
        for _ in 0..(if current { 1 } else { 5 }) {
            t.observe(ts, "fading", true);
        }
        t.observe(ts, "steady", true);
        if current {
            for _ in 0..3 {
                t.observe(ts, "rising", true);
            }
        }
        if minute % 20 == 0 {
            t.observe(ts, if current { "rare" } else { "rare-before" }, true);
        }
    }
    t.advance(T0 + 120 * MINUTE_MS - 1);
    let trends = t.trends(HOUR_MS, 10).unwrap();
    let names = |list: &[Trend]| list.iter().map(|t| t.key.clone()).collect::<Vec<_>>();
    assert_eq!(names(&trends.rising), vec!["rising"]);
    assert_eq!(names(&trends.falling), vec!["fading"]);
    let rising = &trends.rising[0];
    assert_eq!((rising.current, rising.previous, rising.ratio), (180, 0, None));
    assert!((rising.current_per_minute - 3.0).abs() < 1e-9);
    let fading = &trends.falling[0];
    assert_eq!((fading.current, fading.previous), (60, 300));
    assert!((fading.ratio.unwrap() - 0.2).abs() < 1e-9);

    // Without a whole previous window seen, nothing is reported.
    let mut young = tracker();
    young.observe(T0 + 90 * MINUTE_MS, "a", true);
    assert!(young.trends(HOUR_MS, 10).unwrap().rising.is_empty());
}

#[test]
fn busy_keys_get_series_with_profiles_and_lose_them_when_cold() {
    let config = TrackerConfig {
        keys: TrackingRule {
            top: 2,
            max: 10,
            evict_after_steps: 30,
        },
        ..TrackerConfig::default()
    };
    let mut t = UsageTracker::new(config).unwrap();
    // Hour 0: "a" ×30, "b" ×20, "c" ×5 (only the top 2 get series).
    for (key, n) in [("a", 30), ("b", 20), ("c", 5)] {
        for i in 0..n {
            t.observe(T0 + i * 1000, key, true);
        }
    }
    t.advance(T0 + HOUR_MS);
    let mut names: Vec<&str> = t.tracked_names(Tracking::Keys).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["a", "b"]);
    // "a" stays busy at 02:xx every day for three days; "b" goes quiet and is dropped after 30 steps.
    for day in 0..3 {
        for i in 0..40 {
            t.observe(T0 + day * DAY_MS + 2 * HOUR_MS + i * 1000, "a", true);
        }
        t.advance(T0 + day * DAY_MS + 3 * HOUR_MS);
        assert_eq!(t.series(Tracking::Keys, "b").is_some(), day < 2);
    }
    let a = t.series(Tracking::Keys, "a").unwrap();
    assert_eq!(a.tracked_since_ms, T0);
    assert_eq!(a.accesses, 30 + 3 * 40);
    assert_eq!(a.per_minute.len(), 120);
    // The last minute is 03:00; the 40 accesses at 02:00 are 60 minutes before.
    assert_eq!((a.per_minute[59], a.per_minute.iter().sum::<u32>()), (40, 40));
    // At 02:xx on three days: 40 accesses per hour; at 00:xx: 30 once in three days.
    let hod = &a.profile.hour_of_day;
    assert!((hod[2].unwrap() - 40.0).abs() < 1e-9, "{hod:?}");
    assert!((hod[0].unwrap() - 10.0).abs() < 1e-9, "{hod:?}");
    assert_eq!(hod[5], Some(0.0));
    assert_eq!(a.profile.day_of_week[0], Some(70.0));
    assert_eq!(a.profile.day_of_week[3], None);
    assert!(t.series(Tracking::Keys, "c").is_none());
    // Prefixes: "a", "b" and "c" have the empty prefix.
    assert_eq!(t.tracked_names(Tracking::Prefixes).collect::<Vec<_>>(), vec![""]);
}

#[test]
fn prefixes_end_at_the_last_separator() {
    let t = tracker();
    assert_eq!(t.prefix_of("user:42:cart"), "user:42");
    assert_eq!(t.prefix_of("static/img/logo.png"), "static/img/logo");
    assert_eq!(t.prefix_of("plain"), "");
}

#[test]
fn memory_stays_bounded_with_millions_of_distinct_keys() {
    let config = TrackerConfig {
        summary_capacity: 64,
        keys: TrackingRule {
            top: 20,
            max: 100,
            evict_after_steps: 48,
        },
        prefixes: TrackingRule {
            top: 20,
            max: 100,
            evict_after_steps: 48,
        },
        ..TrackerConfig::default()
    };
    let mut t = UsageTracker::new(config).unwrap();
    let mut key = String::new();
    let (mut early, mut peak) = (0, 0);
    // Over four days, 1.8 million distinct keys (each with its own prefix) seen once,
    // and one event in ten for one of ten busy keys.
    let n = 2_000_000u64;
    for i in 0..n {
        use std::fmt::Write;
        key.clear();
        let _ = if i % 10 == 0 {
            write!(key, "busy:{}", i / 10 % 10)
        } else {
            write!(key, "user:{i}:profile")
        };
        t.observe(T0 + i * (4 * DAY_MS / n), &key, i % 3 == 0);
        if i % 100_000 == 0 {
            peak = peak.max(t.memory_bytes());
        }
        if i == n / 2 {
            early = t.memory_bytes();
        }
    }
    peak = peak.max(t.memory_bytes());
    assert_eq!(t.events(), n);
    // 84 buckets of 64 counters and a 5×1360 sketch, two step summaries, 200 series:
    // all in use once the day window's ring (two days) is full, then flat.
    assert!(peak < 8 << 20, "{peak} bytes");
    assert!(peak < early + early / 10, "grew from {early} to {peak} bytes");
    assert!(serde_json::to_vec(&t).unwrap().len() < 16 << 20);
    assert!(t.tracked_names(Tracking::Keys).count() <= 100);
    assert!(t.tracked_names(Tracking::Prefixes).count() <= 100);
    // The busy keys stand out in every window and are tracked.
    let hot = t.hot(HOUR_MS, 10).unwrap();
    assert!(hot.entries.iter().all(|e| e.key.starts_with("busy:")), "{hot:?}");
    assert!((0..10).all(|b| t.series(Tracking::Keys, &format!("busy:{b}")).is_some()));
}

#[test]
fn a_restored_tracker_continues_where_it_stopped() {
    let mut t = tracker();
    for i in 0..5000u64 {
        t.observe(T0 + i * 2000, &format!("k{}", i % 37), i % 5 == 0);
    }
    let json = serde_json::to_string(&t).unwrap();
    let mut back: UsageTracker = serde_json::from_str(&json).unwrap();
    for tracker in [&mut t, &mut back] {
        for i in 0..3000u64 {
            tracker.observe(T0 + 10_000_000 + i * 2000, &format!("k{}", i % 41), i % 7 == 0);
        }
    }
    assert_eq!(t.hot(HOUR_MS, 50).unwrap(), back.hot(HOUR_MS, 50).unwrap());
    assert_eq!(t.trends(HOUR_MS, 10).unwrap(), back.trends(HOUR_MS, 10).unwrap());
    assert_eq!(t.series(Tracking::Keys, "k3"), back.series(Tracking::Keys, "k3"));
}

#[test]
fn invalid_configs_name_the_field() {
    let mut config = TrackerConfig::default();
    config.windows[1].buckets = 7;
    assert_eq!(
        UsageTracker::new(config).unwrap_err().to_string(),
        "windows[1]: length_ms (3600000) must be a positive multiple of buckets (7)"
    );
    let config = TrackerConfig {
        keys: TrackingRule {
            top: 1000,
            max: 2000,
            evict_after_steps: 1,
        },
        ..TrackerConfig::default()
    };
    assert!(UsageTracker::new(config)
        .unwrap_err()
        .to_string()
        .starts_with("keys.top (1000) must be between 1"));
    let parsed: TrackerConfig = serde_json::from_str(r#"{"step_ms": 900000}"#).unwrap();
    assert_eq!(parsed.step_ms, 900_000);
    assert!(serde_json::from_str::<TrackerConfig>(r#"{"stepms": 1}"#).is_err());
}

#[test]
fn a_family_without_a_time_of_day_is_flat_and_one_with_peaks_is_not() {
    // For eight days, every hour: 20 "steady:" keys with 0 to 2 requests each (no time of
    // day), and 20 "peaky:" keys with 6 requests each at 08:00 and 09:00, none otherwise.
    let mut t = tracker();
    for hour in 0..8 * 24u64 {
        let start = T0 + hour * HOUR_MS;
        for k in 0..20u64 {
            let steady = (((hour * 31 + k) * 2_654_435_761) >> 9) % 3;
            for i in 0..steady {
                t.observe(start + k * 1000 + i, &format!("steady:{k}"), true);
            }
            if (8..10).contains(&(hour % 24)) {
                for i in 0..6 {
                    t.observe(start + k * 1000 + 100 + i, &format!("peaky:{k}"), true);
                }
            }
        }
    }
    t.advance(T0 + 8 * DAY_MS);
    let prior_days = |name: &str| t.keys.series[name].forecasters.profile_prior_days();
    for k in 0..20 {
        assert_eq!(
            prior_days(&format!("steady:{k}")),
            FLAT_PROFILE_PRIOR_DAYS,
            "steady:{k}"
        );
        assert_eq!(prior_days(&format!("peaky:{k}")), PROFILE_PRIOR_DAYS, "peaky:{k}");
    }
}

#[test]
fn a_family_whose_busy_days_last_carries_its_keys_surprises() {
    // For eight days, every hour from 08:00 to 16:00: 20 "days:" keys at 4 or 12 requests
    // an hour, the same all day, and 20 "hours:" keys at 4 or 12, hour by hour (which,
    // pseudo-random); none at other hours.
    let coin = |i: u64| {
        let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 63 == 1
    };
    let mut t = tracker();
    for hour in (0..8 * 24u64).filter(|h| (8..16).contains(&(h % 24))) {
        let start = T0 + hour * HOUR_MS;
        for k in 0..20u64 {
            for (family, busy) in [("days", coin(k * 1000 + hour / 24)), ("hours", coin(k * 1000 + hour))] {
                for i in 0..if busy { 12 } else { 4 } {
                    t.observe(start + k * 1000 + i, &format!("{family}:{k}"), true);
                }
            }
        }
    }
    t.advance(T0 + 7 * DAY_MS + 12 * HOUR_MS);
    let persistence = |name: &str| t.keys.series[name].forecasters.persistence();
    let (days, hours) = (persistence("days:0"), persistence("hours:0"));
    assert!(days.covariance > 0.05, "{days:?}");
    // Each is shrunk halfway toward both families' together: the flickering one's is
    // still under half the lasting one's.
    assert!(hours.covariance < days.covariance / 2.0, "{hours:?} against {days:?}");
    for k in 0..20 {
        // One estimate per family, from all its keys.
        assert_eq!(persistence(&format!("days:{k}")), days);
        assert_eq!(persistence(&format!("hours:{k}")), hours);
    }
    // At 12:00, a key busy all day is forecast busier than its uncarried forecast.
    let busy = (0..20).find(|k| coin(k * 1000 + 7)).expect("a busy key");
    let why = t.series(Tracking::Keys, &format!("days:{busy}")).expect("tracked");
    assert!(
        why.explanation.reason.contains("carried from the last step"),
        "{}",
        why.explanation.reason
    );
}

#[test]
fn keys_that_fade_with_age_are_forecast_down_and_their_steady_family_is_not() {
    // For seven and a half days, every hour from 08:00 to 16:00: 20 "news:" keys at 6 requests
    // an hour, and each day 20 new ones, "news:{day}-{k}", at 32 requests an hour on their
    // first day, half as many each day after; none at other hours.
    let mut t = tracker();
    for hour in (0..7 * 24 + 12u64).filter(|h| (8..16).contains(&(h % 24))) {
        let start = T0 + hour * HOUR_MS;
        let mut requests = |name: String, n: u64| {
            for i in 0..n {
                t.observe(start + i * (HOUR_MS / n), &name, true);
            }
        };
        for k in 0..20u64 {
            requests(format!("news:{k}"), 6);
            for born in 0..=hour / 24 {
                let n = 32 >> (hour / 24 - born);
                if n > 0 {
                    requests(format!("news:{born}-{k}"), n);
                }
            }
        }
    }
    t.advance(T0 + 7 * DAY_MS + 12 * HOUR_MS);
    let forecasters = |name: &str| &t.keys.series[name].forecasters;
    // At 12:00 on day 7, keys born on day 4 get 4 requests an hour; their past days say more.
    for k in 0..20 {
        let name = format!("news:4-{k}");
        let why = t.series(Tracking::Keys, &name).expect("tracked").explanation;
        let scale = forecasters(&name).scale();
        assert!(scale < 0.9, "{name}: {scale}");
        let unscaled = why.forecast / scale;
        assert!(
            (why.forecast - 4.0).abs() < (unscaled - 4.0).abs(),
            "{name}: {} against {unscaled}",
            why.forecast
        );
        assert!(why.reason.contains("ran above what came"), "{}", why.reason);
        let steady = forecasters(&format!("news:{k}")).scale();
        assert!((0.85..=1.15).contains(&steady), "news:{k}: {steady}");
    }
}

#[test]
fn every_forecast_is_the_same_on_one_thread_as_on_several() {
    // The per-series passes run on rayon's threads; the sums over families (persistence,
    // priors, age groups) are made in the map's order whatever the threads, so every
    // forecast comes out the same, bit for bit. The same tracker cloned keeps its map's
    // order (another tracker's map, with another hash seed, adds its sums in another order).
    let events = |t: &mut UsageTracker, from: u64, to: u64| {
        for i in from..to {
            let hour = i / 1000;
            // Five families, each busiest at its own hours, their keys of uneven weight.
            let family = i % 5;
            let key = (i * 7919 + hour * 31) % (200 + 100 * ((hour + family) % 3));
            t.observe(T0 + i * 4300, &format!("f{family}:k{key}"), i % 3 == 0);
        }
    };
    let mut start = tracker();
    events(&mut start, 0, 20_000);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mut t = start.clone();
        pool.install(|| events(&mut t, 20_000, 60_000));
        t
    };
    let (one, several) = (run(1), run(8));
    let mut names: Vec<&str> = one.tracked_names(Tracking::Keys).collect();
    names.sort_unstable();
    assert!(names.len() > 500, "{} keys tracked", names.len());
    for name in names {
        assert_eq!(one.series(Tracking::Keys, name), several.series(Tracking::Keys, name));
    }
}
