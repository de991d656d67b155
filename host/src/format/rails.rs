//! Rails: `ActiveSupport::Cache::RedisCacheStore` keys and entries.
//!
//! - key: `namespace:key` (`Store#namespace_key`); keys over 1024 bytes
//!   (`MAX_KEY_BYTESIZE`) are shortened by 6.1 to `prefix:sha2:<sha256 hex>`
//!   (`RedisCacheStore#truncate_key`); 7.x hashes them with the app's
//!   `ActiveSupport::Digest` class, which only the app knows, so they are refused.
//! - value, per `cache_format_version`:
//!   - 6.1: `Marshal.dump(Entry)` with `@value`, `@version`, `@created_at` (write
//!     time), `@expires_in` (seconds), and `@compressed` when zlib-deflated;
//!   - 7.0: `"\x00"` + `Marshal.dump([value, expires_at])`, or `"\x01"` + zlib of it;
//!   - 7.1: `"\x00\x11"`, a type byte (1 Marshal, 2 UTF-8 String, 3 binary String,
//!     +0x80 compressed), expires_at as a little-endian double (-1.0 = none),
//!     version length as a little-endian int32 (-1 = none), then the payload.
//! - compression as `compress_threshold` does it: only at or above the
//!   threshold, and only when the deflated bytes are smaller.

use super::marshal::{self, Ivar, Ruby, Writer};
use super::value::Value;
use super::{inflate, Decoded, FormatError};
use crate::config::{RailsFormat, RailsVersion};
use flate2::write::ZlibEncoder;
use sha2::{Digest, Sha256};
use std::io::Write as _;

/// `RedisCacheStore::MAX_KEY_BYTESIZE`.
const MAX_KEY_BYTES: usize = 1024;
const ENTRY_CLASS: &str = "ActiveSupport::Cache::Entry";
const SIGNATURE_71: [u8; 2] = [0x00, 0x11];
const MARK_70_UNCOMPRESSED: u8 = 0x00;
const MARK_70_COMPRESSED: u8 = 0x01;
const TYPE_OBJECT: u8 = 0x01;
const TYPE_UTF8: u8 = 0x02;
const TYPE_BINARY: u8 = 0x03;
const TYPE_ASCII: u8 = 0x04;
const COMPRESSED_FLAG: u8 = 0x80;

/// The key RedisCacheStore reads for a plugin's key.
pub fn key(config: &RailsFormat, key: &str) -> Result<String, FormatError> {
    let full = match config.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}:{key}"),
        _ => key.to_string(),
    };
    if full.len() <= MAX_KEY_BYTES {
        return Ok(full);
    }
    match config.cache_format_version {
        RailsVersion::V6_1 => {
            let suffix = format!(":sha2:{:x}", Sha256::digest(full.as_bytes()));
            let mut cut = MAX_KEY_BYTES - suffix.len();
            // Rails cuts bytes; a cut inside a UTF-8 character would not be a Rust string.
            while !full.is_char_boundary(cut) {
                cut -= 1;
            }
            if cut != MAX_KEY_BYTES - suffix.len() {
                return Err(FormatError::new(format!("the Rails key is {} bytes, over RedisCacheStore's {MAX_KEY_BYTES}, and Rails would cut it inside a UTF-8 character; use a shorter key", full.len())));
            }
            Ok(format!("{}{suffix}", &full[..cut]))
        }
        RailsVersion::V7_0 | RailsVersion::V7_1 => Err(FormatError::new(format!(
            "the Rails key `{}…` is {} bytes, over RedisCacheStore's {MAX_KEY_BYTES}: Rails {} shortens it with the app's ActiveSupport::Digest class, which preheat cannot know; use keys of at most {MAX_KEY_BYTES} bytes including the namespace",
            &full[..full.floor_char_boundary(40)],
            full.len(),
            config.cache_format_version.as_str()
        ))),
    }
}

/// Longest key memcached takes, in bytes.
const MEMCACHED_MAX_KEY_BYTES: usize = 250;

