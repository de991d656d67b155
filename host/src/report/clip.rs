//! Bounding text that comes from plugins before the host keeps it: error
//! messages, keys and cursors end up in the report, the job store, the
//! summary, the API and the log, so each is cut to a fixed size first.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

/// Unicode format characters (category Cf: U+200B zero width space, U+202E
/// right-to-left override, U+FEFF byte order mark, U+E0001 language tag, …):
/// invisible in logs and dashboards, so text holding them can pass for other
/// text. One definition for keys, logs and reports.
pub static FORMAT_CHARACTER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\p{Cf}").expect("a valid class"));

/// Control characters but the newline, and format characters.
static HIDDEN_BUT_NEWLINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{Cc}\p{Cf}&&[^\n]]").expect("a valid class"));

/// Whether `c` could rewrite or hide output where it is printed: a control
/// character (newline, carriage return, escape, …) or a format character.
pub fn is_hidden_char(c: char) -> bool {
    // No ASCII character is a format character: the regex only sees the rest.
    c.is_control() || (!c.is_ascii() && FORMAT_CHARACTER.is_match(c.encode_utf8(&mut [0; 4])))
}

/// `text` with every control character but the newline, and every format
/// character, written as an escape (`\r`, `\u{1b}`, `\u{202e}`): text from a
/// plugin cannot move the cursor, colour a terminal or reorder what a CI log
/// shows. Newlines are left to [`fence_lines`].
pub fn escape_hidden(text: &str) -> Cow<'_, str> {
    HIDDEN_BUT_NEWLINE.replace_all(text, |m: &regex::Captures<'_>| {
        m[0].chars().flat_map(char::escape_default).collect::<String>()
    })
}

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
    fn hidden_characters_are_escaped_and_newlines_kept() {
        let hostile = "ok\r\u{1b}[2K  ! all keys warmed\u{202e}\u{ad}\u{61c}\u{180e}\u{e0041}\nnext\tline";
        assert_eq!(
            escape_hidden(hostile),
            "ok\\r\\u{1b}[2K  ! all keys warmed\\u{202e}\\u{ad}\\u{61c}\\u{180e}\\u{e0041}\nnext\\tline"
        );
        assert!(matches!(escape_hidden("plain ünïcode ✓\n"), Cow::Borrowed(_)));
        for c in [
            '\n',
            '\r',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{200b}',
            '\u{feff}',
            '\u{ad}',
            '\u{e007f}',
        ] {
            assert!(is_hidden_char(c), "{c:?}");
        }
        assert!(!is_hidden_char('é') && !is_hidden_char(' '));
    }

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
