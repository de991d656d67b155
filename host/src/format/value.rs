//! The value every format converts: what a plugin produced (JSON, else text or
//! bytes) and what a decoder read back, with integers of any size and object
//! keys in the order they were written.
//!
//! The JSON parser is strict (RFC 8259, whole input) and bounded in depth, so a
//! hostile plugin cannot make an encoder recurse without limit.

use super::FormatError;
use std::fmt::Write as _;

/// Deepest nesting of arrays and objects accepted, in parsing and in decoding.
pub const MAX_DEPTH: usize = 128;

/// Most decimal digits of an integer accepted, in a plugin's JSON and in a
/// decoded value (CPython's own default limit): converting between decimal
/// and binary costs the square of the length, so a hostile value of
/// megabytes of digits would otherwise hold a worker for minutes.
pub const MAX_BIGINT_DIGITS: usize = 4300;

/// Most magnitude bytes of a decoded integer (Ruby Bignum, pickle LONG):
/// the binary size of [`MAX_BIGINT_DIGITS`] digits.
pub const MAX_BIGINT_BYTES: usize = 1786;

/// Most a decoder may build from one stored value, in estimated bytes (a
/// value node counts its size, strings and integers their bytes, and every
/// copy a link or memo reference makes counts again): Marshal links and
/// pickle memo references let a few kilobytes stand for terabytes.
pub const MAX_DECODED_BYTES: usize = 256 << 20;

/// What a decoder has left to build of [`MAX_DECODED_BYTES`].
pub struct DecodeBudget {
    left: usize,
    /// The format, for the error.
    format: &'static str,
}

impl DecodeBudget {
    /// A full budget for decoding one value of `format`.
    pub fn new(format: &'static str) -> DecodeBudget {
        DecodeBudget {
            left: MAX_DECODED_BYTES,
            format,
        }
    }

    /// Takes `bytes` from the budget, or fails naming the limit.
    pub fn charge(&mut self, bytes: usize) -> Result<(), FormatError> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            FormatError::new(format!(
                "the {} data expands to more than {} MiB when read (links or references repeat parts of it); not read",
                self.format,
                MAX_DECODED_BYTES >> 20
            ))
        })?;
        Ok(())
    }

    /// Takes one value node and what it holds inline (string, bytes, integer).
    pub fn charge_node(&mut self, value: &Value) -> Result<(), FormatError> {
        let inline = match value {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::BigInt(b) => b.magnitude.len(),
            _ => 0,
        };
        self.charge(std::mem::size_of::<Value>() + inline)
    }
}

/// A JSON-like value, as the frameworks' native encodings hold them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`, Ruby `nil`, PHP `null`, Python `None`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer in the signed 64-bit range.
    Int(i64),
    /// An integer beyond the signed 64-bit range.
    BigInt(BigInt),
    /// A double-precision float.
    Float(f64),
    /// UTF-8 text.
    Str(String),
    /// Bytes that are not UTF-8 text (Ruby binary String, Python `bytes`).
    Bytes(Vec<u8>),
    /// An array / list.
    List(Vec<Value>),
    /// An object / Hash / dict with string keys, in order.
    Map(Vec<(String, Value)>),
}

/// An integer of any size: sign and magnitude (little-endian bytes, no trailing zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigInt {
    /// Whether the integer is below zero.
    pub negative: bool,
    /// The absolute value, least significant byte first.
    pub magnitude: Vec<u8>,
}

impl BigInt {
    /// Parses decimal digits with an optional leading `-`; `None` for
    /// anything else or more than `MAX_BIGINT_DIGITS` digits.
    pub fn from_decimal(text: &str) -> Option<BigInt> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if digits.is_empty() || digits.len() > MAX_BIGINT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Base 2^32 limbs, least significant first, fed nine digits at a time.
        let mut limbs: Vec<u32> = Vec::with_capacity(digits.len() / 9 + 1);
        let head = match digits.len() % 9 {
            0 => 9,
            n => n,
        };
        let (first, rest) = digits.split_at(head);
        for chunk in std::iter::once(first.as_bytes()).chain(rest.as_bytes().chunks(9)) {
            let scale = 10u64.pow(chunk.len() as u32);
            let mut carry = chunk.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * scale + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        let magnitude = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
        Some(BigInt { negative, magnitude }.normalized())
    }