/// The key `MemCacheStore#normalize_key` (Rails 6.1) makes of a plugin's
/// key: `namespace:key` with the bytes 0x00–0x20, `%` and 0x7F–0xFF written
/// as `%` and their uppercase hex (Ruby's `to_s(16)`: no leading zero). Rails
/// shortens a result over 250 bytes with the app's `ActiveSupport::Digest`
/// class, which only the app knows, so such keys are refused.
pub fn mem_cache_key(config: &RailsFormat, key: &str) -> Result<String, FormatError> {
    let full = match config.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}:{key}"),
        _ => key.to_string(),
    };
    let mut escaped = String::with_capacity(full.len());
    for &b in full.as_bytes() {
        if b <= 0x20 || b == b'%' || b >= 0x7f {
            escaped.push_str(&format!("%{b:X}"));
        } else {
            escaped.push(b as char);
        }
    }
    if escaped.len() > MEMCACHED_MAX_KEY_BYTES {
        return Err(FormatError::new(format!(
            "the Rails key `{}…` is {} bytes once MemCacheStore escapes it, over memcached's {MEMCACHED_MAX_KEY_BYTES}: Rails shortens it with the app's ActiveSupport::Digest class, which preheat cannot know; use shorter keys (spaces and non-ASCII bytes take 2–3 bytes each)",
            &escaped[..40],
            escaped.len()
        )));
    }
    Ok(escaped)
}

/// The entry bytes for `value` written at `now` (unix seconds) with `ttl` seconds.
pub fn encode(config: &RailsFormat, value: &Value, now: f64, ttl: Option<f64>) -> Vec<u8> {
    let threshold = if config.compress {
        config.compress_threshold.0 as usize
    } else {
        usize::MAX
    };
    let expires_at = ttl.map(|t| now + t);
    match config.cache_format_version {
        RailsVersion::V6_1 => entry_61(value, now, ttl, threshold),
        RailsVersion::V7_0 => {
            let mut members = vec![value.clone()];
            if let Some(at) = expires_at {
                members.push(Value::Float(at));
            }
            let payload = marshal::dump(&Value::List(members));
            match compress(&payload, threshold) {
                Some(c) => [&[MARK_70_COMPRESSED][..], &c].concat(),
                None => [&[MARK_70_UNCOMPRESSED][..], &payload].concat(),
            }
        }
        RailsVersion::V7_1 => {
            let (mut kind, payload) = match value {
                Value::Str(s) => (TYPE_UTF8, s.as_bytes().to_vec()),
                Value::Bytes(b) => (TYPE_BINARY, b.clone()),
                other => (TYPE_OBJECT, marshal::dump(other)),
            };
            let payload = match compress(&payload, threshold) {
                Some(c) => {
                    kind |= COMPRESSED_FLAG;
                    c
                }
                None => payload,
            };
            let mut out = Vec::with_capacity(15 + payload.len());
            out.extend_from_slice(&SIGNATURE_71);
            out.push(kind);
            out.extend_from_slice(&expires_at.unwrap_or(-1.0).to_le_bytes());
            out.extend_from_slice(&(-1i32).to_le_bytes());
            out.extend_from_slice(&payload);
            out
        }
    }
}

/// 6.1: `Marshal.dump(Entry.new(value, expires_in: ttl))`, compressed as `Entry#compress!` does.
fn entry_61(value: &Value, now: f64, ttl: Option<f64>, threshold: usize) -> Vec<u8> {
    let uncompressed_size = match value {
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::BigInt(_) | Value::Float(_) => 0,
        Value::Str(s) => s.len(),
        Value::Bytes(b) => b.len(),
        other => marshal::dump(other).len(),
    };
    let compressed = if uncompressed_size >= threshold {
        compress_always(&marshal::dump(value)).filter(|c| c.len() < uncompressed_size)
    } else {
        None
    };
    let mut w = Writer::new();
    let write_value = |w: &mut Writer| match &compressed {
        Some(c) => w.string(c, false),
        None => w.value(value),
    };
    let nil = |w: &mut Writer| w.value(&Value::Null);
    let created = |w: &mut Writer| w.float(now);
    let expires = |w: &mut Writer| match ttl {
        Some(t) => w.float(t),
        None => w.value(&Value::Null),
    };
    let flag = |w: &mut Writer| w.value(&Value::Bool(true));
    let mut ivars: Vec<Ivar<'_>> = vec![
        ("@value", &write_value),
        ("@version", &nil),
        ("@created_at", &created),
        ("@expires_in", &expires),
    ];
    if compressed.is_some() {
        ivars.push(("@compressed", &flag));
    }
    w.object(ENTRY_CLASS, &ivars);
    w.finish()
}

