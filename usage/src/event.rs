//! Access events and the offline trace formats.
//!
//! An [`AccessEvent`] is one cache lookup made by the application: when
//! (`ts_ms`, milliseconds since the Unix epoch), which key, whether it hit, and
//! optionally how long the lookup took (`latency_ms`; for a miss, the time to
//! load the value, which is what warming saves).
//!
//! Traces are files of events, one per line, in either of two formats:
//!
//! - CSV with the header `ts_ms,key,hit` (hit is `1` or `0`) and an optional
//!   fourth column `latency_ms` (which may be empty on any line). A key that
//!   contains a comma, a quote or a carriage return is quoted the CSV way
//!   (`"a,b"`, with `""` for a quote); one with a line break cannot be in a
//!   CSV trace (the writer refuses it: JSON lines carry any key).
//! - JSON lines: one object per line with the same field names
//!   (`{"ts_ms":1704067200000,"key":"user:1","hit":false,"latency_ms":41.5}`);
//!   `hit` is a boolean, or `1`/`0`.
//!
//! [`TraceFormat::from_path`] picks the format from the extension (`.csv`,
//! `.jsonl`, `.ndjson`); [`TraceReader`] sniffs the content when the extension
//! says nothing. Blank lines are skipped. Errors name the file, the line and
//! what was wrong: `trace.csv: line 17: hit must be 0 or 1, got "yes"`.

use anyhow::{anyhow, bail, Context, Result};
use serde::{de, Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// What a live event must meet before it is tracked: a key of bounded size, a
/// time near the server's clock and a finite, bounded latency. (Offline traces
/// are replayed as they were recorded and are not held to a clock.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventBounds {
    /// Longest key accepted, in bytes (an empty key is never accepted).
    pub max_key_bytes: usize,
    /// The server's clock, ms since the Unix epoch.
    pub now_ms: u64,
    /// How far into the future an event may be (clock skew between hosts).
    pub max_future_ms: u64,
    /// How far into the past an event may be (the longest tracked window).
    pub max_age_ms: u64,
    /// Largest `latency_ms` accepted.
    pub max_latency_ms: f64,
}

impl AccessEvent {
    /// Checks the event against `bounds`, saying which field is wrong, its limit and the fix.
    pub fn check(&self, bounds: &EventBounds) -> std::result::Result<(), String> {
        if self.key.is_empty() || self.key.len() > bounds.max_key_bytes {
            return Err(format!(
                "key is {} bytes long; it must be 1 to {} bytes",
                self.key.len(),
                bounds.max_key_bytes
            ));
        }
        let latest = bounds.now_ms.saturating_add(bounds.max_future_ms);
        let earliest = bounds.now_ms.saturating_sub(bounds.max_age_ms);
        if self.ts_ms > latest {
            return Err(format!(
                "ts_ms {} is {} ms ahead of the server clock ({}); at most {} ms of skew is accepted: send milliseconds since the Unix epoch from a synchronised clock",
                self.ts_ms,
                self.ts_ms - bounds.now_ms,
                bounds.now_ms,
                bounds.max_future_ms
            ));
        }
        if self.ts_ms < earliest {
            return Err(format!(
                "ts_ms {} is older than the longest tracked window ({} ms before the server clock {}): send events as they happen (milliseconds, not seconds)",
                self.ts_ms, bounds.max_age_ms, bounds.now_ms
            ));
        }
        if let Some(latency) = self.latency_ms {
            if !(latency.is_finite() && (0.0..=bounds.max_latency_ms).contains(&latency)) {
                return Err(format!(
                    "latency_ms {latency} must be a finite number from 0 to {}; leave it out when unknown",
                    bounds.max_latency_ms
                ));
            }
        }
        Ok(())
    }
}

/// One cache lookup seen by the application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEvent {
    /// When the lookup happened, in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// The cache key looked up.
    pub key: String,
    /// Whether the cache had the key.
    #[serde(deserialize_with = "hit_flag")]
    pub hit: bool,
    /// How long the lookup took, in milliseconds (for a miss: loading the value), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// Accepts `true`/`false` and `1`/`0` for `hit`.
