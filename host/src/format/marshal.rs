//! Ruby `Marshal` (format 4.8) for the values Rails caches: nil, true, false,
//! Integer (Fixnum and Bignum), Float, String (UTF-8 or binary), Array, Hash,
//! and the `ActiveSupport::Cache::Entry` object of cache_format_version 6.1.
//!
//! Written from Ruby's `marshal.c` (w_object, w_long, w_float) and checked
//! byte for byte against `Marshal.dump` of Ruby 3.1 (see the tests).

use super::value::{integer, BigInt, DecodeBudget, Value, MAX_BIGINT_BYTES, MAX_DEPTH};
use super::FormatError;

const HEADER: [u8; 2] = [4, 8];
/// Fixnums are written as `i` only within 31 bits; beyond, as a Bignum (`l`).
const FIXNUM: std::ops::Range<i64> = -(1 << 30)..(1 << 30);

/// A Ruby object the caches hold: a plain value, or an object with instance variables.
#[derive(Debug, Clone, PartialEq)]
pub enum Ruby {
    /// nil, true, false, Integer, Float, String, Array, Hash of those.
    Value(Value),
    /// An object of a named class and its instance variables (`@name` → value).
    Object(String, Vec<(String, Ruby)>),
}

/// An instance variable of [`Writer::object`]: its name and what writes its value.
pub type Ivar<'a> = (&'a str, &'a dyn Fn(&mut Writer));

/// A Marshal stream under construction (symbols are written once, then linked).
pub struct Writer {
    out: Vec<u8>,
    symbols: Vec<String>,
}

impl Writer {
    /// A stream with the 4.8 header.
    pub fn new() -> Writer {
        Writer {
            out: HEADER.to_vec(),
            symbols: Vec::new(),
        }
    }

    /// The finished bytes.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }

    /// `w_long`: Ruby's compact integer for lengths and Fixnums.
    fn long(&mut self, n: i64) {
        match n {
            0 => self.out.push(0),
            1..=122 => self.out.push((n + 5) as u8),
            -123..=-1 => self.out.push(((n - 5) & 0xff) as u8),
            _ => {
                let bytes = n.to_le_bytes();
                let len = (1..=8)
                    .find(|&i| {
                        let rest = n >> (8 * i);
                        rest == 0 && n > 0 || rest == -1 && n < 0
                    })
                    .unwrap_or(8);
                self.out.push(if n > 0 { len as u8 } else { (-(len as i8)) as u8 });
                self.out.extend_from_slice(&bytes[..len]);
            }
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.long(b.len() as i64);
        self.out.extend_from_slice(b);
    }

    /// A Symbol: its name the first time, a link (`;`) after.
    pub fn symbol(&mut self, name: &str) {
        if let Some(i) = self.symbols.iter().position(|s| s == name) {
            self.out.push(b';');
            self.long(i as i64);
        } else {
            self.out.push(b':');
            self.bytes(name.as_bytes());
            self.symbols.push(name.to_string());
        }
    }

    /// A Float as `marshal.c` writes it: shortest round-trip digits, exponent
    /// form when the point is outside the digits.
    pub fn float(&mut self, f: f64) {
        self.out.push(b'f');
        let repr = ruby_float(f);
        self.bytes(repr.as_bytes());
    }

    /// A String: UTF-8 text carries the `E` (UTF-8) encoding flag, bytes are binary.
    pub fn string(&mut self, b: &[u8], utf8: bool) {
        if utf8 {
            self.out.push(b'I');
        }
        self.out.push(b'"');
        self.bytes(b);
        if utf8 {
            self.long(1);
            self.symbol("E");
            self.out.push(b'T');
        }
    }

    fn bignum(&mut self, b: &BigInt) {
        self.out.push(b'l');
        self.out.push(if b.negative { b'-' } else { b'+' });
        let mut magnitude = b.magnitude.clone();
        if magnitude.len() % 2 == 1 {
            magnitude.push(0);
        }
        self.long((magnitude.len() / 2) as i64);
        self.out.extend_from_slice(&magnitude);
    }

    /// Any value.
    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.out.push(b'0'),
            Value::Bool(true) => self.out.push(b'T'),
            Value::Bool(false) => self.out.push(b'F'),
            Value::Int(i) if FIXNUM.contains(i) => {
                self.out.push(b'i');
                self.long(*i);
            }
            Value::Int(i) => self.bignum(&BigInt::from_i128(i128::from(*i))),
            Value::BigInt(b) => self.bignum(b),
            Value::Float(f) => self.float(*f),
            Value::Str(s) => self.string(s.as_bytes(), true),
            Value::Bytes(b) => self.string(b, false),
            Value::List(items) => {
                self.out.push(b'[');
                self.long(items.len() as i64);
                for item in items {
                    self.value(item);
                }
            }
            Value::Map(entries) => {
                self.out.push(b'{');
                self.long(entries.len() as i64);
                for (k, v) in entries {
                    self.string(k.as_bytes(), true);
                    self.value(v);
                }
            }
        }
    }

    /// An object of `class` with instance variables, in order.
    pub fn object(&mut self, class: &str, ivars: &[Ivar<'_>]) {
        self.out.push(b'o');
        self.symbol(class);
        self.long(ivars.len() as i64);
        for (name, write) in ivars {
            self.symbol(name);
            write(self);
        }
    }
}