/// zlib-deflated bytes when `data` is at or over `threshold` and they come out smaller.
fn compress(data: &[u8], threshold: usize) -> Option<Vec<u8>> {
    if data.len() < threshold {
        return None;
    }
    compress_always(data).filter(|c| c.len() < data.len())
}

fn compress_always(data: &[u8]) -> Option<Vec<u8>> {
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).ok()?;
    z.finish().ok()
}

/// Reads an entry of any cache_format_version (as Rails 7.1's fallback does).
pub fn decode(bytes: &[u8]) -> Result<Decoded, FormatError> {
    if let Some(rest) = bytes.strip_prefix(&SIGNATURE_71[..]) {
        if rest.len() < 13 {
            return Err(FormatError::new("Rails 7.1 entry header is cut short"));
        }
        let kind = rest[0];
        let expires_at = f64::from_le_bytes(rest[1..9].try_into().expect("8 bytes"));
        let version_len = i32::from_le_bytes(rest[9..13].try_into().expect("4 bytes"));
        let skip = usize::try_from(version_len.max(0)).unwrap_or(0);
        let payload = rest
            .get(13 + skip..)
            .ok_or_else(|| FormatError::new("Rails 7.1 entry version is cut short"))?;
        let payload = if kind & COMPRESSED_FLAG != 0 {
            inflate(payload)?
        } else {
            payload.to_vec()
        };
        let value = match kind & !COMPRESSED_FLAG {
            TYPE_OBJECT => plain(marshal::load(&payload)?)?,
            TYPE_UTF8 => utf8_or_bytes(payload),
            TYPE_BINARY | TYPE_ASCII => Value::Bytes(payload),
            other => return Err(FormatError::new(format!("Rails 7.1 entry type {other:#x} is unknown"))),
        };
        let detected = if kind & COMPRESSED_FLAG != 0 {
            "rails 7.1 (compressed)"
        } else {
            "rails 7.1"
        };
        return Ok(Decoded {
            value,
            expires_at: (expires_at >= 0.0).then_some(expires_at),
            detected: detected.into(),
        });
    }
    match bytes.first() {
        Some(&MARK_70_UNCOMPRESSED) | Some(&MARK_70_COMPRESSED) => {
            let compressed = bytes[0] == MARK_70_COMPRESSED;
            let payload = if compressed {
                inflate(&bytes[1..])?
            } else {
                bytes[1..].to_vec()
            };
            let Value::List(mut members) = plain(marshal::load(&payload)?)? else {
                return Err(FormatError::new(
                    "Rails 7.0 entry is not an Array [value, expires_at, version]",
                ));
            };
            if members.is_empty() {
                return Err(FormatError::new("Rails 7.0 entry is an empty Array"));
            }
            let expires_at = match members.get(1) {
                Some(Value::Float(f)) => Some(*f),
                Some(Value::Int(i)) => Some(*i as f64),
                _ => None,
            };
            let detected = if compressed {
                "rails 7.0 (compressed)"
            } else {
                "rails 7.0"
            };
            Ok(Decoded {
                value: members.swap_remove(0),
                expires_at,
                detected: detected.into(),
            })
        }
        Some(4) => decode_61(marshal::load(bytes)?),
        _ => Err(FormatError::new(
            "not a Rails cache entry: no 7.1 signature, 7.0 mark or Marshal header",
        )),
    }
}