    /// A decoded integer from its sign and magnitude (least significant byte
    /// first); `None` when the magnitude is over `MAX_BIGINT_BYTES`.
    pub fn from_magnitude(negative: bool, magnitude: Vec<u8>) -> Option<BigInt> {
        (magnitude.len() <= MAX_BIGINT_BYTES).then(|| BigInt { negative, magnitude }.normalized())
    }

    /// From an `i128` (decoders widen what they read).
    pub fn from_i128(n: i128) -> BigInt {
        let magnitude = n.unsigned_abs().to_le_bytes().to_vec();
        BigInt {
            negative: n < 0,
            magnitude,
        }
        .normalized()
    }

    /// Drops leading zero bytes; zero is never negative.
    pub fn normalized(mut self) -> BigInt {
        while self.magnitude.last() == Some(&0) {
            self.magnitude.pop();
        }
        if self.magnitude.is_empty() {
            self.negative = false;
        }
        self
    }

    /// The value as an `i64` when it fits.
    pub fn to_i64(&self) -> Option<i64> {
        if self.magnitude.len() > 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes[..self.magnitude.len()].copy_from_slice(&self.magnitude);
        let m = u128::from_le_bytes(bytes);
        let n = if self.negative {
            0i128.checked_sub_unsigned(m)?
        } else {
            i128::try_from(m).ok()?
        };
        i64::try_from(n).ok()
    }