/// `Marshal.dump(value)`.
pub fn dump(v: &Value) -> Vec<u8> {
    let mut w = Writer::new();
    w.value(v);
    w.finish()
}

/// Ruby's Float repr in Marshal (`w_float`).
fn ruby_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let (negative, digits, decpt) = shortest_digits(f);
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let n = digits.len() as i32;
    if decpt < -3 || decpt > n {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!("e{}", decpt - 1));
    } else if decpt > 0 {
        out.push_str(&digits[..decpt as usize]);
        if n > decpt {
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str("0.");
        out.push_str(&"0".repeat((-decpt) as usize));
        out.push_str(&digits);
    }
    out
}

/// The shortest round-trip digits of a finite non-zero float and the decimal
/// point's position (`dtoa` mode 0: value = 0.DIGITS × 10^decpt).
pub fn shortest_digits(f: f64) -> (bool, String, i32) {
    let e = format!("{:e}", f.abs());
    let (mantissa, exp) = e.split_once('e').expect("`{:e}` has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    (f < 0.0, digits, exp.parse::<i32>().expect("exponent is an integer") + 1)
}

/// `Marshal.load` of the values above; anything else is an error naming the type.
pub fn load(bytes: &[u8]) -> Result<Ruby, FormatError> {
    if !bytes.starts_with(&HEADER) {
        return Err(FormatError::new("not Ruby Marshal data (no 4.8 header)"));
    }
    let mut r = Reader {
        bytes,
        pos: 2,
        symbols: Vec::new(),
        objects: Vec::new(),
        budget: DecodeBudget::new("Marshal"),
        built: 0,
    };
    let v = r.object(0)?;
    if r.pos != bytes.len() {
        return Err(FormatError::new(format!(
            "Marshal data has {} bytes after the value",
            bytes.len() - r.pos
        )));
    }
    Ok(v)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    symbols: Vec<String>,
    /// Objects in the order Marshal numbers them (for `@` links): `built`
    /// when reading it began, then, once read, the object and its weight (what
    /// it built, which every copy of it takes from the budget again).
    objects: Vec<(usize, Option<(Ruby, usize)>)>,
    /// What the whole decode may hold: what is built, and the copies kept for links.
    budget: DecodeBudget,
    /// Estimated bytes of the value being built (link copies included, the
    /// copies kept for links not), to weigh objects.
    built: usize,
}

fn truncated() -> FormatError {
    FormatError::new("Marshal data ends early")
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, FormatError> {
        let b = *self.bytes.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(truncated)?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn long(&mut self) -> Result<i64, FormatError> {
        let c = self.byte()? as i8;
        Ok(match c {
            0 => 0,
            5..=127 => i64::from(c) - 5,
            -128..=-5 => i64::from(c) + 5,
            1..=4 => {
                let b = self.take(c as usize)?;
                b.iter().rev().fold(0i64, |acc, &x| (acc << 8) | i64::from(x))
            }
            _ => {
                let n = (-c) as usize;
                let b = self.take(n)?;
                let mut v: i64 = -1;
                for (i, &x) in b.iter().enumerate() {
                    v &= !(0xff << (8 * i));
                    v |= i64::from(x) << (8 * i);
                }
                v
            }
        })
    }

    fn len(&mut self) -> Result<usize, FormatError> {
        let n = self.long()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| FormatError::new(format!("Marshal length {n} is out of range")))
    }

    fn symbol(&mut self) -> Result<String, FormatError> {
        match self.byte()? {
            b':' => {
                let n = self.len()?;
                let name = String::from_utf8_lossy(self.take(n)?).into_owned();
                self.symbols.push(name.clone());
                Ok(name)
            }
            b';' => {
                let i = self.len()?;
                self.symbols
                    .get(i)
                    .cloned()
                    .ok_or_else(|| FormatError::new("Marshal symbol link out of range"))
            }
            other => Err(FormatError::new(format!(
                "expected a Marshal Symbol, found type {:?}",
                other as char
            ))),
        }
    }

    /// Takes `bytes` of the value being built from the budget.
    fn build(&mut self, bytes: usize) -> Result<(), FormatError> {
        self.budget.charge(bytes)?;
        self.built += bytes;
        Ok(())
    }

    fn register(&mut self) -> usize {
        self.objects.push((self.built, None));
        self.objects.len() - 1
    }

    /// Keeps a copy of the object read into `slot` for later links, charged to the budget.
    fn done(&mut self, slot: usize, v: Ruby) -> Result<Ruby, FormatError> {
        let weight = self.built - self.objects[slot].0;
        self.budget.charge(weight)?;
        self.objects[slot].1 = Some((v.clone(), weight));
        Ok(v)
    }

    fn plain(&mut self, depth: usize) -> Result<Value, FormatError> {
        match self.object(depth)? {
            Ruby::Value(v) => Ok(v),
            Ruby::Object(class, _) => Err(FormatError::new(format!(
                "a Ruby object of class {class} inside the value: only nil, true, false, Integer, Float, String, Array and Hash can be shown as JSON"
            ))),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Ruby, FormatError> {
        if depth > MAX_DEPTH {
            return Err(FormatError::new(format!(
                "Marshal data nests deeper than {MAX_DEPTH} levels"
            )));
        }
        self.build(std::mem::size_of::<Value>())?;
        let t = self.byte()?;
        let v = |v: Value| Ok(Ruby::Value(v));
        match t {
            b'0' => v(Value::Null),
            b'T' => v(Value::Bool(true)),
            b'F' => v(Value::Bool(false)),
            b'i' => v(Value::Int(self.long()?)),
            b'l' => {
                let slot = self.register();
                let negative = self.byte()? == b'-';
                let shorts = self.len()?;
                self.build(shorts * 2)?;
                let magnitude = self.take(shorts * 2)?.to_vec();
                let n = BigInt::from_magnitude(negative, magnitude).ok_or_else(|| {
                    FormatError::new(format!("a Bignum of {} bytes, over the {MAX_BIGINT_BYTES}-byte limit", shorts * 2))
                })?;
                let n = integer(n);
                self.done(slot, Ruby::Value(n))
            }
            b'f' => {
                let slot = self.register();
                let n = self.len()?;
                let text = String::from_utf8_lossy(self.take(n)?).into_owned();
                let f = match text.as_str() {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    "nan" => f64::NAN,
                    t => t
                        .parse::<f64>()
                        .map_err(|_| FormatError::new(format!("bad Marshal Float {t:?}")))?,
                };
                self.done(slot, Ruby::Value(Value::Float(f)))
            }
            b'"' => {
                let slot = self.register();
                let n = self.len()?;
                self.build(n)?;
                let b = self.take(n)?.to_vec();
                self.done(slot, Ruby::Value(Value::Bytes(b)))
            }
            b'I' => {
                let slot = self.objects.len();
                let inner = self.object(depth + 1)?;
                let count = self.len()?;
                let mut utf8 = false;
                for _ in 0..count {
                    let name = self.symbol()?;
                    let value = self.object(depth + 1)?;
                    utf8 |= (name == "E" && value == Ruby::Value(Value::Bool(true)))
                        || (name == "encoding" && matches!(&value, Ruby::Value(Value::Bytes(b)) if b.eq_ignore_ascii_case(b"utf-8")));
                }
                let v = match inner {
                    Ruby::Value(Value::Bytes(b)) if utf8 => match String::from_utf8(b) {
                        Ok(s) => Value::Str(s),
                        Err(e) => Value::Bytes(e.into_bytes()),
                    },
                    other => return Ok(other),
                };
                // The String read first took this slot (unless it was a link:
                // then no slot is new); links to it see the text. Its weight
                // was charged when it was read.
                if let Some((_, Some((object, _)))) = self.objects.get_mut(slot) {
                    *object = Ruby::Value(v.clone());
                }
                Ok(Ruby::Value(v))
            }
            b'[' => {
                let slot = self.register();
                let n = self.len()?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.plain(depth + 1)?);
                }
                self.done(slot, Ruby::Value(Value::List(items)))
            }
            b'{' => {
                let slot = self.register();
                let n = self.len()?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let key = match self.plain(depth + 1)? {
                        Value::Str(s) => s,
                        Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        Value::Int(i) => i.to_string(),
                        other => return Err(FormatError::new(format!(
                            "a Ruby Hash key that JSON cannot hold: {}", other.to_json()
                        ))),
                    };
                    entries.push((key, self.plain(depth + 1)?));
                }
                self.done(slot, Ruby::Value(Value::Map(entries)))
            }
            b':' | b';' => {
                self.pos -= 1;
                let name = self.symbol()?;
                v(Value::Str(name))
            }
            b'o' => {
                let slot = self.register();
                let class = self.symbol()?;
                let n = self.len()?;
                let mut ivars = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    let name = self.symbol()?;
                    ivars.push((name, self.object(depth + 1)?));
                }
                self.done(slot, Ruby::Object(class, ivars))
            }
            b'@' => {
                let i = self.len()?;
                match self.objects.get(i) {
                    Some(&(_, Some((_, weight)))) => {
                        // Charged before it is copied: links to links can double it each time.
                        self.build(weight)?;
                        Ok(self.objects[i].1.as_ref().expect("a finished object").0.clone())
                    }
                    Some((_, None)) => Err(FormatError::new("a Marshal object refers to itself (a cycle JSON cannot hold)")),
                    None => Err(FormatError::new("Marshal object link out of range")),
                }
            }
            other => Err(FormatError::new(format!(
                "Marshal type {:?} is not a JSON-like Ruby value (nil, true, false, Integer, Float, String, Array, Hash)",
                other as char
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected bytes are Ruby 3.1's `Marshal.dump` output.
    #[test]
    fn integers_match_ruby() {
        assert_eq!(dump(&Value::Int((1 << 30) - 1)), b"\x04\x08i\x04\xff\xff\xff?");
        assert_eq!(dump(&Value::Int(1 << 30)), b"\x04\x08l+\x07\x00\x00\x00@");
        assert_eq!(dump(&Value::Int(-(1 << 30))), b"\x04\x08i\xfc\x00\x00\x00\xc0");
        assert_eq!(dump(&Value::Int(-(1 << 30) - 1)), b"\x04\x08l-\x07\x01\x00\x00@");
        let big = Value::BigInt(BigInt::from_decimal("18446744073709551616").unwrap());
        assert_eq!(dump(&big), b"\x04\x08l+\n\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00");
        assert_eq!(dump(&Value::Int(0)), b"\x04\x08i\x00");
        assert_eq!(dump(&Value::Int(122)), b"\x04\x08i\x7f");
        assert_eq!(dump(&Value::Int(-123)), b"\x04\x08i\x80");
        assert_eq!(dump(&Value::Int(300)), b"\x04\x08i\x02\x2c\x01");
    }

    #[test]
    fn floats_match_ruby() {
        for (f, repr) in [
            (1.5, "1.5"),
            (1e25, "1e25"),
            (1e-5, "1e-5"),
            (0.0001, "0.0001"),
            (100.0, "1e2"),
            (123456789.125, "123456789.125"),
            (-0.0, "-0"),
        ] {
            let mut expected = b"\x04\x08f".to_vec();
            expected.push(repr.len() as u8 + 5);
            expected.extend_from_slice(repr.as_bytes());
            assert_eq!(dump(&Value::Float(f)), expected, "{f}");
        }
    }

    #[test]
    fn strings_arrays_hashes_match_ruby() {
        let v = Value::List(vec![
            Value::Str("a".into()),
            Value::Bytes(b"a".to_vec()),
            Value::Map(vec![("k".into(), Value::Null)]),
        ]);
        assert_eq!(
            dump(&v),
            b"\x04\x08[\x08I\"\x06a\x06:\x06ET\"\x06a{\x06I\"\x06k\x06;\x00T0"
        );
    }

    #[test]
    fn load_reads_back_what_dump_writes_and_links() {
        let v = Value::Map(vec![
            ("n".into(), Value::Int(-7_000_000_000)),
            ("f".into(), Value::Float(0.1)),
            (
                "l".into(),
                Value::List(vec![Value::Bool(true), Value::Bool(false), Value::Null]),
            ),
            ("s".into(), Value::Str("héllo".into())),
            (
                "b".into(),
                Value::BigInt(BigInt::from_decimal("-123456789012345678901234567890").unwrap()),
            ),
        ]);
        assert_eq!(load(&dump(&v)).unwrap(), Ruby::Value(v));
        // s = "x"; Marshal.dump([s, s]) links the second to the first.
        let linked = b"\x04\x08[\x07I\"\x06x\x06:\x06ET@\x06";
        assert_eq!(
            load(linked).unwrap(),
            Ruby::Value(Value::List(vec![Value::Str("x".into()), Value::Str("x".into())]))
        );
    }

    /// `long` as Marshal writes it, for the small numbers these tests use.
    fn small(n: usize) -> u8 {
        assert!(n <= 122);
        n as u8 + 5
    }

    #[test]
    fn links_cannot_multiply_values_past_the_cap() {
        // ["x", [@1, @1], [@2, @2], …]: each Array links twice to the one before, so
        // the 60th would hold 2^59 strings. Refused once the copies pass the decode budget.
        let mut bytes = vec![4, 8, b'[', small(61), b'"', small(1), b'x'];
        for k in 2..=61 {
            bytes.extend_from_slice(&[b'[', small(2), b'@', small(k - 1), b'@', small(k - 1)]);
        }
        let err = load(&bytes).unwrap_err().to_string();
        assert!(err.contains("expands to more than 256 MiB"), "{err}");
        // Within the cap, links still copy the object they name.
        let mut few = vec![4, 8, b'[', small(3), b'"', small(1), b'x'];
        few.extend_from_slice(&[b'[', small(2), b'@', small(1), b'@', small(1)]);
        few.extend_from_slice(&[b'@', small(2)]);
        let x = || Value::Bytes(b"x".to_vec());
        let pair = || Value::List(vec![x(), x()]);
        assert_eq!(load(&few).unwrap(), Ruby::Value(Value::List(vec![x(), pair(), pair()])));
    }

    #[test]
    fn an_encoding_wrapper_around_a_link_reads_the_linked_string() {
        // ["x", I@1 E=true]: the wrapper's object is a link, not a new slot (a
        // panic, index out of bounds, before).
        let bytes = b"\x04\x08[\x07\"\x06xI@\x06\x06:\x06ET";
        assert_eq!(
            load(bytes).unwrap(),
            Ruby::Value(Value::List(vec![Value::Bytes(b"x".to_vec()), Value::Str("x".into())]))
        );
    }

    #[test]
    fn deep_nesting_cannot_hold_a_copy_per_level_past_the_cap() {
        // 120 Arrays nested around 100,000 nils: every level keeps a copy for
        // links (120 × 3 MiB); the same 10 deep is read.
        let nested = |levels: usize| {
            let mut bytes = vec![4, 8];
            for _ in 0..levels {
                bytes.extend_from_slice(&[b'[', small(1)]);
            }
            bytes.extend_from_slice(&[b'[', 3, 0xa0, 0x86, 0x01]); // 100_000
            bytes.extend(std::iter::repeat_n(b'0', 100_000));
            bytes
        };
        let err = load(&nested(120)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("expands to more than 256 MiB"), "{err}");
        assert!(load(&nested(10)).is_ok());
    }

    #[test]
    fn load_refuses_what_json_cannot_hold() {
        // Marshal.dump(Struct::new(:a).new(1)) style user objects, regexps, truncation.
        assert!(load(b"\x04\x08/\x06a\x00")
            .unwrap_err()
            .to_string()
            .contains("not a JSON-like"));
        assert!(load(b"\x04\x08[\x07i\x06")
            .unwrap_err()
            .to_string()
            .contains("ends early"));
        assert!(load(b"\x04\x08[\xfe\xff\xff").is_err(), "negative lengths are refused");
        let deep = [
            b"\x04\x08".to_vec(),
            vec![b'['; 200].into_iter().flat_map(|b| [b, 6]).collect(),
        ]
        .concat();
        assert!(load(&deep).unwrap_err().to_string().contains("deeper"));
    }

    #[test]
    fn a_bignum_over_the_byte_limit_is_refused() {
        let bignum = |shorts: u16| {
            let mut b = vec![4, 8, b'l', b'+', 2];
            b.extend_from_slice(&shorts.to_le_bytes());
            b.extend(std::iter::repeat_n(0x11, usize::from(shorts) * 2));
            b
        };
        assert!(load(&bignum(893)).is_ok(), "1786 bytes");
        let err = load(&bignum(894)).err().unwrap().to_string();
        assert!(err.contains("Bignum of 1788 bytes, over the 1786-byte limit"), "{err}");
    }

    #[test]
    fn object_links_cannot_expand_small_data_past_the_decode_budget() {
        // The root array's entry k (k ≥ 1) is [@(entry k-1), @(entry k-1)]:
        // 40 doublings of a 1 KB string, under 200 bytes stored.
        let levels = 40u8;
        let mut b = vec![4, 8, b'[', levels + 5, b'[', 6, b'"', 2, 0xe8, 3];
        b.extend(std::iter::repeat_n(b'x', 1000));
        for k in 1..levels {
            // Objects: 0 the root, 1 entry 0, 2 its string, k + 2 entry k.
            let previous = if k == 1 { 1 } else { k + 1 };
            b.extend_from_slice(&[b'[', 7, b'@', previous + 5, b'@', previous + 5]);
        }
        let err = load(&b).err().unwrap().to_string();
        assert!(err.contains("Marshal data expands to more than 256 MiB"), "{err}");
        // Ten doublings (about 1 MB) read fine.
        let ten = 10 + 5;
        let mut small = vec![4, 8, b'[', ten, b'[', 6, b'"', 2, 0xe8, 3];
        small.extend(std::iter::repeat_n(b'x', 1000));
        small.extend_from_slice(&b[1010..1010 + 6 * 9]);
        assert!(load(&small).is_ok());
    }
}