fn decode_61(entry: Ruby) -> Result<Decoded, FormatError> {
    let Ruby::Object(class, ivars) = entry else {
        return Err(FormatError::new(format!(
            "Marshal data is not an {ENTRY_CLASS} (Rails 6.1 entry)"
        )));
    };
    if class != ENTRY_CLASS {
        return Err(FormatError::new(format!(
            "Marshal data is a {class}, not an {ENTRY_CLASS}"
        )));
    }
    let get = |name: &str| ivars.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let float = |name: &str| match get(name) {
        Some(Ruby::Value(Value::Float(f))) => Some(*f),
        Some(Ruby::Value(Value::Int(i))) => Some(*i as f64),
        _ => None,
    };
    let compressed = matches!(get("@compressed"), Some(Ruby::Value(Value::Bool(true))));
    let value = match get("@value").cloned() {
        Some(Ruby::Value(Value::Bytes(b))) if compressed => plain(marshal::load(&inflate(&b)?)?)?,
        Some(v) => plain(v)?,
        None => return Err(FormatError::new(format!("{ENTRY_CLASS} has no @value"))),
    };
    let expires_at = float("@expires_in").map(|e| float("@created_at").unwrap_or(0.0) + e);
    Ok(Decoded {
        value,
        expires_at,
        detected: if compressed {
            "rails 6.1 (compressed)"
        } else {
            "rails 6.1"
        }
        .into(),
    })
}

fn plain(r: Ruby) -> Result<Value, FormatError> {
    match r {
        Ruby::Value(v) => Ok(v),
        Ruby::Object(class, _) => Err(FormatError::new(format!(
            "the cached value is a Ruby {class} object: only nil, true, false, Integer, Float, String, Array and Hash can be shown as JSON"
        ))),
    }
}

