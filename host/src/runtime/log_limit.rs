//! What a plugin may send to the host log, through `log()` and its
//! stdout/stderr: every message is escaped (a newline or a control character
//! cannot start a line of its own, so cannot forge an untagged log line),
//! capped at [`MAX_LOG_MESSAGE_BYTES`] with a marker saying how much was cut,
//! and rate-limited per plugin by a token bucket ([`LOG_BURST`] lines, refilled
//! at [`LOG_LINES_PER_SECOND`]). Dropped lines are counted and reported in a
//! summary line at most every [`SUMMARY_INTERVAL`] and at the end of each call.

use super::Level;
use crate::report::is_hidden_char;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest message (after escaping) a plugin may log; the rest is cut with a marker.
pub const MAX_LOG_MESSAGE_BYTES: usize = 4096;
/// Lines per second a plugin may log, on average (all its instances together).
pub const LOG_LINES_PER_SECOND: u32 = 50;
/// Lines a plugin may log at once before the rate limit applies.
pub const LOG_BURST: u32 = 200;
/// Dropped lines are summarised at most this often while a call runs.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// `message` escaped and capped: control characters (newlines included) and
/// invisible format characters become escapes such as `\n` or `\u{202e}`, and
/// output past [`MAX_LOG_MESSAGE_BYTES`] is replaced by
/// `… [truncated: N more bytes]`, where N also counts `already_cut` bytes the
/// caller dropped before (an over-long output line).
pub(crate) fn sanitize(message: &str, already_cut: usize) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LOG_MESSAGE_BYTES) + 48);
    let mut cut = already_cut;
    for (i, c) in message.char_indices() {
        if out.len() >= MAX_LOG_MESSAGE_BYTES {
            cut += message.len() - i;
            break;
        }
        if is_hidden_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut > 0 {
        let _ = write!(out, "… [truncated: {cut} more bytes]");
    }
    out
}

/// One plugin's log: the rate limit shared by all its instances, and the drop counts.
pub(crate) struct PluginLog {
    plugin: Arc<str>,
    bucket: Mutex<Bucket>,
}

/// A token bucket with the counts of what it refused.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
    dropped_since_summary: u64,
    dropped_total: u64,
    summarised: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(LOG_BURST),
            refilled: now,
            dropped_since_summary: 0,
            dropped_total: 0,
            summarised: now,
        }
    }

    /// Takes a token for one line; counts the line as dropped when there is none.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(LOG_LINES_PER_SECOND)).min(f64::from(LOG_BURST));
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped_since_summary += 1;
            self.dropped_total += 1;
            false
        }
    }

    /// The (dropped since the last summary, dropped in total) counts, when a
    /// summary is due: lines were dropped, and `force` or the interval has passed.
    fn summary(&mut self, now: Instant, force: bool) -> Option<(u64, u64)> {
        let due = force || now.saturating_duration_since(self.summarised) >= SUMMARY_INTERVAL;
        if self.dropped_since_summary == 0 || !due {
            return None;
        }
        self.summarised = now;
        Some((std::mem::take(&mut self.dropped_since_summary), self.dropped_total))
    }
}

impl PluginLog {
    /// The log of plugin `plugin`, with a full bucket.
    pub(crate) fn new(plugin: Arc<str>) -> PluginLog {
        PluginLog {
            plugin,
            bucket: Mutex::new(Bucket::new(Instant::now())),
        }
    }

    /// Logs one message of the plugin from `stream` (`log`, `stdout` or `stderr`),
    /// escaped, capped and rate-limited; `already_cut` as in [`sanitize`].
    pub(crate) fn emit(&self, level: Level, stream: &'static str, message: &str, already_cut: usize) {
        let now = Instant::now();
        let (admitted, summary) = {
            let mut bucket = self.bucket.lock().unwrap();
            let admitted = bucket.admit(now);
            (admitted, bucket.summary(now, false))
        };
        if admitted {
            let line = sanitize(message, already_cut);
            let plugin = &*self.plugin;
            match level {
                Level::Trace => tracing::trace!(plugin, stream, "{line}"),
                Level::Debug => tracing::debug!(plugin, stream, "{line}"),
                Level::Info => tracing::info!(plugin, stream, "{line}"),
                Level::Warn => tracing::warn!(plugin, stream, "{line}"),
                Level::Error => tracing::error!(plugin, stream, "{line}"),
            }
        }
        if let Some(counts) = summary {
            self.report_dropped(counts);
        }
    }

