//! Laravel: `Illuminate\Cache\RedisStore` and `DatabaseStore` keys and values.
//!
//! - key, Redis store: the connection's `redis_prefix` (phpredis `OPT_PREFIX`),
//!   then the cache prefix, then `:` in Laravel 8–10 (`RedisStore::setPrefix`
//!   appended it until 11.x, "Stop magic prefixing" #47380), then the key;
//!   memcached store: the same without the Redis prefix; database store:
//!   cache prefix + key, never a colon nor the Redis prefix.
//! - default prefixes as each skeleton writes them from `APP_NAME`: 8
//!   `slug(app, '_').'_cache'`, 9–11 `slug(app, '_').'_cache_'`, 12+
//!   `slug(app).'-cache-'`; Redis `slug(app, '_').'_database_'` (8–11),
//!   `slug(app).'-database-'` (12+).
//! - value: PHP `serialize()` (on memcached with php-memcached's "serialized"
//!   flag, so every type reads back as itself); on the Redis store a finite number is stored as
//!   its string (`is_numeric` → raw, PHP's `precision` = 14 for floats); the
//!   database store base64-encodes serialized bytes that contain NUL on
//!   PostgreSQL (all versions) and SQLite (12+; 11.38 added it, and 11's reader
//!   takes both forms).

use super::value::{integer, BigInt, Value, MAX_DEPTH};
use super::{Decoded, FormatError, Store};
use crate::config::{LaravelFormat, LaravelVersion};
use base64::Engine as _;

/// A Laravel target's resolved key prefix and value rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Laravel {
    prefix: String,
    /// The Redis store writes numbers raw.
    numbers_raw: bool,
    /// The database store base64-encodes serialized values containing NUL.
    base64_nul: bool,
}

impl Laravel {
    /// Resolves prefixes (explicit, else the skeleton's defaults from `app_name`) for `store`.
    pub fn new(config: &LaravelFormat, store: Store) -> Result<Laravel, FormatError> {
        let v = config.version;
        let prefix = config.key_prefix(store).map_err(FormatError::new)?;
        Ok(Laravel {
            prefix,
            numbers_raw: store == Store::Redis,
            base64_nul: store == Store::Postgres || (store == Store::Sqlite && v >= LaravelVersion::V12),
        })
    }

    /// The stored key of a plugin's key.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The stored value bytes.
    pub fn encode(&self, value: &Value) -> Vec<u8> {
        if self.numbers_raw {
            if let Some(raw) = raw_number(value) {
                return raw;
            }
        }
        let mut out = Vec::new();
        serialize(value, &mut out);
        if self.base64_nul && out.contains(&0) {
            return base64::engine::general_purpose::STANDARD.encode(&out).into_bytes();
        }
        out
    }

    /// Reads a stored value back as `Repository::get` would.
    pub fn decode(&self, bytes: &[u8]) -> Result<Decoded, FormatError> {
        if self.numbers_raw && is_numeric(bytes) {
            let text = std::str::from_utf8(bytes).expect("numeric strings are ASCII").trim();
            let value = BigInt::from_decimal(text.strip_prefix('+').unwrap_or(text))
                .map(integer)
                .unwrap_or_else(|| Value::Float(text.parse().unwrap_or(f64::NAN)));
            return Ok(Decoded {
                value,
                expires_at: None,
                detected: "laravel (raw number)".into(),
            });
        }
        let decoded;
        let (bytes, detected) = if self.base64_nul && !bytes.contains(&b':') && !bytes.contains(&b';') {
            decoded = base64::engine::general_purpose::STANDARD.decode(bytes).map_err(|e| {
                FormatError::new(format!("Laravel database value is neither serialize() nor base64: {e}"))
            })?;
            (&decoded[..], "laravel serialize() (base64)")
        } else {
            (bytes, "laravel serialize()")
        };
        Ok(Decoded {
            value: unserialize(bytes)?,
            expires_at: None,
            detected: detected.into(),
        })
    }
}

/// The Redis store's raw form of a finite number (`RedisStore::serialize`).
fn raw_number(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::BigInt(b) => Some(php_float(b.to_f64(), Some(14)).into_bytes()),
        Value::Float(f) if f.is_finite() => Some(php_float(*f, Some(14)).into_bytes()),
        Value::Str(s) if is_numeric(s.as_bytes()) && s.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
            Some(s.clone().into_bytes())
        }
        _ => None,
    }
}

/// PHP 8's `is_numeric()` on a string: optional whitespace, sign, digits with an
/// optional fraction and exponent, trailing whitespace.
fn is_numeric(b: &[u8]) -> bool {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    let s = &b[start..end.max(start)];
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let int_digits = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_digits = s[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i = j + exp_digits;
    }
    i == s.len()
}