fn utf8_or_bytes(b: Vec<u8>) -> Value {
    match String::from_utf8(b) {
        Ok(s) => Value::Str(s),
        Err(e) => Value::Bytes(e.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;

    fn config(version: RailsVersion, compress: bool) -> RailsFormat {
        RailsFormat {
            namespace: Some("myapp".into()),
            cache_format_version: version,
            compress,
            compress_threshold: ByteSize(1024),
        }
    }

    #[test]
    fn mem_cache_keys_are_escaped_as_rails_does_and_long_ones_refused() {
        let mut c = config(RailsVersion::V6_1, true);
        c.namespace = Some("app".into());
        // `"%#{byte.to_s(16).upcase}"`: a tab is %9, a space %20, é (C3 A9) %C3%A9.
        assert_eq!(
            mem_cache_key(&c, "a b\t100%/é\u{7f}").unwrap(),
            "app:a%20b%9100%25/%C3%A9%7F"
        );
        c.namespace = None;
        assert_eq!(mem_cache_key(&c, &"k".repeat(250)).unwrap().len(), 250);
        let err = mem_cache_key(&c, &"é".repeat(42)).unwrap_err().to_string();
        assert!(err.contains("252 bytes once MemCacheStore escapes it"), "{err}");
    }

    #[test]
    fn keys_are_namespaced_and_long_ones_follow_the_version() {
        let c = config(RailsVersion::V7_1, true);
        assert_eq!(key(&c, "products.1").unwrap(), "myapp:products.1");
        let bare = RailsFormat {
            namespace: None,
            ..c.clone()
        };
        assert_eq!(key(&bare, "products.1").unwrap(), "products.1");
        let long = "k".repeat(1100);
        assert!(key(&c, &long).unwrap_err().to_string().contains("1024"));
        let k61 = key(&config(RailsVersion::V6_1, true), &long).unwrap();
        assert_eq!(k61.len(), 1024);
        let digest = format!("{:x}", Sha256::digest(format!("myapp:{long}").as_bytes()));
        assert!(
            k61.ends_with(&format!(":sha2:{digest}")) && k61.starts_with("myapp:kkk"),
            "{k61}"
        );
    }

    /// `ActiveSupport::Cache::Coder#dump_compressed` of `Entry.new(3, expires_at: 1700000060.5)`:
    /// `"\x00\x11" + [1, 1700000060.5, -1].pack("CEl<") + Marshal.dump(3)`.
    #[test]
    fn v71_framing_matches_the_coder() {
        let c = config(RailsVersion::V7_1, true);
        let bytes = encode(&c, &Value::Int(3), 1_700_000_000.5, Some(60.0));
        let mut expected = vec![0x00, 0x11, 0x01];
        expected.extend_from_slice(&1_700_000_060.5f64.to_le_bytes());
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(b"\x04\x08i\x08");
        assert_eq!(bytes, expected);
        // Strings are their own payload (type 2), and no expiry is -1.0.
        let s = encode(&c, &Value::Str("hé".into()), 0.0, None);
        assert_eq!(&s[..3], &[0x00, 0x11, 0x02]);
        assert_eq!(&s[3..11], &(-1.0f64).to_le_bytes());
        assert_eq!(&s[15..], "hé".as_bytes());
        let d = decode(&s).unwrap();
        assert_eq!((d.value, d.expires_at), (Value::Str("hé".into()), None));
    }

    #[test]
    fn v70_framing_is_a_mark_and_a_packed_array() {
        let c = config(RailsVersion::V7_0, true);
        let bytes = encode(&c, &Value::Bool(true), 10.0, Some(0.5));
        assert_eq!(bytes, b"\x00\x04\x08[\x07Tf\x0910.5");
        let no_ttl = encode(&c, &Value::Null, 10.0, None);
        assert_eq!(no_ttl, b"\x00\x04\x08[\x060");
    }

    /// Ruby 3.1 + ActiveSupport 6.1: `Marshal.dump(Entry.new("x", expires_in: 60, compress: false))`
    /// with @created_at = 1796118360.887836.
    #[test]
    fn v61_entry_matches_activesupport() {
        let c = config(RailsVersion::V6_1, false);
        let bytes = encode(&c, &Value::Str("x".into()), 1_796_118_360.887_836, Some(60.0));
        let expected: &[u8] = b"\x04\x08o: ActiveSupport::Cache::Entry\x09:\x0b@valueI\"\x06x\x06:\x06ET:\x0d@version0:\x10@created_atf\x161796118360.887836:\x10@expires_inf\x086e1";
        assert_eq!(bytes, expected);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.value, Value::Str("x".into()));
        assert!((d.expires_at.unwrap() - 1_796_118_420.887_836).abs() < 1e-6);
    }

    #[test]
    fn compression_follows_the_threshold_in_every_version() {
        let big = Value::List((0..400).map(|_| Value::Str("abc".into())).collect());
        for v in [RailsVersion::V6_1, RailsVersion::V7_0, RailsVersion::V7_1] {
            let on = encode(&config(v, true), &big, 100.0, Some(5.0));
            let off = encode(&config(v, false), &big, 100.0, Some(5.0));
            assert!(on.len() < off.len() / 4, "{v:?} compresses");
            for bytes in [&on, &off] {
                let d = decode(bytes).unwrap();
                assert_eq!(d.value, big);
                assert_eq!(d.expires_at, Some(105.0));
            }
            assert!(decode(&on).unwrap().detected.contains("compressed"));
            // Under the threshold nothing is compressed.
            let small = encode(&config(v, true), &Value::Str("abc".repeat(10)), 100.0, None);
            assert!(!decode(&small).unwrap().detected.contains("compressed"));
        }
    }

    #[test]
    fn decode_refuses_ruby_objects_and_garbage() {
        // Marshal.dump(Time.at(0)) style user objects come as 'Iu' / 'o'.
        let obj = b"\x04\x08o:\x08Foo\x00";
        assert!(decode(obj).unwrap_err().to_string().contains("Foo"));
        assert!(decode(b"{\"json\":1}")
            .unwrap_err()
            .to_string()
            .contains("not a Rails cache entry"));
        assert!(decode(&[0x00, 0x11, 0x01]).is_err());
    }
}