    /// Reports the lines dropped since the last summary, if any (at the end of a call).
    pub(crate) fn end_of_call(&self) {
        let summary = self.bucket.lock().unwrap().summary(Instant::now(), true);
        if let Some(counts) = summary {
            self.report_dropped(counts);
        }
    }

    fn report_dropped(&self, (dropped, total): (u64, u64)) {
        tracing::warn!(
            plugin = &*self.plugin,
            dropped,
            dropped_total = total,
            "plugin `{}` logged too much: {dropped} log lines dropped ({total} since it was loaded); limit: {LOG_BURST} lines at once, then {LOG_LINES_PER_SECOND} lines/s per plugin (LOG_BURST, LOG_LINES_PER_SECOND, docs/SECURITY.md)",
            self.plugin
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_control_characters_are_escaped() {
        assert_eq!(sanitize("a\nb\r\tc\u{1b}[31m", 0), "a\\nb\\r\\tc\\u{1b}[31m");
        assert_eq!(
            sanitize("right\u{202e}to\u{200b}left\u{feff}", 0),
            "right\\u{202e}to\\u{200b}left\\u{feff}"
        );
        assert_eq!(sanitize("plain text, ünïcode ✓", 0), "plain text, ünïcode ✓");
    }

    #[test]
    fn long_messages_are_cut_with_a_marker_counting_the_rest() {
        let long = "x".repeat(MAX_LOG_MESSAGE_BYTES + 1000);
        let out = sanitize(&long, 0);
        assert!(out.starts_with(&"x".repeat(MAX_LOG_MESSAGE_BYTES)));
        assert!(
            out.ends_with("… [truncated: 1000 more bytes]"),
            "{}",
            &out[MAX_LOG_MESSAGE_BYTES..]
        );
        assert_eq!(sanitize("short", 7), "short… [truncated: 7 more bytes]");
        // Escapes count towards the cap: a message of newlines cannot grow the line past it.
        let newlines = "\n".repeat(MAX_LOG_MESSAGE_BYTES);
        let out = sanitize(&newlines, 0);
        assert!(out.len() < MAX_LOG_MESSAGE_BYTES + 64, "{}", out.len());
        assert!(out.ends_with(&format!("[truncated: {} more bytes]", MAX_LOG_MESSAGE_BYTES / 2)));
        // Multi-byte characters are never split.
        let wide = "é".repeat(MAX_LOG_MESSAGE_BYTES);
        assert!(sanitize(&wide, 0).contains("[truncated: "));
    }

    #[test]
    fn the_bucket_admits_a_burst_then_the_refill_rate_and_counts_drops() {
        let start = Instant::now();
        let mut bucket = Bucket::new(start);
        let admitted = (0..LOG_BURST + 50).filter(|_| bucket.admit(start)).count();
        assert_eq!(admitted, LOG_BURST as usize);
        assert_eq!(bucket.dropped_total, 50);
        // One second later, one second of refill.
        let later = start + Duration::from_secs(1);
        let admitted = (0..LOG_BURST).filter(|_| bucket.admit(later)).count();
        assert_eq!(admitted, LOG_LINES_PER_SECOND as usize);
        // Never more than the burst, however long the pause.
        let much_later = later + Duration::from_secs(3600);
        let admitted = (0..LOG_BURST * 2).filter(|_| bucket.admit(much_later)).count();
        assert_eq!(admitted, LOG_BURST as usize);
    }

    #[test]
    fn summaries_come_when_due_or_forced_and_only_after_drops() {
        let start = Instant::now();
        let mut bucket = Bucket::new(start);
        assert_eq!(bucket.summary(start, true), None, "nothing dropped, nothing to say");
        for _ in 0..LOG_BURST + 3 {
            bucket.admit(start);
        }
        assert_eq!(
            bucket.summary(start + Duration::from_secs(1), false),
            None,
            "not due yet"
        );
        assert_eq!(bucket.summary(start + SUMMARY_INTERVAL, false), Some((3, 3)));
        for _ in 0..LOG_BURST + 1 {
            bucket.admit(start + SUMMARY_INTERVAL);
        }
        assert_eq!(bucket.summary(start + SUMMARY_INTERVAL, true), Some((1, 4)));
        assert_eq!(bucket.summary(start + SUMMARY_INTERVAL, true), None);
    }
}
