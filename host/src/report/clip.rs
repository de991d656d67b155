//! Bounding text that comes from plugins before the host keeps it: error
//! messages, keys and cursors end up in the report, the job store, the
//! summary, the API and the log, so each is cut to a fixed size first.

use std::borrow::Cow;

/// Longest error text kept per key or per plugin, in bytes.
pub const MAX_ERROR_BYTES: usize = 2048;
/// Longest key kept in an error entry, in bytes.
pub const MAX_SHOWN_KEY_BYTES: usize = 256;

/// `text` cut to at most `max` bytes (at a character boundary), with a marker
/// saying how many bytes were dropped; unchanged when it fits.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let end = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    Cow::Owned(format!(
        "{}… [truncated: {} more bytes]",
        &text[..end],
        text.len() - end
    ))
}

/// `text` for one log record: continuation lines are marked with `  | `, so
/// text from a plugin can never start a line that looks like a log record of its own.
pub fn fence_lines(text: &str) -> Cow<'_, str> {
    if !text.contains(['\n', '\r']) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\n  | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_the_count() {
        assert_eq!(clip("short", 10), "short");
        let cut = clip("ééééé", 5);
        assert_eq!(cut, "éé… [truncated: 6 more bytes]");
        let big = "x".repeat(10 << 20);
        let cut = clip(&big, MAX_ERROR_BYTES);
        assert!(cut.len() < MAX_ERROR_BYTES + 64);
        assert!(cut.ends_with(&format!("[truncated: {} more bytes]", (10 << 20) - MAX_ERROR_BYTES)));
    }

    #[test]
    fn continuation_lines_cannot_pass_for_log_records() {
        assert_eq!(fence_lines("one line"), "one line");
        let forged = "oops\n2026-12-01T00:00:00Z  INFO preheat: all good\rreally";
        let fenced = fence_lines(forged);
        assert!(fenced.lines().skip(1).all(|l| l.starts_with("  | ")), "{fenced}");
    }
}