/// PHP's float text: `precision` digits (`None` = shortest round-trip, as
/// `serialize()` with serialize_precision = -1 writes), in `zend_gcvt`'s layout.
fn php_float(f: f64, precision: Option<usize>) -> String {
    if f.is_nan() {
        return "NAN".into();
    }
    if f.is_infinite() {
        return if f < 0.0 { "-INF".into() } else { "INF".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let (negative, digits, decpt) = match precision {
        None => super::marshal::shortest_digits(f),
        Some(p) => {
            let e = format!("{:.*e}", p - 1, f.abs());
            let (mantissa, exp) = e.split_once('e').expect("`{:e}` has an exponent");
            let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
            let digits = digits.trim_end_matches('0').to_string();
            (f < 0.0, digits, exp.parse::<i32>().expect("exponent") + 1)
        }
    };
    let ndigit = precision.unwrap_or(17) as i32;
    let mut out = String::from(if negative { "-" } else { "" });
    if decpt < -3 || decpt > ndigit {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        let e = decpt - 1;
        out.push_str(&format!("E{}{}", if e < 0 { '-' } else { '+' }, e.abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-decpt) as usize));
        out.push_str(&digits);
    } else {
        let d = decpt as usize;
        if digits.len() <= d {
            out.push_str(&digits);
            out.push_str(&"0".repeat(d - digits.len()));
        } else {
            out.push_str(&digits[..d]);
            out.push('.');
            out.push_str(&digits[d..]);
        }
    }
    out
}

/// A JSON object key as PHP's array key: decimal integers become int keys.
fn php_int_key(key: &str) -> Option<i64> {
    let digits = key.strip_prefix('-').unwrap_or(key);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && key != "-0";
    canonical.then(|| key.parse().ok()).flatten()
}

fn serialize_str(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("s:{}:\"", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\";");
}

/// PHP `serialize()` of the value as `json_decode($json, true)` would hold it.
fn serialize(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"N;"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
        Value::Int(i) => out.extend_from_slice(format!("i:{i};").as_bytes()),
        Value::BigInt(b) => out.extend_from_slice(format!("d:{};", php_float(b.to_f64(), None)).as_bytes()),
        Value::Float(f) => out.extend_from_slice(format!("d:{};", php_float(*f, None)).as_bytes()),
        Value::Str(s) => serialize_str(s.as_bytes(), out),
        Value::Bytes(b) => serialize_str(b, out),
        Value::List(items) => {
            out.extend_from_slice(format!("a:{}:{{", items.len()).as_bytes());
            for (i, item) in items.iter().enumerate() {
                out.extend_from_slice(format!("i:{i};").as_bytes());
                serialize(item, out);
            }
            out.push(b'}');
        }
        Value::Map(entries) => {
            out.extend_from_slice(format!("a:{}:{{", entries.len()).as_bytes());
            for (k, v) in entries {
                match php_int_key(k) {
                    Some(i) => out.extend_from_slice(format!("i:{i};").as_bytes()),
                    None => serialize_str(k.as_bytes(), out),
                }
                serialize(v, out);
            }
            out.push(b'}');
        }
    }
}

/// PHP `unserialize()` of scalars and arrays; objects and references are refused.
fn unserialize(bytes: &[u8]) -> Result<Value, FormatError> {
    let mut r = Php { bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(FormatError::new("PHP serialized data has bytes after the value"));
    }
    Ok(v)
}

