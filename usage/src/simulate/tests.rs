use super::*;
use crate::calendar::MINUTE_MS;

/// 2024-01-01T00:00:00Z, a Monday.
const T0: u64 = 1_704_067_200_000;

fn small_trace(seed: u64) -> Vec<AccessEvent> {
    let config = GeneratorConfig {
        keys: 2000,
        days: 4,
        requests_per_day: 40_000,
        seed,
        capacity: 1000,
        ..GeneratorConfig::default()
    };
    let mut events = Vec::new();
    generate(&config, |e| {
        events.push(e.clone());
        Ok(())
    })
    .unwrap();
    events
}

#[test]
fn predictive_beats_static_and_reactive_on_a_seasonal_trace() {
    let events = small_trace(1);
    let config = SimConfig {
        capacity: 1000,
        ttl_ms: 4 * HOUR_MS,
        budget: 200,
        ..SimConfig::default()
    };
    let report = simulate(events.into_iter().map(Ok), &config).unwrap();
    let rate = |s| report.result(s).hit_rate;
    assert!(
        rate(Strategy::Predictive) > rate(Strategy::Static) && rate(Strategy::Predictive) > rate(Strategy::Reactive),
        "{:#?}",
        report.strategies
    );
    assert!(rate(Strategy::Oracle) > rate(Strategy::Predictive) && rate(Strategy::Static) > rate(Strategy::None));
    let share = report.predictive_share_of_oracle_uplift.unwrap();
    assert!(share > 0.0 && share < 1.0);
    assert_eq!((report.intervals, report.measured_intervals), (96, 72));
    for result in &report.strategies {
        assert_eq!(result.requests, report.result(Strategy::None).requests);
        assert!(result.keys_warmed <= 72 * 200 && result.warms_used <= result.keys_warmed);
    }
    assert_eq!(report.result(Strategy::None).keys_warmed, 0);
}

#[test]
fn every_strategy_keeps_a_regular_key_warm() {
    // One key, requested in the middle of every hour for three days; entries live 30 minutes,
    // so without warming every request misses, and warming it each hour makes every one hit.
    let events = (0..72).map(|h| {
        Ok(AccessEvent {
            ts_ms: T0 + h * HOUR_MS + 20 * MINUTE_MS,
            key: "page:home".into(),
            hit: false,
            latency_ms: None,
        })
    });
    let config = SimConfig {
        ttl_ms: 30 * MINUTE_MS,
        budget: 1,
        ..SimConfig::default()
    };
    let report = simulate(events, &config).unwrap();
    assert_eq!((report.events, report.keys, report.measured_intervals), (72, 1, 48));
    assert_eq!(report.result(Strategy::None).hit_rate, 0.0);
    for strategy in [
        Strategy::Static,
        Strategy::Reactive,
        Strategy::Predictive,
        Strategy::Oracle,
    ] {
        let result = report.result(strategy);
        assert_eq!(
            (result.requests, result.hits, result.keys_warmed),
            (48, 48, 48),
            "{strategy:?}"
        );
    }
    assert_eq!(report.predictive_share_of_oracle_uplift, Some(1.0));
}

#[test]
fn traces_must_be_sorted_and_not_empty() {
    let event = |ts_ms| {
        Ok(AccessEvent {
            ts_ms,
            key: "k".into(),
            hit: true,
            latency_ms: None,
        })
    };
    let config = SimConfig::default();
    let error = simulate(vec![event(10), event(5)], &config).unwrap_err().to_string();
    assert_eq!(
        error,
        "event 2 (k) at 5 ms is earlier than the one before it (10 ms): sort the trace by ts_ms"
    );
    assert_eq!(
        simulate(Vec::new(), &config).unwrap_err().to_string(),
        "the trace has no events"
    );
    let bad = SimConfig {
        interval_ms: 7 * HOUR_MS,
        ..SimConfig::default()
    };
    assert!(simulate(vec![event(1)], &bad)
        .unwrap_err()
        .to_string()
        .contains("must divide a day"));
}

#[test]
fn the_generator_is_deterministic_and_seasonal() {
    let (a, b, c) = (small_trace(7), small_trace(7), small_trace(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    assert!(a.first().unwrap().ts_ms >= T0 && a.last().unwrap().ts_ms < T0 + 4 * DAY_MS);
    // About 40 000 requests a day (weekdays only here), misses carry a latency, hits do not.
    assert!((a.len() as f64 / 160_000.0 - 1.0).abs() < 0.2, "{}", a.len());
    assert!(a.iter().all(|e| e.hit == e.latency_ms.is_none()));
    // Each family has a busy time of day: its busiest hour sees over twice its average.
    let mut by_family: HashMap<&str, [u64; 24]> = HashMap::new();
    for e in &a {
        let family = e.key.split(':').next().unwrap();
        by_family.entry(family).or_insert([0; 24])[((e.ts_ms - T0) / HOUR_MS % 24) as usize] += 1;
    }
    assert_eq!(by_family.len(), 8);
    for (family, hours) in &by_family {
        let peak = *hours.iter().max().unwrap() as f64;
        let mean = hours.iter().sum::<u64>() as f64 / 24.0;
        assert!(peak > 2.0 * mean, "{family}: peak {peak}, mean {mean}");
    }
    let bad = GeneratorConfig {
        seasonal_share: 1.5,
        ..GeneratorConfig::default()
    };
    assert_eq!(
        generate(&bad, |_| Ok(())).unwrap_err().to_string(),
        "seasonal_share must be between 0 and 1, got 1.5"
    );
}

#[test]
fn seasonal_week_and_predictive_warm_a_key_requested_once_a_week() {
    // page:home at :20 every hour for four weeks; newsletter:1 at 08:25 on each Monday only.
    // Entries live 30 minutes, so only a warm at 08:00 makes the newsletter's request hit.
    let event = |ts_ms, key: &str| {
        Ok(AccessEvent {
            ts_ms,
            key: key.into(),
            hit: false,
            latency_ms: None,
        })
    };
    let mut events = Vec::new();
    for h in 0..28 * 24 {
        events.push(event(T0 + h * HOUR_MS + 20 * MINUTE_MS, "page:home"));
        if h % (7 * 24) == 8 {
            events.push(event(T0 + h * HOUR_MS + 25 * MINUTE_MS, "newsletter:1"));
        }
    }
    let config = SimConfig {
        ttl_ms: 30 * MINUTE_MS,
        budget: 2,
        ..SimConfig::default()
    };
    let report = simulate(events, &config).unwrap();
    let hits = |s| report.result(s).hits;
    // Every warming strategy keeps page:home warm; the three Mondays measured make the difference.
    let page = 27 * 24;
    assert_eq!(hits(Strategy::Reactive), page, "{:#?}", report.strategies);
    assert_eq!(hits(Strategy::Static), page);
    assert_eq!(hits(Strategy::SeasonalDay), page);
    assert_eq!(
        hits(Strategy::SeasonalWeek),
        page - 6 * 24 + 3,
        "nothing to go by in the first week"
    );
    // Predictive learns that the week before says best from the first repeat on, and warms the
    // next ones (at the first repeat, the quiet week made "nothing again" the better bet).
    assert_eq!(hits(Strategy::Predictive), page + 2, "{:#?}", report.strategies);
    // Seasonal-day warmed the newsletter every day after a Monday, in vain.
    assert!(report.result(Strategy::SeasonalDay).warms_wasted >= 2);
}