fn hit_flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Flag;
    impl de::Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("true, false, 1 or 0")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::custom(format_args!("hit must be true, false, 0 or 1, got {v}"))),
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            Err(E::custom(format_args!("hit must be true, false, 0 or 1, got {v}")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            Err(E::custom(format_args!("hit must be true, false, 0 or 1, got {v:?}")))
        }
    }
    deserializer.deserialize_any(Flag)
}

/// The two trace file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceFormat {
    /// CSV with the header `ts_ms,key,hit[,latency_ms]`.
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl TraceFormat {
    /// The format named by a file's extension: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> Option<TraceFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(TraceFormat::Csv),
            "jsonl" | "ndjson" => Some(TraceFormat::JsonLines),
            _ => None,
        }
    }
}

/// The CSV columns, in order; the last one is optional.
const CSV_COLUMNS: [&str; 4] = ["ts_ms", "key", "hit", "latency_ms"];

/// Streams [`AccessEvent`]s out of a trace, one line at a time.
///
/// Iterating yields `Err` for a line that does not parse (the message names
/// the trace and the line); the iterator goes on with the next line.
pub struct TraceReader<R> {
    input: R,
    format: TraceFormat,
    name: String,
    line: usize,
    buf: String,
    /// Number of CSV columns announced by the header (3 or 4); 0 until it is read.
    columns: usize,
    /// When set, an event earlier than the previous one is an error.
    sorted: bool,
    last_ts: u64,
}

impl TraceReader<BufReader<File>> {
    /// Opens a trace file; the format comes from the extension, or is sniffed
    /// from the first character (`{` means JSON lines).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).with_context(|| format!("cannot open the trace {}", path.display()))?;
        TraceReader::new(
            BufReader::with_capacity(1 << 16, file),
            TraceFormat::from_path(path),
            &path.display().to_string(),
        )
    }
}

