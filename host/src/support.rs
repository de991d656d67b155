//! Small helpers every stage uses and none owns: the stop signal of a run,
//! retry backoff, and URL redaction for messages. They depend on nothing else
//! in the crate, so any module may import them.

use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A run-wide stop signal: once set, calls in flight are interrupted at the
/// next epoch tick, and tasks awaiting [`Cancel::cancelled`] wake up.
#[derive(Clone, Default, Debug)]
pub struct Cancel(Arc<(AtomicBool, tokio::sync::Notify)>);

impl Cancel {
    /// Signals every call and task watching this flag to stop.
    pub fn cancel(&self) {
        self.0 .0.store(true, Ordering::SeqCst);
        self.0 .1.notify_waiters();
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0 .0.load(Ordering::SeqCst)
    }

    /// Completes once [`Cancel::cancel`] has been called.
    pub async fn cancelled(&self) {
        let notified = self.0 .1.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_cancelled() {
            notified.await;
        }
    }
}

/// Hides the password of a URL: `redis://user:secret@host:6379/0` → `redis://user:***@host:6379/0`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

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
    fn credentials_never_reach_messages() {
        assert_eq!(redact_url("redis://:hunter2@db:6379/0"), "redis://:***@db:6379/0");
        assert_eq!(redact_url("postgres://app:pw@db/app"), "postgres://app:***@db/app");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

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
