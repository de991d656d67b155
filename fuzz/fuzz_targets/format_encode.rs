//! The framework encoders (`format/`: Rails 6.1/7.0/7.1 entries over Marshal,
//! Laravel's serialize() and raw numbers, Django's pickle, raw): a produced
//! value encoded under a format, TTL and clock, then read back by the
//! format's decoder.
//!
//! Input: a format selector byte (`preheat_fuzz::format`), a TTL byte (0: none,
//! else that many hours and seconds), then what the plugin produced (JSON,
//! else text or bytes); it is also the key whose storage key is computed.
//!
//! Properties: an integer beyond 64 bits converts to its nearest float; a
//! Rails storage key is at most 1024 bytes; what an encoder writes its decoder
//! reads; Rails and Django give the produced value back exactly (and Rails the
//! expiry `now + ttl`); Laravel's serialize() bytes are a fixed point (decoded
//! and re-encoded: the same bytes) and its raw numbers read back as the number
//! written; raw bytes are untouched.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preheat::format::{Format, Value};
use std::time::{Duration, UNIX_EPOCH};

/// The clock of every write: 2023-11-14T22:13:20Z.
const NOW_SECS: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let [selector, ttl, produced @ ..] = data else { return };
    let (config, store) = preheat_fuzz::format(*selector);
    let format = Format::new(&config, store).expect("the fixed formats resolve");
    let key = String::from_utf8_lossy(produced);
    if let (Ok(stored), Format::Rails(_)) = (format.storage_key(&key), &format) {
        assert!(stored.len() <= 1024, "a Rails key of {} bytes", stored.len());
    }
    let ttl = (*ttl > 0).then(|| Duration::from_secs(u64::from(*ttl) * 3601));
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let value = match Value::from_produced(produced) {
        Ok(value) => value,
        Err(_) => return assert!(format.is_raw() || format.encode_value(produced.to_vec(), ttl, now).is_err()),
    };
    if let Value::BigInt(big) = &value {
        // Laravel writes it as the float PHP makes of it: the nearest one.
        let nearest: f64 = big.to_decimal().parse().expect("decimal digits");
        assert_eq!(big.to_f64(), nearest, "{}", big.to_decimal());
    }
    let stored = format
        .encode_value(produced.to_vec(), ttl, now)
        .expect("a value that parses encodes");
    let decoded = format
        .decode(&stored)
        .unwrap_or_else(|e| panic!("{} cannot read what it wrote: {e}", format.name()));
    match &format {
        Format::Raw => assert_eq!(stored, produced),
        Format::Rails(_) | Format::RailsMemCache(_) => {
            assert!(preheat_fuzz::same(&decoded.value, &value), "{decoded:?} != {value:?}");
            assert_eq!(decoded.expires_at, ttl.map(|t| NOW_SECS as f64 + t.as_secs_f64()));
        }
        Format::Django(_) => assert!(preheat_fuzz::same(&decoded.value, &value), "{decoded:?} != {value:?}"),
        Format::Laravel(laravel) => preheat_fuzz::laravel_reads_back(laravel, &stored, &decoded),
    }
});