    /// Decimal digits, with `-` when negative.
    pub fn to_decimal(&self) -> String {
        // Base 2^32 limbs, most significant first, divided by 10^9 until zero.
        let mut limbs: Vec<u32> = self
            .magnitude
            .chunks(4)
            .rev()
            .map(|c| {
                let mut b = [0u8; 4];
                b[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(b)
            })
            .collect();
        let mut chunks: Vec<u32> = Vec::new();
        while limbs.iter().any(|&l| l != 0) {
            let mut remainder = 0u64;
            for limb in limbs.iter_mut() {
                let v = (remainder << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                remainder = v % 1_000_000_000;
            }
            chunks.push(remainder as u32);
        }
        let mut out = String::with_capacity(chunks.len() * 9 + 1);
        if self.negative {
            out.push('-');
        }
        match chunks.split_last() {
            None => out.push('0'),
            Some((top, lower)) => {
                let _ = write!(out, "{top}");
                for chunk in lower.iter().rev() {
                    let _ = write!(out, "{chunk:09}");
                }
            }
        }
        out
    }

    /// The nearest `f64` (PHP turns integers beyond its range into floats).
    /// Through the decimal digits: Rust parses them correctly rounded, where
    /// summing the bytes rounds at every step.
    pub fn to_f64(&self) -> f64 {
        self.to_decimal().parse().expect("decimal digits parse as a float")
    }
}

/// An integer value: `Int` when it fits in 64 bits, else `BigInt`.
pub fn integer(n: BigInt) -> Value {
    match n.to_i64() {
        Some(i) => Value::Int(i),
        None => Value::BigInt(n),
    }
}

impl Value {
    /// What a plugin produced: its JSON when the bytes are a JSON document,
    /// else UTF-8 text as a string, else the bytes. JSON nested deeper than
    /// `MAX_DEPTH` is an error rather than a string.
    pub fn from_produced(bytes: &[u8]) -> Result<Value, FormatError> {
        match parse_json(bytes) {
            Ok(v) => Ok(v),
            Err(JsonError::TooDeep) => Err(FormatError::new(format!(
                "the value is JSON nested deeper than {MAX_DEPTH} levels; flatten it"
            ))),
            Err(JsonError::TooLong(digits)) => Err(FormatError::new(format!(
                "the value is JSON holding an integer of {digits} digits, over the {MAX_BIGINT_DIGITS}-digit limit; send it as a string"
            ))),
            Err(JsonError::Invalid) => Ok(match std::str::from_utf8(bytes) {
                Ok(text) => Value::Str(text.to_string()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            }),
        }
    }

    /// Compact JSON text; bytes become a string (invalid UTF-8 replaced by U+FFFD),
    /// non-finite floats `null`.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::BigInt(b) => out.push_str(&b.to_decimal()),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => out.push_str(&n.to_string()),
                None => out.push_str("null"),
            },
            Value::Str(s) => write_json_string(s, out),
            Value::Bytes(b) => write_json_string(&String::from_utf8_lossy(b), out),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
}

/// Why bytes are not a JSON document the encoders accept.
#[derive(Debug, PartialEq)]
enum JsonError {
    /// Not JSON at all (or not one whole document).
    Invalid,
    /// JSON nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An integer of this many digits, over [`MAX_BIGINT_DIGITS`].
    TooLong(usize),
}

fn parse_json(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut p = Parser { bytes, pos: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.pos != bytes.len() {
        return Err(JsonError::Invalid);
    }
    Ok(v)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> Result<(), JsonError> {
        if self.bytes[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(JsonError::Invalid)
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.bytes.get(self.pos).ok_or(JsonError::Invalid)? {
            b'n' => self.eat(b"null").map(|_| Value::Null),
            b't' => self.eat(b"true").map(|_| Value::Bool(true)),
            b'f' => self.eat(b"false").map(|_| Value::Bool(false)),
            b'"' => self.string().map(Value::Str),
            b'[' | b'{' if depth >= MAX_DEPTH => Err(JsonError::TooDeep),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.bytes.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                    return Ok(Value::List(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        _ => return Err(JsonError::Invalid),
                    }
                }
            }
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                self.ws();
                if self.bytes.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                    return Ok(Value::Map(entries));
                }
                loop {
                    self.ws();
                    if self.bytes.get(self.pos) != Some(&b'"') {
                        return Err(JsonError::Invalid);
                    }
                    let key = self.string()?;
                    self.ws();
                    self.eat(b":")?;
                    self.ws();
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    self.ws();
                    match self.bytes.get(self.pos) {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Value::Map(entries));
                        }
                        _ => return Err(JsonError::Invalid),
                    }
                }
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(JsonError::Invalid),
        }
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while matches!(p.bytes.get(p.pos), Some(b'0'..=b'9')) {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.bytes[int_start] == b'0') {
            return Err(JsonError::Invalid);
        }
        let mut float = false;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            float = true;
            if digits(self) == 0 {
                return Err(JsonError::Invalid);
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            float = true;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(JsonError::Invalid);
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| JsonError::Invalid)?;
        if float {
            return text.parse::<f64>().map(Value::Float).map_err(|_| JsonError::Invalid);
        }
        let digits = text.trim_start_matches('-').len();
        if digits > MAX_BIGINT_DIGITS {
            return Err(JsonError::TooLong(digits));
        }
        Ok(integer(BigInt::from_decimal(text).ok_or(JsonError::Invalid)?))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let hex = self.bytes.get(self.pos..self.pos + 4).ok_or(JsonError::Invalid)?;
        let text = std::str::from_utf8(hex).map_err(|_| JsonError::Invalid)?;
        self.pos += 4;
        u32::from_str_radix(text, 16).map_err(|_| JsonError::Invalid)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let b = *self.bytes.get(self.pos).ok_or(JsonError::Invalid)?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| JsonError::Invalid),
                b'\\' => {
                    let e = *self.bytes.get(self.pos).ok_or(JsonError::Invalid)?;
                    self.pos += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                self.eat(b"\\u")?;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::Invalid);
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or(JsonError::Invalid)?
                        }
                        _ => return Err(JsonError::Invalid),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(JsonError::Invalid),
                _ => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_order_and_integers_of_any_size() {
        let v =
            Value::from_produced(br#"{"z":1,"a":[true,null,-2.5e3,"\u00e9\ud83d\ude00"],"big":18446744073709551616}"#)
                .unwrap();
        let Value::Map(entries) = &v else { panic!("{v:?}") };
        assert_eq!(entries[0].0, "z");
        assert_eq!(
            entries[1].1,
            Value::List(vec![
                Value::Bool(true),
                Value::Null,
                Value::Float(-2500.0),
                Value::Str("é😀".into())
            ])
        );
        assert!(matches!(&entries[2].1, Value::BigInt(b) if b.to_decimal() == "18446744073709551616"));
        assert_eq!(
            v.to_json(),
            r#"{"z":1,"a":[true,null,-2500.0,"é😀"],"big":18446744073709551616}"#
        );
        assert_eq!(
            Value::from_produced(b"-9223372036854775808").unwrap(),
            Value::Int(i64::MIN)
        );
        assert!(matches!(Value::from_produced(b"-9223372036854775809").unwrap(), Value::BigInt(b) if b.negative));
    }

    #[test]
    fn non_json_is_text_or_bytes_and_deep_json_is_refused() {
        assert_eq!(Value::from_produced(b"hello").unwrap(), Value::Str("hello".into()));
        assert_eq!(Value::from_produced(b"01").unwrap(), Value::Str("01".into()));
        assert_eq!(
            Value::from_produced(b"{\"a\":1} x").unwrap(),
            Value::Str("{\"a\":1} x".into())
        );
        assert_eq!(Value::from_produced(&[0xff, 0]).unwrap(), Value::Bytes(vec![0xff, 0]));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(Value::from_produced(deep.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("deeper than 128"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(Value::from_produced(ok.as_bytes()).is_ok());
    }

    #[test]
    fn bigint_decimal_round_trip() {
        for s in ["0", "255", "256", "-65536", "123456789012345678901234567890"] {
            assert_eq!(BigInt::from_decimal(s).unwrap().to_decimal(), s);
        }
        assert_eq!(BigInt::from_decimal("256").unwrap().magnitude, vec![0, 1]);
        assert_eq!(BigInt::from_i128(-300).to_decimal(), "-300");
        assert_eq!(BigInt::from_decimal("-0").unwrap().to_i64(), Some(0));
    }

    #[test]
    fn bigint_conversions_agree_with_i128_across_chunk_boundaries() {
        // Powers of ten and their neighbours cross every 9-digit chunk and 4-byte limb edge.
        let mut n: i128 = 1;
        for _ in 0..38 {
            for v in [n - 1, n, n + 1, -n, i128::MAX, i128::MIN + 1] {
                let text = v.to_string();
                let parsed = BigInt::from_decimal(&text).unwrap();
                assert_eq!(parsed, BigInt::from_i128(v), "{text}");
                assert_eq!(parsed.to_decimal(), text);
            }
            n *= 10;
        }
        assert_eq!(BigInt::from_decimal("000000000123").unwrap().to_decimal(), "123");
    }

    #[test]
    fn integers_are_bounded_in_digits_and_bytes() {
        let longest = "9".repeat(MAX_BIGINT_DIGITS);
        let big = BigInt::from_decimal(&longest).unwrap();
        assert!(big.magnitude.len() <= MAX_BIGINT_BYTES, "{}", big.magnitude.len());
        assert_eq!(big.to_decimal(), longest);
        assert!(BigInt::from_decimal(&format!("{longest}9")).is_none());
        assert!(matches!(Value::from_produced(longest.as_bytes()), Ok(Value::BigInt(_))));
        // A hostile plugin's megabyte of digits is refused at once, not parsed
        // for minutes, and never silently cached as a string.
        let err = Value::from_produced(format!("[1,{}]", "7".repeat(1 << 20)).as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("integer of 1048576 digits, over the 4300-digit limit"),
            "{err}"
        );
        assert!(BigInt::from_magnitude(false, vec![1; MAX_BIGINT_BYTES]).is_some());
        assert!(BigInt::from_magnitude(false, vec![1; MAX_BIGINT_BYTES + 1]).is_none());
    }

    #[test]
    fn bigint_to_f64_is_the_nearest_float() {
        // Found by the format_encode fuzz target: summing the bytes gave
        // -9.273232073713709e26, one unit in the last place off.
        let big = BigInt::from_decimal("-927323207371370955169551618").unwrap();
        assert_eq!(big.to_f64(), -9.27323207371371e26);
        assert_eq!(
            BigInt::from_decimal("18446744073709551616").unwrap().to_f64(),
            2f64.powi(64)
        );
        assert_eq!(BigInt::from_decimal(&"9".repeat(400)).unwrap().to_f64(), f64::INFINITY);
    }
}
