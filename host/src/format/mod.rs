//! Value formats: what the target application reads natively.
//!
//! Between `produce` and the backend, a plugin's value (JSON, else text or
//! bytes, see [`Value::from_produced`]) is converted to the framework's
//! encoding and its key to the framework's key layout; the expiry written
//! inside the value (Rails) is the one the backend sets as TTL. Decoders read
//! values back for `cache get` and the `cache-get` import. One file per
//! framework; docs/FRAMEWORKS.md says where each rule comes from.

mod django;
mod laravel;
mod marshal;
mod rails;
mod value;

pub use laravel::Laravel;
pub use value::{BigInt, Value};

use crate::config::FormatConfig;
pub use crate::config::Store;
use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest value a decoder inflates (zlib in Rails entries).
const MAX_INFLATED_BYTES: u64 = 64 << 20;

/// Why a value or key cannot be encoded or decoded; the message says why and what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(String);

impl FormatError {
    pub(crate) fn new(message: impl Into<String>) -> FormatError {
        FormatError(message.into())
    }
}

/// A stored value read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The value, as JSON can show it.
    pub value: Value,
    /// The expiry written inside the value (unix seconds), when the format has one.
    pub expires_at: Option<f64>,
    /// Which format and framing were found (`rails 7.1`, `laravel serialize()`, …).
    pub detected: String,
}

impl Decoded {
    /// Whether the expiry inside the value has passed at `now` (the
    /// application would treat the value as a miss).
    pub fn is_expired(&self, now: SystemTime) -> bool {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The expiry inside the value as RFC 3339 text; the number itself when
    /// it is not a time one can print (infinite, NaN, beyond year 9999).
    pub fn expiry_text(&self) -> Option<String> {
        const YEAR_10000: f64 = 253_402_300_800.0;
        let at = self.expires_at?;
        Some(match Duration::try_from_secs_f64(at) {
            Ok(d) if at < YEAR_10000 => humantime::format_rfc3339_millis(UNIX_EPOCH + d).to_string(),
            _ => format!("{at} (unix seconds)"),
        })
    }
}

/// A resolved format: built once per plugin and run, applied to every key.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// Bytes exactly as the plugin produced them, under the plugin's key.
    Raw,
    /// Rails `RedisCacheStore`.
    Rails(crate::config::RailsFormat),
    /// Rails `MemCacheStore` over Dalli: its escaped keys, the 6.1 entry Dalli marshals.
    RailsMemCache(crate::config::RailsFormat),
    /// Laravel `RedisStore` / `DatabaseStore`.
    Laravel(laravel::Laravel),
    /// Django `RedisCache`.
    Django(crate::config::DjangoFormat),
}

impl Format {
    /// Resolves `config` for values stored in `store`.
    pub fn new(config: &FormatConfig, store: Store) -> Result<Format, FormatError> {
        Ok(match config {
            FormatConfig::Raw {} => Format::Raw,
            // Config validation admits only cache_format_version 6.1 on memcached.
            FormatConfig::Rails(r) if store == Store::Memcached => Format::RailsMemCache(r.clone()),
            FormatConfig::Rails(r) => Format::Rails(r.clone()),
            FormatConfig::Laravel(l) => Format::Laravel(laravel::Laravel::new(l, store)?),
            FormatConfig::Django(d) => Format::Django(d.clone()),
        })
    }

    /// Whether values are stored as produced.
    pub fn is_raw(&self) -> bool {
        matches!(self, Format::Raw)
    }

    /// The key the application reads for a plugin's key.
    pub fn storage_key(&self, key: &str) -> Result<String, FormatError> {
        Ok(match self {
            Format::Raw => key.to_string(),
            Format::Rails(r) => rails::key(r, key)?,
            Format::RailsMemCache(r) => rails::mem_cache_key(r, key)?,
            Format::Laravel(l) => l.key(key),
            Format::Django(d) => django::key(d, key),
        })
    }

    /// The stored bytes of a produced value written at `now` with `ttl`
    /// (the TTL the backend sets: a Rails entry's expiry is `now + ttl`).
    /// Raw values move through untouched.
    pub fn encode_value(
        &self,
        produced: Vec<u8>,
        ttl: Option<Duration>,
        now: SystemTime,
    ) -> Result<Vec<u8>, FormatError> {
        if self.is_raw() {
            return Ok(produced);
        }
        let value = Value::from_produced(&produced)?;
        Ok(match self {
            Format::Raw => unreachable!("raw values returned above"),
            Format::Rails(r) | Format::RailsMemCache(r) => {
                let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
                rails::encode(r, &value, now, ttl.map(|t| t.as_secs_f64()))
            }
            Format::Laravel(l) => l.encode(&value),
            Format::Django(_) => django::encode(&value),
        })
    }

