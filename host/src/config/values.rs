//! Value types of the config that parse themselves, so a bad value is reported
//! by the TOML parser with its line and column.

use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A size as written in TOML: a bare integer or a string with a unit.
enum RawSize {
    Int(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"64MiB\" or \"50%\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
                u64::try_from(v)
                    .map(RawSize::Int)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes: an integer, or a string such as `"64MiB"`, `"512KiB"`, `"1GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"64MiB"`, `"1.5GiB"`, `"100MB"`, `"4096"`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let num: f64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a size (try 4096, \"64MiB\" or \"1GiB\")"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {text:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
                ))
            }
        };
        Ok(ByteSize((num * mult as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawSize::deserialize(d)? {
            RawSize::Int(n) => Ok(ByteSize(n)),
            RawSize::Text(s) => ByteSize::parse(&s).map_err(de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if self.0 >= 1 << 30 {
            write!(f, "{:.1} GiB", b / (1u64 << 30) as f64)
        } else if self.0 >= 1 << 20 {
            write!(f, "{:.1} MiB", b / (1u64 << 20) as f64)
        } else if self.0 >= 1 << 10 {
            write!(f, "{:.1} KiB", b / 1024.0)
        } else {
            write!(f, "{} B", self.0)
        }
    }
}

/// The memory budget: a percentage of available memory (cgroup limit respected) or a fixed size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryBudget {
    /// Percentage of the memory available to this process.
    Percent(f64),
    /// A fixed number of bytes.
    Bytes(ByteSize),
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget::Percent(50.0)
    }
}

impl MemoryBudget {
    /// Parses `"50%"` or a size such as `"512MiB"`.
    pub fn parse(text: &str) -> Result<MemoryBudget, String> {
        match text.trim().strip_suffix('%') {
            Some(pct) => match pct.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(MemoryBudget::Percent(p)),
                _ => Err(format!(
                    "memory_budget {text:?}: a percentage must be above 0% and at most 100%"
                )),
            },
            None => ByteSize::parse(text).map(MemoryBudget::Bytes),
        }
    }
}

impl<'de> Deserialize<'de> for MemoryBudget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RawSize::deserialize(d)? {
            RawSize::Int(n) => Ok(MemoryBudget::Bytes(ByteSize(n))),
            RawSize::Text(s) => MemoryBudget::parse(&s).map_err(de::Error::custom),
        }
    }
}

/// How an existing key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WritePolicy {
    /// Write only absent keys; never overwrite, never touch an existing TTL (Redis `SET NX`).
    #[default]
    IfMissing,
    /// Write absent keys, and rewrite keys whose remaining TTL is under the threshold.
    RefreshIfTtlBelow(Duration),
    /// Always overwrite.
    Always,
}

impl WritePolicy {
    /// Parses `"if-missing"`, `"always"` or `"refresh-if-ttl-below=5m"`.
    pub fn parse(text: &str) -> Result<WritePolicy, String> {
        match text.trim() {
            "if-missing" => Ok(WritePolicy::IfMissing),
            "always" => Ok(WritePolicy::Always),
            other => match other.strip_prefix("refresh-if-ttl-below") {
                Some(rest) => {
                    let d = rest.trim_start().trim_start_matches('=').trim();
                    humantime::parse_duration(d)
                        .map(WritePolicy::RefreshIfTtlBelow)
                        .map_err(|e| format!("bad threshold {d:?} in write_policy {text:?}: {e} (try \"refresh-if-ttl-below=5m\")"))
                }
                None => Err(format!(
                    "unknown write_policy {text:?}: use \"if-missing\", \"always\" or \"refresh-if-ttl-below=<duration>\""
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for WritePolicy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        WritePolicy::parse(&s).map_err(de::Error::custom)
    }
}

impl fmt::Display for WritePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WritePolicy::IfMissing => f.write_str("if-missing"),
            WritePolicy::Always => f.write_str("always"),
            WritePolicy::RefreshIfTtlBelow(d) => {
                write!(f, "refresh-if-ttl-below={}", humantime::format_duration(*d))
            }
        }
    }
}

/// A compiled key regex.
#[derive(Debug, Clone)]
pub struct KeyRegex(pub regex::Regex);

impl<'de> Deserialize<'de> for KeyRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::Regex::new(&s)
            .map(KeyRegex)
            .map_err(|e| de::Error::custom(format!("invalid key_regex: {e}")))
    }
}

/// A cron expression (5 fields, or 6 with seconds first; `@hourly` and friends too).
#[derive(Debug, Clone)]
pub struct CronSchedule(pub croner::Cron);

impl CronSchedule {
    /// Parses a cron expression, saying what is wrong with it.
    pub fn parse(s: &str) -> Result<CronSchedule, String> {
        // croner takes a field of only commas as the empty set: a schedule that
        // never fires, found out only by searching up to year 5000 on every
        // evaluation (about a second of CPU each). Empty list items are refused.
        if let Some((i, field)) = s
            .split_whitespace()
            .enumerate()
            .find(|(_, f)| f.split(',').any(str::is_empty))
        {
            return Err(format!(
                "invalid cron expression {s:?}: field {} ({field:?}) has an empty list item; separate values with single commas, e.g. \"0,30\"",
                i + 1
            ));
        }
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(s)
            .map(CronSchedule)
            .map_err(|e| format!("invalid cron expression {s:?}: {e} (use 5 fields `min hour day month weekday`, e.g. \"*/15 * * * *\", or 6 with seconds first)"))
    }

    /// The expression as written.
    pub fn pattern(&self) -> &str {
        self.0.as_str()
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CronSchedule::parse(&s).map_err(de::Error::custom)
    }
}