struct Php<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Php<'_> {
    fn bad(&self, what: &str) -> FormatError {
        FormatError::new(format!("not PHP serialize() data at byte {}: {what}", self.pos))
    }

    fn expect(&mut self, b: u8) -> Result<(), FormatError> {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.bad(&format!("expected {:?}", b as char)))
        }
    }

    fn until(&mut self, end: u8) -> Result<&str, FormatError> {
        let rest = &self.bytes[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == end)
            .ok_or_else(|| self.bad("cut short"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.bad("non-ASCII number"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn value(&mut self, depth: usize) -> Result<Value, FormatError> {
        let t = *self.bytes.get(self.pos).ok_or_else(|| self.bad("cut short"))?;
        self.pos += 1;
        if t == b'N' {
            self.expect(b';')?;
            return Ok(Value::Null);
        }
        self.expect(b':')?;
        match t {
            b'b' => match self.until(b';')? {
                "0" => Ok(Value::Bool(false)),
                "1" => Ok(Value::Bool(true)),
                _ => Err(self.bad("bad boolean")),
            },
            b'i' => {
                let s = self.until(b';')?;
                s.parse().map(Value::Int).map_err(|_| self.bad("bad integer"))
            }
            b'd' => {
                let s = self.until(b';')?;
                let f = match s {
                    "INF" => f64::INFINITY,
                    "-INF" => f64::NEG_INFINITY,
                    "NAN" => f64::NAN,
                    s => s.parse().map_err(|_| self.bad("bad float"))?,
                };
                Ok(Value::Float(f))
            }
            b's' => {
                let n: usize = self.until(b':')?.parse().map_err(|_| self.bad("bad string length"))?;
                self.expect(b'"')?;
                let end = self
                    .pos
                    .checked_add(n)
                    .filter(|&e| e <= self.bytes.len())
                    .ok_or_else(|| self.bad("string cut short"))?;
                let b = self.bytes[self.pos..end].to_vec();
                self.pos = end;
                self.expect(b'"')?;
                self.expect(b';')?;
                Ok(match String::from_utf8(b) {
                    Ok(s) => Value::Str(s),
                    Err(e) => Value::Bytes(e.into_bytes()),
                })
            }
            b'a' => {
                if depth >= MAX_DEPTH {
                    return Err(FormatError::new(format!(
                        "PHP array nests deeper than {MAX_DEPTH} levels"
                    )));
                }
                let n: usize = self.until(b':')?.parse().map_err(|_| self.bad("bad array length"))?;
                self.expect(b'{')?;
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let key = match self.value(MAX_DEPTH)? {
                        Value::Int(i) => i.to_string(),
                        Value::Str(s) => s,
                        _ => return Err(self.bad("array keys are int or string")),
                    };
                    entries.push((key, self.value(depth + 1)?));
                }
                self.expect(b'}')?;
                let is_list = entries.iter().enumerate().all(|(i, (k, _))| *k == i.to_string());
                Ok(if is_list {
                    Value::List(entries.into_iter().map(|(_, v)| v).collect())
                } else {
                    Value::Map(entries)
                })
            }
            b'O' | b'C' => {
                let _len = self.until(b':')?;
                let class = self.until(b':').unwrap_or("?").trim_matches('"').to_string();
                Err(FormatError::new(format!(
                    "the cached value is a PHP object of class {class}: only null, bool, int, float, string and array can be shown as JSON"
                )))
            }
            other => Err(self.bad(&format!(
                "type {:?} (references, enums) cannot be shown as JSON",
                other as char
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: LaravelVersion) -> LaravelFormat {
        LaravelFormat {
            version,
            app_name: None,
            cache_prefix: None,
            redis_prefix: None,
        }
    }

    fn encode(v: &Value) -> String {
        let l = Laravel::new(&config(LaravelVersion::V11), Store::Sqlite).unwrap();
        String::from_utf8(l.encode(v)).unwrap()
    }

    #[test]
    fn keys_follow_the_version_and_the_store() {
        let key = |v, store| Laravel::new(&config(v), store).unwrap().key("system.settings");
        for (version, store, expected) in [
            (
                LaravelVersion::V8,
                Store::Redis,
                "laravel_database_laravel_cache:system.settings",
            ),
            (
                LaravelVersion::V10,
                Store::Redis,
                "laravel_database_laravel_cache_:system.settings",
            ),
            (
                LaravelVersion::V11,
                Store::Redis,
                "laravel_database_laravel_cache_system.settings",
            ),
            (
                LaravelVersion::V12,
                Store::Redis,
                "laravel-database-laravel-cache-system.settings",
            ),
            (LaravelVersion::V8, Store::Sqlite, "laravel_cachesystem.settings"),
            (LaravelVersion::V11, Store::Postgres, "laravel_cache_system.settings"),
            // MemcachedStore: the cache prefix and its colon (8-10), no Redis prefix.
            (LaravelVersion::V8, Store::Memcached, "laravel_cache:system.settings"),
            (LaravelVersion::V11, Store::Memcached, "laravel_cache_system.settings"),
        ] {
            assert_eq!(key(version, store), expected, "{version:?} {store:?}");
        }
        let explicit = LaravelFormat {
            cache_prefix: Some("shop_".into()),
            redis_prefix: Some(String::new()),
            app_name: Some("My Shop!".into()),
            ..config(LaravelVersion::V9)
        };
        assert_eq!(Laravel::new(&explicit, Store::Redis).unwrap().key("k"), "shop_:k");
        let empty = LaravelFormat {
            cache_prefix: Some(String::new()),
            ..config(LaravelVersion::V8)
        };
        assert_eq!(
            Laravel::new(&empty, Store::Redis).unwrap().key("k"),
            "laravel_database_k",
            "no colon without a prefix"
        );
        let named = LaravelFormat {
            app_name: Some("My App!".into()),
            ..config(LaravelVersion::V8)
        };
        assert_eq!(
            Laravel::new(&named, Store::Redis).unwrap().key("k"),
            "my_app_database_my_app_cache:k"
        );
        let unicode = LaravelFormat {
            app_name: Some("Ünïcode".into()),
            ..config(LaravelVersion::V8)
        };
        assert!(Laravel::new(&unicode, Store::Redis)
            .unwrap_err()
            .to_string()
            .contains("cache_prefix"));
    }

    /// Bytes printed by PHP 8.2's `serialize()`.
    #[test]
    fn serialize_matches_php() {
        let floats = [
            1e25,
            0.1,
            1.0,
            1e-5,
            0.0001,
            100.0,
            1.5e300,
            -0.0,
            f64::INFINITY,
            123456789012345.0,
            1234567890123456789.0,
            0.1 + 0.2,
        ];
        let list = Value::List(floats.iter().map(|f| Value::Float(*f)).collect());
        assert_eq!(
            encode(&list),
            "a:12:{i:0;d:1.0E+25;i:1;d:0.1;i:2;d:1;i:3;d:1.0E-5;i:4;d:0.0001;i:5;d:100;i:6;d:1.5E+300;i:7;d:-0;i:8;d:INF;i:9;d:123456789012345;i:10;d:1.2345678901234568E+18;i:11;d:0.30000000000000004;}"
        );
        let big = Value::BigInt(BigInt::from_decimal("18446744073709551616").unwrap());
        assert_eq!(encode(&big), "d:1.8446744073709552E+19;");
        let map = Value::Map(vec![
            ("5".into(), Value::Bool(true)),
            ("05".into(), Value::Null),
            ("-3".into(), Value::Int(-3)),
            ("é".into(), Value::Str("ü".into())),
        ]);
        assert_eq!(
            encode(&map),
            "a:4:{i:5;b:1;s:2:\"05\";N;i:-3;i:-3;s:2:\"é\";s:2:\"ü\";}"
        );
    }

    #[test]
    fn redis_store_writes_finite_numbers_raw() {
        let l = Laravel::new(&config(LaravelVersion::V8), Store::Redis).unwrap();
        let raw = |v: Value| String::from_utf8(l.encode(&v)).unwrap();
        assert_eq!(raw(Value::Int(42)), "42");
        assert_eq!(raw(Value::Float(0.1 + 0.2)), "0.3", "(string) cast uses precision = 14");
        assert_eq!(raw(Value::Float(1e15)), "1.0E+15");
        assert_eq!(raw(Value::Float(1.0 / 3.0)), "0.33333333333333");
        assert_eq!(raw(Value::Str(" 12.5 ".into())), " 12.5 ");
        assert_eq!(raw(Value::Str("12abc".into())), "s:5:\"12abc\";");
        assert_eq!(raw(Value::Bool(true)), "b:1;");
        assert_eq!(raw(Value::Float(f64::INFINITY)), "d:INF;");
        assert_eq!(l.decode(b"42").unwrap().value, Value::Int(42));
        assert_eq!(l.decode(b"0.5").unwrap().value, Value::Float(0.5));
    }

    #[test]
    fn database_store_base64_rule_per_driver_and_version() {
        let nul = Value::Str("a\0b".into());
        let pg8 = Laravel::new(&config(LaravelVersion::V8), Store::Postgres).unwrap();
        assert_eq!(pg8.encode(&nul), b"czozOiJhAGIiOw==");
        assert_eq!(pg8.encode(&Value::Str("ab".into())), b"s:2:\"ab\";");
        assert_eq!(pg8.decode(b"czozOiJhAGIiOw==").unwrap().value, nul);
        let sqlite11 = Laravel::new(&config(LaravelVersion::V11), Store::Sqlite).unwrap();
        assert_eq!(sqlite11.encode(&nul), b"s:3:\"a\0b\";");
        let sqlite12 = Laravel::new(&config(LaravelVersion::V12), Store::Sqlite).unwrap();
        assert_eq!(sqlite12.encode(&nul), b"czozOiJhAGIiOw==");
        assert_eq!(
            sqlite12.encode(&Value::Int(7)),
            b"i:7;",
            "numbers are serialized in the table"
        );
    }

    #[test]
    fn unserialize_reads_php_values_and_refuses_objects() {
        let l = Laravel::new(&config(LaravelVersion::V11), Store::Redis).unwrap();
        let v = Value::Map(vec![
            (
                "a".into(),
                Value::List(vec![Value::Int(1), Value::Float(2.5), Value::Null]),
            ),
            ("7".into(), Value::Str("x".into())),
        ]);
        assert_eq!(l.decode(&l.encode(&v)).unwrap().value, v);
        let err = l.decode(b"O:8:\"stdClass\":0:{}").unwrap_err().to_string();
        assert!(err.contains("stdClass"), "{err}");
        assert!(l.decode(b"s:10:\"ab\";").is_err());
        assert!(l.decode(b"a:99999999999:{").is_err());
    }
}
