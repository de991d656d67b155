//! Calendar arithmetic on millisecond timestamps: hour of day and day of week
//! in a fixed UTC offset, and how much of a time span fell in each of them.

/// A minute in milliseconds.
pub(crate) const MINUTE_MS: u64 = 60_000;
/// An hour in milliseconds.
pub(crate) const HOUR_MS: u64 = 3_600_000;
/// A day in milliseconds.
pub(crate) const DAY_MS: u64 = 86_400_000;
/// A week in milliseconds.
pub(crate) const WEEK_MS: u64 = 7 * DAY_MS;

/// A repeating division of time into equal bins.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cycle {
    /// 24 bins of an hour; bin 0 starts at local midnight.
    HourOfDay,
    /// 7 bins of a day; bin 0 is Monday.
    DayOfWeek,
}

impl Cycle {
    pub(crate) fn bins(self) -> usize {
        match self {
            Cycle::HourOfDay => 24,
            Cycle::DayOfWeek => 7,
        }
    }

    fn bin_ms(self) -> u64 {
        match self {
            Cycle::HourOfDay => HOUR_MS,
            Cycle::DayOfWeek => DAY_MS,
        }
    }

    /// Shift that puts bin 0 at the cycle's start: 1970-01-01 was a Thursday (bin 3).
    fn phase_ms(self) -> u64 {
        match self {
            Cycle::HourOfDay => 0,
            Cycle::DayOfWeek => 3 * DAY_MS,
        }
    }

    /// The bin of an instant, with the local time `offset_minutes` from UTC.
    pub(crate) fn bin(self, ts_ms: u64, offset_minutes: i32) -> usize {
        ((shifted(ts_ms, offset_minutes, self.phase_ms()) / self.bin_ms()) % self.bins() as u64) as usize
    }

    /// How many milliseconds of `[from, to)` fell in each bin.
    pub(crate) fn observed_ms(self, from: u64, to: u64, offset_minutes: i32) -> Vec<u64> {
        let bins = self.bins() as u64;
        let cycle = self.bin_ms() * bins;
        let span = to.saturating_sub(from);
        let mut observed = vec![(span / cycle) * self.bin_ms(); self.bins()];
        let mut t = shifted(from, offset_minutes, self.phase_ms());
        let end = t + span % cycle;
        while t < end {
            let next = (t / self.bin_ms() + 1) * self.bin_ms();
            observed[((t / self.bin_ms()) % bins) as usize] += next.min(end) - t;
            t = next;
        }
        observed
    }
}

/// `ts_ms` moved to local time plus `phase_ms` (clamped at 0).
fn shifted(ts_ms: u64, offset_minutes: i32, phase_ms: u64) -> u64 {
    let offset = i64::from(offset_minutes) * MINUTE_MS as i64;
    (ts_ms as i64).saturating_add(offset).max(0) as u64 + phase_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-01-01T00:00:00Z, a Monday.
    const MONDAY: u64 = 1_704_067_200_000;

    #[test]
    fn bins_follow_the_calendar_and_the_offset() {
        assert_eq!(Cycle::DayOfWeek.bin(MONDAY, 0), 0);
        assert_eq!(Cycle::DayOfWeek.bin(MONDAY + 6 * DAY_MS, 0), 6);
        assert_eq!(Cycle::DayOfWeek.bin(0, 0), 3);
        assert_eq!(Cycle::HourOfDay.bin(MONDAY + 5 * HOUR_MS + 59 * MINUTE_MS, 0), 5);
        assert_eq!(Cycle::HourOfDay.bin(MONDAY, 120), 2);
        assert_eq!(Cycle::HourOfDay.bin(MONDAY, -60), 23);
        assert_eq!(Cycle::DayOfWeek.bin(MONDAY, -60), 6);
    }

    #[test]
    fn observed_time_is_split_across_bins() {
        let observed = Cycle::HourOfDay.observed_ms(MONDAY + 30 * MINUTE_MS, MONDAY + DAY_MS + 2 * HOUR_MS, 0);
        assert_eq!(observed[0], HOUR_MS + 30 * MINUTE_MS);
        assert_eq!(observed[1], 2 * HOUR_MS);
        assert_eq!(observed[2], HOUR_MS);
        assert_eq!(observed.iter().sum::<u64>(), DAY_MS + 90 * MINUTE_MS);
        let week = Cycle::DayOfWeek.observed_ms(MONDAY, MONDAY + 15 * DAY_MS, 0);
        assert_eq!(
            week,
            vec![
                3 * DAY_MS,
                2 * DAY_MS,
                2 * DAY_MS,
                2 * DAY_MS,
                2 * DAY_MS,
                2 * DAY_MS,
                2 * DAY_MS
            ]
        );
    }
}
