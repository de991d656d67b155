//! Retry delays: exponential backoff with jitter.

use rand::Rng;
use std::time::Duration;

/// Longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Delay before attempt `attempt + 1` (attempt counts from 1): `base × 2^(attempt-1)`,
/// scaled by a random factor in [0.5, 1.5), capped at 30 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let jitter = rand::rng().random_range(0.5..1.5);
    exp.mul_f64(jitter).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds() {
        let base = Duration::from_millis(100);
        for attempt in 1..=5 {
            let d = backoff(base, attempt);
            let nominal = base * (1 << (attempt - 1));
            assert!(d >= nominal / 2 && d < nominal * 3 / 2, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(Duration::from_secs(10), 20) <= MAX_DELAY);
    }
}
