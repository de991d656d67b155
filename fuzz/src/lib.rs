//! Helpers shared by the fuzz targets in `fuzz_targets/`: the formats the
//! format targets run under, value comparisons, and a runtime for the async
//! entry points.

use preheat::config::{ByteSize, DjangoFormat, FormatConfig, LaravelFormat, LaravelVersion, RailsFormat, RailsVersion};
use preheat::format::{Decoded, Laravel, Store, Value};
use std::future::Future;

/// The path every fuzzed config is read from (it anchors relative paths).
pub const CONFIG_PATH: &str = "/etc/preheat/preheat.toml";

/// Whether two values are the same, floats compared bit for bit (any NaN equals any NaN).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

/// Whether [`Value::to_json`] then [`Value::from_produced`] gives `v` back:
/// no bytes (JSON shows them as text), no non-finite float (JSON `null`).
pub fn json_representable(v: &Value) -> bool {
    match v {
        Value::Bytes(_) => false,
        Value::Float(f) => f.is_finite(),
        Value::List(items) => items.iter().all(json_representable),
        Value::Map(entries) => entries.iter().all(|(_, v)| json_representable(v)),
        _ => true,
    }
}

/// Laravel reads back what it wrote (`stored`, read as `decoded`): serialize()
/// bytes are a fixed point (the decoded value serializes to the same bytes); a
/// raw number (Redis store) reads back as the number written.
pub fn laravel_reads_back(laravel: &Laravel, stored: &[u8], decoded: &Decoded) {
    if !decoded.detected.contains("raw number") {
        let again = laravel.encode(&decoded.value);
        assert_eq!(
            again,
            stored,
            "{decoded:?} serializes to {:?}, not to the {:?} it was read from",
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(stored)
        );
        return;
    }
    let text = std::str::from_utf8(stored).expect("a raw number is ASCII").trim();
    let written: f64 = text.parse().expect("a raw number parses as a float");
    let read = match &decoded.value {
        Value::Int(i) => *i as f64,
        Value::BigInt(b) => b.to_decimal().parse().expect("decimal digits"),
        Value::Float(f) => *f,
        other => panic!("the raw number {text:?} read back as {other:?}"),
    };
    assert!(
        read == written || (read.is_nan() && written.is_nan()),
        "{text:?} read back as {read}"
    );
}

/// One of the formats a target can have, by `selector` (modulo their number):
/// raw, Rails 6.1/7.0/7.1 with and without namespace and compression, Laravel
/// 8–13 on the Redis, SQLite and PostgreSQL stores, Django.
pub fn format(selector: u8) -> (FormatConfig, Store) {
    let rails = |version, namespace: Option<&str>, compress, threshold| {
        FormatConfig::Rails(RailsFormat {
            namespace: namespace.map(Into::into),
            cache_format_version: version,
            compress,
            compress_threshold: ByteSize(threshold),
        })
    };
    let laravel = |version, app_name: Option<&str>| {
        FormatConfig::Laravel(LaravelFormat {
            version,
            app_name: app_name.map(Into::into),
            cache_prefix: None,
            redis_prefix: None,
        })
    };
    let django = |key_prefix: &str, version| {
        FormatConfig::Django(DjangoFormat {
            key_prefix: key_prefix.into(),
            version,
        })
    };
    let formats = [
        (FormatConfig::Raw {}, Store::Redis),
        (rails(RailsVersion::V6_1, Some("myapp"), true, 1024), Store::Redis),
        (rails(RailsVersion::V6_1, None, true, 16), Store::Redis),
        (rails(RailsVersion::V7_0, Some("myapp"), true, 16), Store::Redis),
        (rails(RailsVersion::V7_0, None, false, 0), Store::Redis),
        (rails(RailsVersion::V7_1, Some("myapp"), true, 1024), Store::Redis),
        (rails(RailsVersion::V7_1, None, true, 0), Store::Redis),
        (laravel(LaravelVersion::V8, None), Store::Redis),
        (laravel(LaravelVersion::V11, Some("My App")), Store::Redis),
        (laravel(LaravelVersion::V12, None), Store::Redis),
        (laravel(LaravelVersion::V8, None), Store::Sqlite),
        (laravel(LaravelVersion::V12, None), Store::Sqlite),
        (laravel(LaravelVersion::V11, None), Store::Postgres),
        (laravel(LaravelVersion::V13, Some("shop")), Store::Postgres),
        (django("", 1), Store::Redis),
        (django("app", 3), Store::Redis),
    ];
    formats[usize::from(selector) % formats.len()].clone()
}

/// Runs a future to completion on a single-threaded runtime kept for the process.
pub fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
    }
    RUNTIME.with(|rt| rt.block_on(future))
}
