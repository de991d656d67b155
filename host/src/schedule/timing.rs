//! The clock arithmetic of schedules, as pure functions of `now` (and a random
//! source for jitter), so every rule is tested without sleeping.
//!
//! All times are UTC: `0 3 * * *` fires at 03:00 UTC.

use chrono::{DateTime, SubsecRound, Utc};
use croner::Cron;
use rand::Rng;
use std::time::Duration;

/// Upcoming fire times inspected to find a schedule's shortest period.
const PERIOD_SAMPLES: usize = 32;

/// The first fire time of `cron` strictly after `after`; `None` when it never fires again.
pub(super) fn next_fire(cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// A random delay in `[0, jitter]`, in whole milliseconds.
pub(super) fn jitter_delay(jitter: Option<Duration>, rng: &mut impl Rng) -> chrono::Duration {
    let max = jitter.map_or(0, |j| u64::try_from(j.as_millis()).unwrap_or(u64::MAX));
    let ms = if max == 0 { 0 } else { rng.random_range(0..=max) };
    chrono::Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// When a schedule next calls `fire`: its next fire time after `after`, plus a random jitter.
pub(super) fn next_due(
    cron: &Cron,
    jitter: Option<Duration>,
    after: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Option<DateTime<Utc>> {
    next_fire(cron, after).map(|t| t + jitter_delay(jitter, rng))
}

/// The earliest fire time of `cron` in `(last_fired, now]`: a run the service
/// missed while it was down. `None` when there was none.
pub(super) fn missed_since(cron: &Cron, last_fired: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    next_fire(cron, last_fired).filter(|t| *t <= now)
}

/// The shortest gap between consecutive fire times of `cron` among the next
/// few after `from`; `None` when it fires fewer than twice more. Jitter must
/// stay below it, or a delayed run would run into the next fire time.
pub(super) fn shortest_period(cron: &Cron, from: DateTime<Utc>) -> Option<Duration> {
    let mut previous = next_fire(cron, from)?;
    let mut shortest: Option<chrono::Duration> = None;
    for _ in 1..PERIOD_SAMPLES {
        let Some(next) = next_fire(cron, previous) else { break };
        let gap = next - previous;
        shortest = Some(shortest.map_or(gap, |s| s.min(gap)));
        previous = next;
    }
    shortest.and_then(|s| s.to_std().ok())
}

/// `t` to the millisecond, the precision kept in the job store.
pub(super) fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CronSchedule;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn cron(s: &str) -> Cron {
        CronSchedule::parse(s).unwrap().0
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_fire_is_evaluated_in_utc_and_strictly_after() {
        let daily = cron("0 3 * * *");
        assert_eq!(
            next_fire(&daily, at("2024-01-01T10:00:00Z")),
            Some(at("2024-01-02T03:00:00Z"))
        );
        // A time zone offset in the input changes nothing: 03:00 is UTC.
        let local = DateTime::parse_from_rfc3339("2024-01-01T02:30:00-05:00").unwrap();
        assert_eq!(
            next_fire(&daily, local.with_timezone(&Utc)),
            Some(at("2024-01-02T03:00:00Z"))
        );
        // Exactly on a fire time: the next one, not the same one again.
        assert_eq!(
            next_fire(&daily, at("2024-01-02T03:00:00Z")),
            Some(at("2024-01-03T03:00:00Z"))
        );
        let seconds = cron("*/10 * * * * *");
        assert_eq!(
            next_fire(&seconds, at("2024-01-01T10:00:03.500Z")),
            Some(at("2024-01-01T10:00:10Z"))
        );
    }

    #[test]
    fn jitter_stays_within_zero_and_the_configured_jitter() {
        let mut rng = StdRng::seed_from_u64(7);
        let max = chrono::Duration::seconds(30);
        let samples: Vec<_> = (0..2000)
            .map(|_| jitter_delay(Some(Duration::from_secs(30)), &mut rng))
            .collect();
        assert!(samples.iter().all(|d| *d >= chrono::Duration::zero() && *d <= max));
        // It spreads: not stuck at one end.
        assert!(samples.iter().any(|d| *d < chrono::Duration::seconds(10)));
        assert!(samples.iter().any(|d| *d > chrono::Duration::seconds(20)));
        assert_eq!(jitter_delay(None, &mut rng), chrono::Duration::zero());
        assert_eq!(jitter_delay(Some(Duration::ZERO), &mut rng), chrono::Duration::zero());

        let base = at("2024-01-01T10:00:00Z");
        for _ in 0..200 {
            let due = next_due(&cron("*/15 * * * *"), Some(Duration::from_secs(60)), base, &mut rng).unwrap();
            assert!(
                due >= at("2024-01-01T10:15:00Z") && due <= at("2024-01-01T10:16:00Z"),
                "{due}"
            );
        }
    }

    #[test]
    fn a_missed_fire_time_is_one_between_last_fired_and_now() {
        let hourly = cron("0 * * * *");
        let now = at("2024-01-01T10:30:00Z");
        // Down for three fire times: the earliest is reported (once).
        assert_eq!(
            missed_since(&hourly, at("2024-01-01T07:00:05Z"), now),
            Some(at("2024-01-01T08:00:00Z"))
        );
        // Fired at 10:00, nothing due until 11:00.
        assert_eq!(missed_since(&hourly, at("2024-01-01T10:00:01Z"), now), None);
        // A fire time exactly at `now` counts as missed.
        assert_eq!(
            missed_since(&hourly, at("2024-01-01T09:59:00Z"), at("2024-01-01T10:00:00Z")),
            Some(at("2024-01-01T10:00:00Z"))
        );
        // A last_fired in the future (clock skew) misses nothing.
        assert_eq!(missed_since(&hourly, at("2024-01-02T00:00:00Z"), now), None);
    }

    #[test]
    fn shortest_period_finds_the_smallest_gap() {
        let from = at("2024-01-01T10:00:00Z");
        assert_eq!(
            shortest_period(&cron("*/5 * * * *"), from),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            shortest_period(&cron("0 0,1 * * *"), from),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            shortest_period(&cron("* * * * * *"), from),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            shortest_period(&cron("@daily"), from),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn millisecond_precision() {
        assert_eq!(
            to_millis(at("2024-01-01T10:00:00.123456789Z")),
            at("2024-01-01T10:00:00.123Z")
        );
    }
}
