//! The framework decoders (`cache get`, the `cache-get` import): stored bytes
//! of any shape read by the format's decoder (Rails entries of every version
//! with Marshal and zlib, Laravel serialize() / raw numbers / base64, Django
//! raw ints and pickle).
//!
//! Input: a format selector byte (`preheat_fuzz::format`), then the stored bytes.
//!
//! Properties: decoding never panics and stays within bounded memory (zlib
//! and Marshal/pickle links are capped); a decoded value written again reads
//! back the same: exactly for Rails, Django and raw (values JSON can carry),
//! Laravel's serialize() bytes as a fixed point and the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use preheat::format::Format;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let [selector, stored @ ..] = data else { return };
    let (config, store) = preheat_fuzz::format(*selector);
    let format = Format::new(&config, store).expect("the fixed formats resolve");
    let Ok(decoded) = format.decode(stored) else { return };
    let again = match &format {
        Format::Laravel(laravel) => laravel.encode(&decoded.value),
        _ if !preheat_fuzz::json_representable(&decoded.value) => return,
        _ => {
            let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            match format.encode_value(decoded.value.to_json().into_bytes(), None, now) {
                Ok(again) => again,
                Err(_) => return, // nested deeper than a plugin's JSON may be
            }
        }
    };
    let reread = format
        .decode(&again)
        .unwrap_or_else(|e| panic!("{} cannot read what it wrote: {e}", format.name()));
    if let Format::Laravel(laravel) = &format {
        preheat_fuzz::laravel_reads_back(laravel, &again, &reread);
        if reread.detected.contains("raw number") {
            return;
        }
    }
    assert!(
        preheat_fuzz::same(&reread.value, &decoded.value),
        "{} wrote {:?} back as {:?}",
        format.name(),
        decoded.value,
        reread.value
    );
});