impl<R: BufRead> TraceReader<R> {
    /// Reads a trace from `input`; `name` is used in error messages. With no
    /// `format`, the first non-blank character decides: `{` is JSON lines,
    /// anything else CSV.
    pub fn new(mut input: R, format: Option<TraceFormat>, name: &str) -> Result<Self> {
        let format = match format {
            Some(format) => format,
            None => {
                let start = input
                    .fill_buf()
                    .with_context(|| format!("cannot read the trace {name}"))?;
                match start.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b'{') => TraceFormat::JsonLines,
                    _ => TraceFormat::Csv,
                }
            }
        };
        Ok(TraceReader {
            input,
            format,
            name: name.to_string(),
            line: 0,
            buf: String::new(),
            columns: 0,
            sorted: false,
            last_ts: 0,
        })
    }

    /// Makes an event earlier than the one before it an error (the simulator
    /// replays traces in time order).
    pub fn require_sorted(mut self) -> Self {
        self.sorted = true;
        self
    }

    /// The trace's format.
    pub fn format(&self) -> TraceFormat {
        self.format
    }

    /// The number of the line read last (1-based; 0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }

    fn error(&self, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("{}: line {}: {what}", self.name, self.line)
    }

    fn parse_line(&mut self) -> Result<Option<AccessEvent>> {
        let text = self.buf.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            return Ok(None);
        }
        let event = match self.format {
            TraceFormat::JsonLines => serde_json::from_str::<AccessEvent>(text).map_err(|e| {
                let message = e.to_string();
                let suffix = format!(" at line {} column {}", e.line(), e.column());
                let message = message.strip_suffix(&suffix).unwrap_or(&message);
                self.error(format_args!("{message} (column {})", e.column()))
            })?,
            TraceFormat::Csv if self.columns == 0 => {
                let header: Vec<&str> = text.split(',').map(str::trim).collect();
                if header.len() < 3 || header.len() > 4 || header[..] != CSV_COLUMNS[..header.len()] {
                    bail!(self.error(format_args!(
                        "expected the header ts_ms,key,hit (optionally ,latency_ms), got {text:?}"
                    )));
                }
                self.columns = header.len();
                return Ok(None);
            }
            TraceFormat::Csv => parse_csv_event(text, self.columns).map_err(|what| self.error(what))?,
        };
        if event.key.is_empty() {
            bail!(self.error("key is empty"));
        }
        if let Some(latency) = event.latency_ms {
            if !(latency.is_finite() && latency >= 0.0) {
                bail!(self.error(format_args!(
                    "latency_ms must be a number of milliseconds >= 0, got {latency}"
                )));
            }
        }
        if self.sorted && event.ts_ms < self.last_ts {
            bail!(self.error(format_args!(
                "ts_ms {} is earlier than the previous event's {}: sort the trace by ts_ms",
                event.ts_ms, self.last_ts
            )));
        }
        self.last_ts = event.ts_ms;
        Ok(Some(event))
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<AccessEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(self.error(format_args!("cannot read: {e}")))),
            }
            match self.parse_line() {
                Ok(Some(event)) => return Some(Ok(event)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Parses one CSV data line with `columns` columns.
fn parse_csv_event(line: &str, columns: usize) -> Result<AccessEvent, String> {
    let fields = split_csv(line)?;
    if fields.len() != columns {
        return Err(format!(
            "expected {columns} fields ({}), got {}",
            CSV_COLUMNS[..columns].join(","),
            fields.len()
        ));
    }
    let ts = fields[0].trim();
    let ts_ms = ts
        .parse::<u64>()
        .map_err(|_| format!("ts_ms must be a whole number of milliseconds, got {ts:?}"))?;
    let hit = match fields[2].trim() {
        "1" => true,
        "0" => false,
        other => return Err(format!("hit must be 0 or 1, got {other:?}")),
    };
    let latency_ms = match fields.get(3).map(|f| f.trim()) {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<f64>()
                .map_err(|_| format!("latency_ms must be a number of milliseconds, got {text:?}"))?,
        ),
    };
    Ok(AccessEvent {
        ts_ms,
        key: fields[1].clone().into_owned(),
        hit,
        latency_ms,
    })
}

/// Splits a CSV line into fields, undoing `"…"` quoting (`""` is a quote).
fn split_csv(line: &str) -> Result<Vec<Cow<'_, str>>, String> {
    if !line.contains('"') {
        return Ok(line.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let after = loop {
                match chars.next() {
                    None => return Err("a quoted field is not closed".to_string()),
                    Some((i, '"')) => {
                        if quoted[i + 1..].starts_with('"') {
                            value.push('"');
                            chars.next();
                        } else {
                            break &quoted[i + 1..];
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            };
            fields.push(Cow::Owned(value));
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.is_empty() => return Ok(fields),
                None => return Err(format!("unexpected text after a quoted field: {after:?}")),
            }
        } else {
            match rest.split_once(',') {
                Some((field, next)) => {
                    fields.push(Cow::Borrowed(field));
                    rest = next;
                }
                None => {
                    fields.push(Cow::Borrowed(rest));
                    return Ok(fields);
                }
            }
        }
    }
}

/// Writes [`AccessEvent`]s as a trace (CSV always with the `latency_ms` column).
pub struct TraceWriter<W: Write> {
    out: W,
    format: TraceFormat,
}

impl TraceWriter<BufWriter<File>> {
    /// Creates (or truncates) a trace file whose extension names the format.
    pub fn create(path: &Path) -> Result<Self> {
        let format = TraceFormat::from_path(path).ok_or_else(|| {
            anyhow!(
                "cannot tell the trace format of {}: name it .csv, .jsonl or .ndjson",
                path.display()
            )
        })?;
        let file = File::create(path).with_context(|| format!("cannot create the trace {}", path.display()))?;
        TraceWriter::new(BufWriter::with_capacity(1 << 16, file), format)
    }
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out` (writes the CSV header).
    pub fn new(mut out: W, format: TraceFormat) -> Result<Self> {
        if format == TraceFormat::Csv {
            writeln!(out, "{}", CSV_COLUMNS.join(","))?;
        }
        Ok(TraceWriter { out, format })
    }

    /// Appends one event.
    pub fn write(&mut self, event: &AccessEvent) -> Result<()> {
        match self.format {
            TraceFormat::JsonLines => {
                serde_json::to_writer(&mut self.out, event)?;
                self.out.write_all(b"\n")?;
            }
            TraceFormat::Csv => {
                // The reader reads a line at a time: a key spanning lines would not read back.
                if event.key.contains('\n') {
                    bail!(
                        "key {:?} holds a line break, which a CSV trace cannot carry; write a JSON lines trace (.jsonl)",
                        event.key
                    );
                }
                let key: Cow<str> = if event.key.contains([',', '"', '\r']) {
                    Cow::Owned(format!("\"{}\"", event.key.replace('"', "\"\"")))
                } else {
                    Cow::Borrowed(&event.key)
                };
                write!(self.out, "{},{key},{}", event.ts_ms, u8::from(event.hit))?;
                match event.latency_ms {
                    Some(latency) => writeln!(self.out, ",{latency}")?,
                    None => writeln!(self.out, ",")?,
                }
            }
        }
        Ok(())
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, format: Option<TraceFormat>) -> Vec<Result<AccessEvent>> {
        TraceReader::new(text.as_bytes(), format, "trace").unwrap().collect()
    }

    #[test]
    fn live_events_are_held_to_the_clock_and_to_finite_latencies() {
        let bounds = EventBounds {
            max_key_bytes: 16,
            now_ms: 1_700_000_000_000,
            max_future_ms: 300_000,
            max_age_ms: 86_400_000,
            max_latency_ms: 3_600_000.0,
        };
        let at = |ts_ms, latency_ms| event(ts_ms, "k", true, latency_ms).check(&bounds);
        assert!(at(bounds.now_ms, Some(12.5)).is_ok());
        assert!(at(bounds.now_ms + 300_000, None).is_ok());
        assert!(at(bounds.now_ms - 86_400_000, Some(0.0)).is_ok());
        let year_2100 = 4_102_444_800_000;
        for (ts, latency, word) in [
            (year_2100, None, "ahead"),
            (u64::MAX, None, "ahead"),
            (bounds.now_ms - 86_400_001, None, "older"),
            (0, None, "older"),
            (bounds.now_ms, Some(1e308), "latency_ms"),
            (bounds.now_ms, Some(f64::INFINITY), "latency_ms"),
            (bounds.now_ms, Some(f64::NAN), "latency_ms"),
            (bounds.now_ms, Some(-1.0), "latency_ms"),
        ] {
            let err = at(ts, latency).unwrap_err();
            assert!(err.contains(word), "{ts} {latency:?}: {err}");
        }
        let key = |key: &str| event(bounds.now_ms, key, true, None).check(&bounds);
        assert!(key(&"k".repeat(16)).is_ok());
        for bad in ["", &"k".repeat(17)] {
            assert!(key(bad).unwrap_err().contains("must be 1 to 16 bytes"), "{bad:?}");
        }
    }

    fn event(ts_ms: u64, key: &str, hit: bool, latency_ms: Option<f64>) -> AccessEvent {
        AccessEvent {
            ts_ms,
            key: key.to_string(),
            hit,
            latency_ms,
        }
    }

    #[test]
    fn csv_with_and_without_latency() {
        let events: Vec<_> = read("ts_ms,key,hit\n1,a,1\n\n2,b:c,0\n", None)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(events, vec![event(1, "a", true, None), event(2, "b:c", false, None)]);

        let events: Vec<_> = read(
            "ts_ms,key,hit,latency_ms\r\n1,a,1,\r\n2,\"x,\"\"y\"\"\",0,12.5\r\n",
            None,
        )
        .into_iter()
        .map(Result::unwrap)
        .collect();
        assert_eq!(
            events,
            vec![event(1, "a", true, None), event(2, "x,\"y\"", false, Some(12.5))]
        );
    }

    #[test]
    fn json_lines_are_sniffed_and_accept_numeric_hits() {
        let text = "{\"ts_ms\":5,\"key\":\"k\",\"hit\":true}\n{\"ts_ms\":6,\"key\":\"k\",\"hit\":0,\"latency_ms\":3}\n";
        let reader = TraceReader::new(text.as_bytes(), None, "t").unwrap();
        assert_eq!(reader.format(), TraceFormat::JsonLines);
        let events: Vec<_> = reader.map(Result::unwrap).collect();
        assert_eq!(events, vec![event(5, "k", true, None), event(6, "k", false, Some(3.0))]);
    }

    #[test]
    fn errors_name_the_trace_the_line_and_the_problem() {
        let errors: Vec<String> = read("ts_ms,key,hit\n1,a,1\n2,b,yes\n3,c\nx,d,0\n4,,1\n", None)
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        assert_eq!(
            errors,
            vec![
                "trace: line 3: hit must be 0 or 1, got \"yes\"",
                "trace: line 4: expected 3 fields (ts_ms,key,hit), got 2",
                "trace: line 5: ts_ms must be a whole number of milliseconds, got \"x\"",
                "trace: line 6: key is empty",
            ]
        );
        let header = read("time,key,hit\n", None);
        assert!(header[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .starts_with("trace: line 1: expected the header"));

        let json = read(
            "{\"ts_ms\":1,\"key\":\"a\",\"hit\":\"yes\"}\n",
            Some(TraceFormat::JsonLines),
        );
        let message = json[0].as_ref().unwrap_err().to_string();
        assert!(
            message.starts_with("trace: line 1: hit must be true, false, 0 or 1, got \"yes\""),
            "{message}"
        );
        let missing = read("{\"ts_ms\":1,\"hit\":true}\n", Some(TraceFormat::JsonLines));
        assert!(missing[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("missing field `key`"));
    }

    #[test]
    fn sorted_traces_reject_time_going_backwards() {
        let reader = TraceReader::new("ts_ms,key,hit\n5,a,1\n4,a,1\n".as_bytes(), None, "t")
            .unwrap()
            .require_sorted();
        let results: Vec<_> = reader.collect();
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().unwrap_err().to_string(),
            "t: line 3: ts_ms 4 is earlier than the previous event's 5: sort the trace by ts_ms"
        );
    }

    #[test]
    fn written_traces_read_back_identically_in_both_formats() {
        let events = vec![
            event(1, "plain", true, None),
            event(2, "with,comma", false, Some(41.5)),
            event(3, "with\"quote", false, Some(0.25)),
        ];
        for format in [TraceFormat::Csv, TraceFormat::JsonLines] {
            let mut writer = TraceWriter::new(Vec::new(), format).unwrap();
            for e in &events {
                writer.write(e).unwrap();
            }
            let bytes = writer.finish().unwrap();
            let back: Vec<_> = TraceReader::new(&bytes[..], None, "t")
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(back, events, "{format:?}");
        }
        // Found by the `events` fuzz target: a key with a line break, quoted,
        // was written to CSV and could not be read back.
        let broken = event(4, "k\u{e9}\n", true, None);
        let mut csv = TraceWriter::new(Vec::new(), TraceFormat::Csv).unwrap();
        assert!(csv.write(&broken).unwrap_err().to_string().contains("JSON lines"));
        let mut jsonl = TraceWriter::new(Vec::new(), TraceFormat::JsonLines).unwrap();
        jsonl.write(&broken).unwrap();
        let bytes = jsonl.finish().unwrap();
        let back: Vec<_> = TraceReader::new(&bytes[..], None, "t")
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back, [broken]);
    }

    #[test]
    fn the_extension_names_the_format() {
        assert_eq!(TraceFormat::from_path(Path::new("a.CSV")), Some(TraceFormat::Csv));
        assert_eq!(
            TraceFormat::from_path(Path::new("a.ndjson")),
            Some(TraceFormat::JsonLines)
        );
        assert_eq!(TraceFormat::from_path(Path::new("a.txt")), None);
    }
}