/// `[jobs] keep`: how much run history is kept; older finished runs are
/// deleted with their plugin rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The newest this many runs (`keep = 10000`), 1 ..= [`Keep::MAX_RUNS`].
    Runs(u64),
    /// Runs started less than this long ago (`keep = "30d"`), [`Keep::MIN_AGE`] ..= [`Keep::MAX_AGE`].
    For(Duration),
    /// Everything, for good (`keep = "all"`).
    All,
}

impl Keep {
    /// Most runs `keep` may name.
    pub const MAX_RUNS: u64 = 1_000_000_000;
    /// Shortest age `keep` may name.
    pub const MIN_AGE: Duration = Duration::from_secs(60);
    /// Longest age `keep` may name (100 years).
    pub const MAX_AGE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

    /// Parses a count of runs, an age such as `"30d"`, or `"all"`.
    pub fn parse(text: &str) -> Result<Keep, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Keep::All);
        }
        let age = humantime::parse_duration(text).map_err(|e| {
            format!("keep = {text:?} is not an age ({e}); use a count of runs (keep = 10000), an age (keep = \"30d\") or \"all\"")
        })?;
        if !(Keep::MIN_AGE..=Keep::MAX_AGE).contains(&age) {
            return Err(format!(
                "keep = {text:?} is outside 1 minute ..= 100 years; a typical age is \"30d\""
            ));
        }
        Ok(Keep::For(age))
    }

    /// Checks a count of runs.
    pub fn runs(n: i64) -> Result<Keep, String> {
        match u64::try_from(n) {
            Ok(n @ 1..=Keep::MAX_RUNS) => Ok(Keep::Runs(n)),
            _ => Err(format!(
                "keep = {n} is outside 1 ..= {}: it counts the runs kept (to keep no history set enabled = false; to keep all, keep = \"all\")",
                Keep::MAX_RUNS
            )),
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keep::Runs(n) => write!(f, "the newest {n} runs"),
            Keep::For(age) => write!(f, "runs of the last {}", humantime::format_duration(*age)),
            Keep::All => f.write_str("all runs"),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Keep;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count of runs (10000), an age (\"30d\") or \"all\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Keep, E> {
                Keep::runs(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Keep, E> {
                Keep::runs(i64::try_from(v).unwrap_or(i64::MAX)).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Keep, E> {
                Keep::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_is_a_count_an_age_or_all() {
        assert_eq!(Keep::runs(1000).unwrap(), Keep::Runs(1000));
        assert_eq!(Keep::parse("30d").unwrap(), Keep::For(Duration::from_secs(30 * 86400)));
        assert_eq!(Keep::parse("all").unwrap(), Keep::All);
        for bad in [0, -5, 1_000_000_001] {
            assert!(
                Keep::runs(bad).unwrap_err().contains("outside 1 ..= 1000000000"),
                "{bad}"
            );
        }
        assert!(Keep::parse("30s").unwrap_err().contains("outside 1 minute"));
        assert!(Keep::parse("200y").unwrap_err().contains("100 years"));
        assert!(Keep::parse("forever").unwrap_err().contains("keep = 10000"));
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(ByteSize::parse("64MiB").unwrap(), ByteSize(64 << 20));
        assert_eq!(ByteSize::parse("1.5 KiB").unwrap(), ByteSize(1536));
        assert_eq!(ByteSize::parse("100MB").unwrap(), ByteSize(100_000_000));
        assert_eq!(ByteSize::parse("4096").unwrap(), ByteSize(4096));
        assert!(ByteSize::parse("64 parsecs").unwrap_err().contains("parsecs"));
        assert!(ByteSize::parse("lots").is_err());
    }

    #[test]
    fn memory_budgets_parse() {
        assert_eq!(MemoryBudget::parse("50%").unwrap(), MemoryBudget::Percent(50.0));
        assert_eq!(
            MemoryBudget::parse("1GiB").unwrap(),
            MemoryBudget::Bytes(ByteSize(1 << 30))
        );
        assert!(MemoryBudget::parse("150%").is_err());
    }

    #[test]
    fn write_policies_parse() {
        assert_eq!(WritePolicy::parse("if-missing").unwrap(), WritePolicy::IfMissing);
        assert_eq!(WritePolicy::parse("always").unwrap(), WritePolicy::Always);
        assert_eq!(
            WritePolicy::parse("refresh-if-ttl-below=5m").unwrap(),
            WritePolicy::RefreshIfTtlBelow(Duration::from_secs(300))
        );
        assert!(WritePolicy::parse("refresh-if-ttl-below=soon").is_err());
        assert!(WritePolicy::parse("overwrite").unwrap_err().contains("if-missing"));
    }

    #[test]
    fn cron_schedules_parse() {
        assert_eq!(CronSchedule::parse("*/15 * * * *").unwrap().pattern(), "*/15 * * * *");
        assert!(CronSchedule::parse("*/5 * * * * *").is_ok());
        assert!(CronSchedule::parse("@hourly").is_ok());
        assert!(CronSchedule::parse("61 * * * *")
            .unwrap_err()
            .contains("invalid cron expression"));
        assert_eq!(CronSchedule::parse("0,30 * * * *").unwrap().pattern(), "0,30 * * * *");
    }

    #[test]
    fn empty_cron_list_items_are_refused() {
        // `,` as a field is an empty set to croner: it never fires, and every
        // next-fire search runs to croner's year limit (the fuzzer's timeout).
        for bad in [", 001 * * MON-FRI", "1,,2 * * * *", ",1 * * * *", "0 1, * * *"] {
            let err = CronSchedule::parse(bad).unwrap_err();
            assert!(err.contains("has an empty list item"), "{bad}: {err}");
        }
    }
}