    /// The memcached item flags the application's client reads a value by:
    /// Dalli's `FLAG_SERIALIZED` (0x1: Marshal) for Rails, php-memcached's
    /// `MEMC_VAL_IS_SERIALIZED` (4: PHP `serialize()`) for Laravel, none for raw bytes.
    pub fn memcached_flags(&self) -> u32 {
        match self {
            Format::Raw | Format::Django(_) => 0,
            Format::Rails(_) | Format::RailsMemCache(_) => 1,
            Format::Laravel(_) => 4,
        }
    }

    /// Reads stored bytes back.
    pub fn decode(&self, stored: &[u8]) -> Result<Decoded, FormatError> {
        match self {
            Format::Raw => Ok(Decoded {
                value: Value::from_produced(stored)?,
                expires_at: None,
                detected: "raw".into(),
            }),
            Format::Rails(_) | Format::RailsMemCache(_) => rails::decode(stored),
            Format::Laravel(l) => l.decode(stored),
            Format::Django(_) => django::decode(stored),
        }
    }

    /// The format's name for messages (`raw`, `rails 7.1`, `laravel`, `django`).
    pub fn name(&self) -> String {
        match self {
            Format::Raw => "raw".into(),
            Format::Rails(r) => format!("rails {}", r.cache_format_version.as_str()),
            Format::RailsMemCache(r) => format!("rails {} (MemCacheStore)", r.cache_format_version.as_str()),
            Format::Laravel(_) => "laravel".into(),
            Format::Django(_) => "django".into(),
        }
    }
}

/// zlib-inflates at most [`MAX_INFLATED_BYTES`] (a stored value may be hostile).
fn inflate(data: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| FormatError::new(format!("compressed value is not valid zlib data: {e}")))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(FormatError::new(format!(
            "compressed value inflates past {MAX_INFLATED_BYTES} bytes; not read"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ByteSize, RailsFormat, RailsVersion};

    #[test]
    fn expiries_print_whatever_a_stored_value_holds() {
        let at = |expires_at| Decoded {
            value: Value::Null,
            expires_at,
            detected: String::new(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(at(Some(1_000.5)).expiry_text().unwrap(), "1970-01-01T00:16:40.500Z");
        assert!(!at(Some(1_000.5)).is_expired(now) && at(Some(1_000.0)).is_expired(now));
        assert!(!at(None).is_expired(now) && at(None).expiry_text().is_none());
        // What a hostile or corrupt entry may hold must not panic the CLI.
        for (v, text) in [
            (f64::INFINITY, "inf (unix seconds)"),
            (f64::NAN, "NaN (unix seconds)"),
            (-5.0, "-5 (unix seconds)"),
        ] {
            assert_eq!(at(Some(v)).expiry_text().unwrap(), text);
        }
        assert!(at(Some(1e300)).expiry_text().unwrap().ends_with("0 (unix seconds)"));
        assert!(at(Some(f64::NEG_INFINITY)).is_expired(now) && !at(Some(f64::NAN)).is_expired(now));
    }

    #[test]
    fn raw_is_untouched_and_formats_round_trip_through_decode() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let produced = br#"{"id":7,"tags":["a","b"],"price":19.99,"big":123456789012345678901234567890}"#.to_vec();
        assert_eq!(Format::Raw.encode_value(produced.clone(), None, now).unwrap(), produced);
        let rails = Format::Rails(RailsFormat {
            namespace: None,
            cache_format_version: RailsVersion::V7_1,
            compress: true,
            compress_threshold: ByteSize(1024),
        });
        let bytes = rails
            .encode_value(produced.clone(), Some(Duration::from_secs(90)), now)
            .unwrap();
        let d = rails.decode(&bytes).unwrap();
        assert_eq!(d.value.to_json(), String::from_utf8(produced.clone()).unwrap());
        assert_eq!(
            d.expires_at,
            Some(1_700_000_090.0),
            "the entry expires when the TTL runs out"
        );
        let django = Format::Django(crate::config::DjangoFormat {
            key_prefix: String::new(),
            version: 1,
        });
        let d = django
            .decode(&django.encode_value(produced.clone(), None, now).unwrap())
            .unwrap();
        assert_eq!(d.value.to_json(), String::from_utf8(produced).unwrap());
    }

    #[test]
    fn inflate_is_bounded() {
        use std::io::Write as _;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..=(MAX_INFLATED_BYTES >> 20) {
            z.write_all(&chunk).unwrap();
        }
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 200_000);
        assert!(inflate(&bomb).unwrap_err().to_string().contains("inflates past"));
    }
}
