//! The write-policy conformance suite: one set of cases ([`CASES`]), run
//! against every backend, each built from TOML text through the public config
//! parser as a user's `[backend]` table would be. Every case asserts the
//! outcome of each write and what is stored after it (value, and TTL via
//! `ttl()`). Adding a backend means one more `#[test]` below: its `[backend]`
//! text, the servers it needs, and what it documents it can hold ([`Holds`]).

use crate::support::{sql, MemcachedServer, PgServer, RedisCluster, RedisServer};
use preheat::backend::{Backend, Bounded, Outcome, Write};
use preheat::config::{Config, WritePolicy};
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;

#[test]
fn memory() {
    let holds = Holds {
        max_bytes: Some((8 << 20, "max_bytes")),
        ..ANY_KEY_ANY_BYTES
    };
    conform("memory", "kind = \"memory\"\nmax_bytes = \"8MiB\"", holds, ());
}

#[test]
fn redis() {
    let redis = RedisServer::start();
    let toml = format!("kind = \"redis\"\nurl = \"{}\"", redis.url());
    conform("redis", &toml, ANY_KEY_ANY_BYTES, redis);
}

#[test]
fn sqlite_binary() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let toml = format!("kind = \"sql\"\nurl = \"{url}\"\ncreate_table = true");
    conform("sqlite binary", &toml, sql_holds(None, true), dir);
}

#[test]
fn sqlite_laravel() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let toml = format!(
        "kind = \"sql\"\nurl = \"{url}\"\ncreate_table = true\nformat = {{ kind = \"laravel\", version = \"11\" }}"
    );
    // SQLite text holds any bytes, and SQLite does not enforce varchar(255).
    conform("sqlite laravel", &toml, sql_holds(None, true), dir);
}

#[test]
fn sqlite_with_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    // A table made by the application, with the timestamps older schemas carry.
    sql(&url, &["CREATE TABLE app_cache (\"key\" TEXT PRIMARY KEY, \"value\" BLOB NOT NULL, \"expiration\" INTEGER NOT NULL, \"created_at\" TIMESTAMP, \"updated_at\" TIMESTAMP)"]);
    let toml = format!("kind = \"sql\"\nurl = \"{url}\"\ntable = \"app_cache\"");
    conform("sqlite with timestamps", &toml, sql_holds(None, true), dir);
}

#[test]
fn postgres_binary() {
    let pg = PgServer::start();
    // The prefix counts against the key column's 255 characters.
    let toml = format!(
        "kind = \"sql\"\nurl = \"{}\"\ncreate_table = true\nkey_prefix = \"pfx:\"",
        pg.url()
    );
    conform("postgres binary", &toml, sql_holds(Some(255 - 4), true), pg);
}

#[test]
fn postgres_laravel() {
    let pg = PgServer::start();
    let toml = format!(
        "kind = \"sql\"\nurl = \"{}\"\ncreate_table = true\nformat = {{ kind = \"laravel\", version = \"11\" }}",
        pg.url()
    );
    conform("postgres laravel", &toml, sql_holds(Some(255), false), pg);
}

#[test]
fn postgres_schema_table() {
    let pg = PgServer::start();
    // A table outside the search path, named by its schema.
    sql(&pg.url(), &["CREATE SCHEMA cachedb"]);
    let toml = format!(
        "kind = \"sql\"\nurl = \"{}\"\ncreate_table = true\ntable = \"cachedb.cache\"",
        pg.url()
    );
    conform("postgres schema table", &toml, sql_holds(Some(255), true), pg);
}

#[test]
fn memcached_modula() {
    memcached_pool("modula");
}

#[test]
fn memcached_ketama() {
    memcached_pool("ketama");
}

#[test]
fn memcached_dalli() {
    memcached_pool("dalli");
}

/// Three memcached servers with 2 MiB items (so that the 1 MiB case fits
/// with its key and header), keys spread by `distribution`.
fn memcached_pool(distribution: &str) {
    const ITEM_SIZE_MAX: u64 = 2 << 20;
    let servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start_with(&["-I", "2m"])).collect();
    let list: Vec<String> = servers.iter().map(|s| format!("{:?}", s.address())).collect();
    let toml = format!(
        "kind = \"memcached\"\nservers = [{}]\ndistribution = \"{distribution}\"",
        list.join(", ")
    );
    // memcached's key rules; values with their key and item header up to
    // item_size_max (the backend refuses the rest before sending: memcached
    // would drop the old value); expiries up to 2038 (signed 32-bit times).
    let holds = Holds {
        key_bytes: Some(250),
        key_spaces: false,
        max_bytes: Some((ITEM_SIZE_MAX, "item_size_max")),
        latest_expiry: Some(i32::MAX as u64),
        ..ANY_KEY_ANY_BYTES
    };
    let name = match distribution {
        "modula" => "memcached modula",
        "ketama" => "memcached ketama",
        _ => "memcached dalli",
    };
    conform(name, &toml, holds, servers);
}

#[test]
fn redis_cluster() {
    // Three masters: every batch spans nodes; the awkward keys include a hash tag.
    let cluster = RedisCluster::start(3, 0);
    conform("redis-cluster", &cluster.backend_toml(), ANY_KEY_ANY_BYTES, cluster);
}

/// What a backend documents it holds, so each case asserts one exact outcome.
struct Holds {
    /// Longest key the caller may pass, in characters (`None`: no limit);
    /// a longer one is rejected alone, naming the limit.
    key_chars: Option<usize>,
    /// Longest key in bytes (memcached), likewise.
    key_bytes: Option<usize>,
    /// Keys may hold spaces and control characters; otherwise such keys
    /// are rejected alone, naming spaces.
    key_spaces: bool,
    /// Values may be any bytes; otherwise only UTF-8 text, and other values
    /// are rejected alone, naming UTF-8.
    any_bytes: bool,
    /// What a write without TTL stores: `None` no expiry, else this expiry
    /// (the backend's documented "forever").
    forever: Option<Duration>,
    /// The size bound of keys + values and the setting that names it (the
    /// memory backend's `max_bytes`, memcached's `item_size_max`): a larger
    /// value is rejected alone, naming the setting.
    max_bytes: Option<(u64, &'static str)>,
    /// The latest expiry the backend holds (unix seconds); a longer TTL is
    /// stored as that one.
    latest_expiry: Option<u64>,
}

const ANY_KEY_ANY_BYTES: Holds = Holds {
    key_chars: None,
    key_bytes: None,
    key_spaces: true,
    any_bytes: true,
    forever: None,
    max_bytes: None,
    latest_expiry: None,
};

/// The SQL cache table: a TTL-less value expires in ten years, Laravel's `forever`.
fn sql_holds(key_chars: Option<usize>, any_bytes: bool) -> Holds {
    Holds {
        key_chars,
        any_bytes,
        forever: Some(Duration::from_secs(10 * 365 * 24 * 3600)),
        ..ANY_KEY_ANY_BYTES
    }
}

/// A connected backend under test, the runtime its calls run on, and what keeps
/// its servers and files alive (dropped last).
struct Target {
    name: &'static str,
    backend: Backend,
    holds: Holds,
    rt: tokio::runtime::Runtime,
    _keep: Box<dyn Any>,
}

/// Connects `[backend]` `toml` through the config parser and runs every case,
/// each on its own keys; fails naming every case that failed.
fn conform(name: &'static str, toml: &str, holds: Holds, keep: impl Any) {
    let text = format!("[backend]\n{toml}\n");
    let config = Config::parse(&text, Path::new("backends.toml")).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    config.validate().unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = rt
        .block_on(Backend::connect(&config.backend))
        .unwrap_or_else(|e| panic!("{name}: connecting: {e:#}"));
    let target = Target {
        name,
        backend,
        holds,
        rt,
        _keep: Box::new(keep),
    };
    let failed: Vec<String> = CASES
        .iter()
        .filter_map(|&(case, run)| {
            let ctx = Ctx { t: &target, case };
            catch_unwind(AssertUnwindSafe(|| run(&ctx))).err().map(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                format!("  {case}: {message}")
            })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "backend {name} fails {} of {} conformance cases:\n{}",
        failed.len(),
        CASES.len(),
        failed.join("\n")
    );
}

/// A named case: a function of one backend.
type Case = (&'static str, fn(&Ctx));

/// The cases.
const CASES: &[Case] = &[
    ("policies_by_key_state", policies_by_key_state),
    ("always_resets_the_ttl", always_resets_the_ttl),
    ("no_ttl_stores_no_expiry", no_ttl_stores_no_expiry),
    ("large_batch_in_order", large_batch_in_order),
    ("one_mib_value", one_mib_value),
    ("awkward_keys", awkward_keys),
    ("empty_value", empty_value),
    ("value_bytes", value_bytes),
    ("key_length", key_length),
    ("concurrent_batches", concurrent_batches),
    ("ttl_beyond_forever", ttl_beyond_forever),
    ("refused_write_is_rejected_alone", refused_write_is_rejected_alone),
    ("empty_batch", empty_batch),
    ("duplicate_keys", duplicate_keys),
    ("max_batch_size", max_batch_size),
    ("nul_in_text_value", nul_in_text_value),
    ("no_expiry_and_long_thresholds", no_expiry_and_long_thresholds),
    ("sub_second_ttl", sub_second_ttl),
];

/// How far a TTL may have run down between a write and its check.
const SLACK: Duration = Duration::from_secs(30);

/// One case on one target: its keys are `case/name`, its failures name both.
struct Ctx<'a> {
    t: &'a Target,
    case: &'static str,
}

impl Ctx<'_> {
    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.case)
    }

    /// A write of `value` under this case's key `name`, with a TTL in seconds.
    fn w(&self, name: &str, value: impl Into<Vec<u8>>, ttl_secs: Option<u64>) -> Write {
        Write {
            key: self.key(name),
            value: value.into().into(),
            ttl: ttl_secs.map(Duration::from_secs),
        }
    }

    /// One `write_batch` call; one outcome per write.
    fn write(&self, policy: WritePolicy, writes: &[Write]) -> Vec<Outcome> {
        let outcomes = self
            .t
            .rt
            .block_on(self.t.backend.write_batch(policy, writes))
            .unwrap_or_else(|e| panic!("{}: {policy} batch of {} failed: {e}", self.t.name, writes.len()));
        assert_eq!(outcomes.len(), writes.len(), "{}: one outcome per write", self.t.name);
        outcomes
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.t
            .rt
            .block_on(self.t.backend.get(key))
            .unwrap_or_else(|e| panic!("{}: get {key:?}: {e}", self.t.name))
    }

    fn ttl(&self, key: &str) -> Option<Option<Duration>> {
        self.t
            .rt
            .block_on(self.t.backend.ttl(key))
            .unwrap_or_else(|e| panic!("{}: ttl {key:?}: {e}", self.t.name))
    }

    fn get_at_most(&self, key: &str, max: u64) -> Bounded {
        self.t
            .rt
            .block_on(self.t.backend.get_at_most(key, max))
            .unwrap_or_else(|e| panic!("{}: get_at_most {key:?}: {e}", self.t.name))
    }

    /// `key` holds `value` with `ttl` remaining (within [`SLACK`]); `None`: no
    /// expiry, or the backend's forever.
    fn assert_stored(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let got = self.get(key);
        assert!(
            got.as_deref() == Some(value),
            "{key:?} holds {}, expected {}",
            got.as_deref().map_or("nothing".into(), show),
            show(value)
        );
        let expected = ttl.or(self.t.holds.forever);
        let remaining = self.ttl(key);
        let ok = match (expected, remaining) {
            (None, Some(None)) => true,
            (Some(want), Some(Some(left))) => left <= want && left + SLACK > want,
            _ => false,
        };
        assert!(
            ok,
            "{key:?} has TTL {remaining:?}, expected {expected:?} (within {SLACK:?})"
        );
    }

    /// Nothing live under `key`, for every read.
    fn assert_absent(&self, key: &str) {
        assert_eq!(self.get(key).map(|v| show(&v)), None, "get {key:?}");
        assert_eq!(self.ttl(key), None, "ttl {key:?}");
        assert_eq!(self.get_at_most(key, 1 << 20), Bounded::Absent, "get_at_most {key:?}");
    }
}

/// A value for messages: short ones as text, long ones by size.
fn show(value: &[u8]) -> String {
    if value.len() <= 64 {
        format!("{:?}", String::from_utf8_lossy(value))
    } else {
        format!(
            "{} bytes starting {:?}",
            value.len(),
            String::from_utf8_lossy(&value[..32])
        )
    }
}

/// A policy as part of a key name: its text without spaces, which some backends' keys cannot hold.
fn name_of(policy: &WritePolicy) -> String {
    policy.to_string().replace(' ', "_")
}

fn refresh(threshold: &str) -> WritePolicy {
    WritePolicy::parse(&format!("refresh-if-ttl-below={threshold}")).unwrap()
}

/// Every policy against every state a key can be in, in one batch each:
/// absent, expired (counts as absent), fresh with an hour left, near expiry
/// (10 s left, under the 60 s threshold), and without expiry (fresh at any
/// threshold below the backend's forever). A zero threshold refreshes
/// nothing live. Fresh keys keep their value and TTL; written ones get the
/// new value and TTL.
fn policies_by_key_state(c: &Ctx) {
    use Outcome::{Fresh as F, Written as W};
    let policies = [
        (WritePolicy::IfMissing, [F, W, F, W, F]),
        (refresh("60s"), [F, W, F, W, W]),
        (refresh("0s"), [F, W, F, W, F]),
        (refresh("365d"), [W, W, F, W, W]),
        (WritePolicy::Always, [W, W, W, W, W]),
    ];
    // The batch order, mixed so that a backend reporting outcomes out of order shows.
    let states = ["far", "absent", "forever", "expired", "near"];
    let old_ttl = |state: &str| match state {
        "far" => Some(3600),
        "near" => Some(10),
        "expired" => Some(1),
        _ => None,
    };
    let setup: Vec<Write> = policies
        .iter()
        .flat_map(|(policy, _)| {
            states
                .iter()
                .filter(|&&s| s != "absent")
                .map(move |s| c.w(&format!("{}/{s}", name_of(policy)), "old", old_ttl(s)))
        })
        .collect();
    assert!(c.write(WritePolicy::Always, &setup).iter().all(|o| *o == W));
    std::thread::sleep(Duration::from_millis(2200));
    for (policy, expected) in &policies {
        let key = |s: &str| c.key(&format!("{}/{s}", name_of(policy)));
        c.assert_absent(&key("expired"));
        let new = format!("new under {policy}");
        let batch: Vec<Write> = states
            .iter()
            .map(|s| c.w(&format!("{}/{s}", name_of(policy)), new.clone(), Some(7200)))
            .collect();
        assert_eq!(&c.write(*policy, &batch), expected, "{policy} over {states:?}");
        for (state, outcome) in states.iter().zip(expected) {
            if *outcome == W {
                c.assert_stored(&key(state), new.as_bytes(), Some(Duration::from_secs(7200)));
            } else {
                c.assert_stored(&key(state), b"old", old_ttl(state).map(Duration::from_secs));
            }
        }
    }
}

/// `always` sets the new TTL whatever was there: shorter, none, or one where there was none.
fn always_resets_the_ttl(c: &Ctx) {
    let before = [
        c.w("long", "old", Some(7200)),
        c.w("timed", "old", Some(3600)),
        c.w("untimed", "old", None),
    ];
    assert_eq!(c.write(WritePolicy::Always, &before), vec![Outcome::Written; 3]);
    let after = [
        c.w("long", "new", Some(60)),
        c.w("timed", "new", None),
        c.w("untimed", "new", Some(60)),
    ];
    assert_eq!(c.write(WritePolicy::Always, &after), vec![Outcome::Written; 3]);
    c.assert_stored(&c.key("long"), b"new", Some(Duration::from_secs(60)));
    c.assert_stored(&c.key("timed"), b"new", None);
    c.assert_stored(&c.key("untimed"), b"new", Some(Duration::from_secs(60)));
}

/// A write without TTL stores no expiry under every policy, also when refresh
/// rewrites a key near expiry; such a key is fresh to refresh and if-missing.
fn no_ttl_stores_no_expiry(c: &Ctx) {
    for policy in [WritePolicy::IfMissing, refresh("1h"), WritePolicy::Always] {
        let write = c.w(&name_of(&policy), "v", None);
        assert_eq!(
            c.write(policy, std::slice::from_ref(&write)),
            [Outcome::Written],
            "{policy}"
        );
        c.assert_stored(&write.key, b"v", None);
    }
    assert_eq!(
        c.write(WritePolicy::Always, &[c.w("near", "old", Some(10))]),
        [Outcome::Written]
    );
    assert_eq!(c.write(refresh("1m"), &[c.w("near", "new", None)]), [Outcome::Written]);
    c.assert_stored(&c.key("near"), b"new", None);
    for policy in [WritePolicy::IfMissing, refresh("1h")] {
        assert_eq!(
            c.write(policy, &[c.w("near", "again", Some(5))]),
            [Outcome::Fresh],
            "{policy}"
        );
        c.assert_stored(&c.key("near"), b"new", None);
    }
}

/// 5,000 keys in one call, every third already present: one outcome per
/// write, in order, and each key holds what its outcome says.
fn large_batch_in_order(c: &Ctx) {
    const N: usize = 5000;
    let present: Vec<Write> = (0..N)
        .step_by(3)
        .map(|i| c.w(&i.to_string(), format!("old {i}"), Some(3600)))
        .collect();
    assert!(c
        .write(WritePolicy::Always, &present)
        .iter()
        .all(|o| *o == Outcome::Written));
    let batch: Vec<Write> = (0..N)
        .map(|i| c.w(&i.to_string(), format!("new {i}"), Some(7200)))
        .collect();
    let outcomes = c.write(WritePolicy::IfMissing, &batch);
    for (i, outcome) in outcomes.iter().enumerate() {
        let (expected, value, ttl) = if i % 3 == 0 {
            (Outcome::Fresh, format!("old {i}"), 3600)
        } else {
            (Outcome::Written, format!("new {i}"), 7200)
        };
        assert_eq!(*outcome, expected, "write {i} of {N}");
        let key = c.key(&i.to_string());
        if i % 50 == 0 {
            c.assert_stored(&key, value.as_bytes(), Some(Duration::from_secs(ttl)));
        } else {
            assert_eq!(c.get(&key), Some(value.into_bytes()), "{key:?}");
        }
    }
}

/// A 1 MiB value is stored whole, read whole, measured by `get_at_most` in
/// bytes (it is two-byte UTF-8: half as many characters), and replaced whole.
fn one_mib_value(c: &Ctx) {
    const MIB: usize = 1 << 20;
    let value = |seed: u32| -> Vec<u8> {
        (0..MIB as u32 / 2)
            .map(|i| char::from_u32(0xc0 + (i ^ seed) % 64).unwrap())
            .collect::<String>()
            .into_bytes()
    };
    let (first, second) = (value(0), value(7));
    assert_eq!(
        c.write(WritePolicy::IfMissing, &[c.w("big", first.clone(), Some(3600))]),
        [Outcome::Written]
    );
    let key = c.key("big");
    c.assert_stored(&key, &first, Some(Duration::from_secs(3600)));
    assert_eq!(c.get_at_most(&key, MIB as u64), Bounded::Value(first.clone()));
    assert_eq!(
        c.get_at_most(&key, MIB as u64 - 1),
        Bounded::TooLarge { bytes: MIB as u64 }
    );
    assert_eq!(
        c.write(WritePolicy::IfMissing, &[c.w("big", second.clone(), None)]),
        [Outcome::Fresh]
    );
    c.assert_stored(&key, &first, Some(Duration::from_secs(3600)));
    assert_eq!(
        c.write(WritePolicy::Always, &[c.w("big", second.clone(), Some(60))]),
        [Outcome::Written]
    );
    c.assert_stored(&key, &second, Some(Duration::from_secs(60)));
}

/// Keys no layer may mangle, merge or interpret: spaces (leading, trailing),
/// UTF-8 in both normal forms, quotes, backslashes, SQL and glob
/// metacharacters, case, and numbers a column affinity could convert. Each
/// keeps its own value, and each is present to a second, if-missing batch.
fn awkward_keys(c: &Ctx) {
    let names = [
        "with space",
        " leading",
        "trailing ",
        "trailing",
        "tab\tand\nnewline",
        "naïve café",
        "caf\u{e9}",
        "cafe\u{301}",
        "日本語のキー",
        "emoji 🔥🧊",
        "quote'single",
        "quote\"double",
        "back\\slash",
        "two\\\\back\\\\slashes",
        "'; DROP TABLE cache; --",
        "100%_like",
        "glob*?[a-z]",
        "{hash}tag",
        "Case",
        "case",
        "CASE",
        "007",
        "7",
        "7.0",
        "1e3",
    ];
    let writes: Vec<Write> = names
        .iter()
        .enumerate()
        .map(|(i, name)| c.w(name, format!("value {i}"), Some(3600)))
        .collect();
    // A backend without spaces in keys refuses those alone, naming spaces.
    let refused = |name: &str| !c.t.holds.key_spaces && name.chars().any(|ch| ch <= ' ' || ch == '\u{7f}');
    let check = |outcomes: Vec<Outcome>, then: Outcome| {
        for (name, outcome) in names.iter().zip(outcomes) {
            if refused(name) {
                assert!(
                    matches!(&outcome, Outcome::Rejected(m) if m.contains("spaces")),
                    "{name:?}: {outcome:?}"
                );
            } else {
                assert_eq!(outcome, then, "{name:?}");
            }
        }
    };
    check(c.write(WritePolicy::IfMissing, &writes), Outcome::Written);
    for (i, name) in names.iter().enumerate() {
        if !refused(name) {
            c.assert_stored(
                &c.key(name),
                format!("value {i}").as_bytes(),
                Some(Duration::from_secs(3600)),
            );
        }
    }
    check(c.write(WritePolicy::IfMissing, &writes), Outcome::Fresh);
}

/// An empty value is a value: stored, read back empty (not absent), present to if-missing.
fn empty_value(c: &Ctx) {
    assert_eq!(
        c.write(WritePolicy::IfMissing, &[c.w("empty", "", Some(3600))]),
        [Outcome::Written]
    );
    let key = c.key("empty");
    c.assert_stored(&key, b"", Some(Duration::from_secs(3600)));
    assert_eq!(c.get_at_most(&key, 0), Bounded::Value(Vec::new()));
    assert_eq!(
        c.write(WritePolicy::IfMissing, &[c.w("empty", "full", None)]),
        [Outcome::Fresh]
    );
    assert_eq!(c.write(refresh("1m"), &[c.w("empty", "full", None)]), [Outcome::Fresh]);
    c.assert_stored(&key, b"", Some(Duration::from_secs(3600)));
}

/// Every byte value round-trips where the backend holds bytes; a text-only
/// backend rejects the non-UTF-8 value alone and writes the rest of the batch.
fn value_bytes(c: &Ctx) {
    let all_bytes: Vec<u8> = (0..=255).collect();
    let values: [(&str, Vec<u8>); 5] = [
        ("text", "plain text".into()),
        ("all-bytes", all_bytes),
        ("not-utf-8", vec![0xff, 0xfe, b'x', 0xc3]),
        ("more-text", "héllo".into()),
        ("a-number", "007".into()),
    ];
    let writes: Vec<Write> = values
        .iter()
        .map(|(name, v)| c.w(name, v.clone(), Some(3600)))
        .collect();
    let outcomes = c.write(WritePolicy::Always, &writes);
    for ((name, value), outcome) in values.iter().zip(&outcomes) {
        let key = c.key(name);
        if c.t.holds.any_bytes || std::str::from_utf8(value).is_ok() {
            assert_eq!(*outcome, Outcome::Written, "{name}");
            c.assert_stored(&key, value, Some(Duration::from_secs(3600)));
        } else {
            assert!(
                matches!(outcome, Outcome::Rejected(m) if m.contains("UTF-8")),
                "{name}: {outcome:?}"
            );
            c.assert_absent(&key);
        }
    }
}

/// A key at the backend's length limit is stored; one character more is
/// rejected alone (naming the limit) while the rest of its batch is written.
/// Without a limit, a 1,000-character key is stored. Characters, not bytes:
/// the key is multi-byte UTF-8.
fn key_length(c: &Ctx) {
    let prefix = c.key("");
    let long = |chars: usize| format!("{prefix}{}", "é".repeat(chars - prefix.chars().count()));
    let writes = |key: String| {
        [
            c.w("before", "b", Some(3600)),
            Write {
                key,
                value: bytes::Bytes::from_static(b"long"),
                ttl: Some(Duration::from_secs(3600)),
            },
            c.w("after", "a", Some(3600)),
        ]
    };
    // A limit in bytes: the same two-byte characters, an ASCII one to make up an odd count.
    let long_bytes = |bytes: usize| {
        let room = bytes - prefix.len();
        format!("{prefix}{}{}", "é".repeat(room / 2), "x".repeat(room % 2))
    };
    let (fits, limit) = match (c.t.holds.key_chars, c.t.holds.key_bytes) {
        (Some(max), _) => (long(max), Some((long(max + 1), max + 1, "characters"))),
        (None, Some(max)) => (long_bytes(max), Some((long_bytes(max + 1), max + 1, "bytes"))),
        (None, None) => (long(1000), None),
    };
    assert_eq!(
        c.write(WritePolicy::Always, &writes(fits.clone())),
        vec![Outcome::Written; 3]
    );
    c.assert_stored(&fits, b"long", Some(Duration::from_secs(3600)));
    if let Some((over, size, unit)) = limit {
        let outcomes = c.write(WritePolicy::Always, &writes(over.clone()));
        assert_eq!(outcomes[0], Outcome::Written);
        assert!(
            matches!(&outcomes[1], Outcome::Rejected(m) if m.contains(unit)),
            "{size} {unit}: {:?}",
            outcomes[1]
        );
        assert_eq!(outcomes[2], Outcome::Written);
        c.assert_absent(&over);
    }
    c.assert_stored(&c.key("before"), b"b", Some(Duration::from_secs(3600)));
    c.assert_stored(&c.key("after"), b"a", Some(Duration::from_secs(3600)));
}

/// Two if-missing batches over the same keys at once: the policy is atomic
/// per key, so each key is written by exactly one of them and holds that
/// one's value; neither batch fails.
fn concurrent_batches(c: &Ctx) {
    for order in ["same", "opposite"] {
        concurrent_batches_in(c, order);
    }
}

/// Two if-missing batches at once over the same keys, the second in `order`
/// ("same" or "opposite": row locks taken in opposite orders deadlock
/// unless the backend orders them itself).
fn concurrent_batches_in(c: &Ctx, order: &str) {
    const N: usize = 2000;
    let batch = |who: &str| -> Vec<Write> { (0..N).map(|i| c.w(&format!("{order}/{i}"), who, Some(3600))).collect() };
    let (a, mut b) = (batch("a"), batch("b"));
    if order == "opposite" {
        b.reverse();
    }
    let backend = &c.t.backend;
    let (from_a, from_b) = c.t.rt.block_on(async {
        tokio::join!(
            backend.write_batch(WritePolicy::IfMissing, &a),
            backend.write_batch(WritePolicy::IfMissing, &b)
        )
    });
    let from_a = from_a.unwrap_or_else(|e| panic!("{order} order: batch a failed: {e}"));
    let mut from_b = from_b.unwrap_or_else(|e| panic!("{order} order: batch b failed: {e}"));
    if order == "opposite" {
        from_b.reverse();
    }
    for (i, (oa, ob)) in from_a.iter().zip(&from_b).enumerate() {
        let key = c.key(&format!("{order}/{i}"));
        let winner: &[u8] = match (oa, ob) {
            (Outcome::Written, Outcome::Fresh) => b"a",
            (Outcome::Fresh, Outcome::Written) => b"b",
            other => panic!("{key:?}: outcomes {other:?}, expected one Written and one Fresh"),
        };
        assert_eq!(c.get(&key).as_deref(), Some(winner), "{key:?}");
    }
}

/// The longest TTL a plugin can give (`u32::MAX` seconds, 136 years, beyond
/// the SQL table's ten-year forever) is stored as given, and is fresh to refresh.
fn ttl_beyond_forever(c: &Ctx) {
    let longest = Duration::from_secs(u32::MAX.into());
    let write = |value: &str| Write {
        key: c.key("longest"),
        value: bytes::Bytes::copy_from_slice(value.as_bytes()),
        ttl: Some(longest),
    };
    // Where expiries end sooner, the TTL is cut to the latest one; read back
    // against a server clock that may run up to 2 s behind (memcached's ticks
    // once a second, in whole seconds).
    let stored = match c.t.holds.latest_expiry {
        Some(latest) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            longest.min(Duration::from_secs(latest + 2 - now))
        }
        None => longest,
    };
    assert_eq!(c.write(WritePolicy::IfMissing, &[write("old")]), [Outcome::Written]);
    c.assert_stored(&c.key("longest"), b"old", Some(stored));
    assert_eq!(c.write(refresh("365d"), &[write("new")]), [Outcome::Fresh]);
    c.assert_stored(&c.key("longest"), b"old", Some(stored));
}

/// A write the backend refuses (a value over its size bound, or not the
/// text it holds) is rejected alone, naming why, and stores nothing; the
/// rest of the batch is written.
fn refused_write_is_rejected_alone(c: &Ctx) {
    let mut refused: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some((max, named)) = c.t.holds.max_bytes {
        refused.push((named, vec![b'x'; max as usize + 1]));
    }
    if !c.t.holds.any_bytes {
        refused.push(("UTF-8", vec![0xff, 0xfe]));
    }
    for (why, value) in refused {
        let outcomes = c.write(
            WritePolicy::Always,
            &[
                c.w(why, value.clone(), Some(3600)),
                c.w(&format!("after-{why}"), "n", None),
            ],
        );
        assert!(
            matches!(&outcomes[0], Outcome::Rejected(m) if m.contains(why)),
            "a value refused for {why}: {:?}",
            outcomes[0]
        );
        assert_eq!(outcomes[1], Outcome::Written, "the write after it");
        c.assert_absent(&c.key(why));
        c.assert_stored(&c.key(&format!("after-{why}")), b"n", None);
        // Refused over an existing value: the old value and its TTL stay.
        let old = format!("old-{why}");
        assert_eq!(
            c.write(WritePolicy::Always, &[c.w(&old, "old", Some(3600))]),
            [Outcome::Written]
        );
        let outcomes = c.write(WritePolicy::Always, &[c.w(&old, value, Some(7200))]);
        assert!(matches!(&outcomes[0], Outcome::Rejected(_)), "{old}: {:?}", outcomes[0]);
        c.assert_stored(&c.key(&old), b"old", Some(Duration::from_secs(3600)));
    }
}

/// No writes, no outcomes, under every policy.
fn empty_batch(c: &Ctx) {
    for policy in [WritePolicy::IfMissing, refresh("1m"), WritePolicy::Always] {
        assert_eq!(c.write(policy, &[]), [], "{policy}");
    }
}

/// A key twice in one batch is applied in order, as two batches would be
/// (a repeat is "written a second time, and the write policy decides").
fn duplicate_keys(c: &Ctx) {
    let twice = |policy: WritePolicy, name: &str| {
        c.write(
            policy,
            &[c.w(name, "first", Some(3600)), c.w(name, "second", Some(7200))],
        )
    };
    use Outcome::{Fresh as F, Written as W};
    assert_eq!(twice(WritePolicy::IfMissing, "if-missing"), [W, F], "if-missing");
    c.assert_stored(&c.key("if-missing"), b"first", Some(Duration::from_secs(3600)));
    assert_eq!(twice(refresh("1m"), "refresh"), [W, F], "refresh");
    c.assert_stored(&c.key("refresh"), b"first", Some(Duration::from_secs(3600)));
    assert_eq!(twice(WritePolicy::Always, "always"), [W, W], "always");
    c.assert_stored(&c.key("always"), b"second", Some(Duration::from_secs(7200)));
}

/// The largest batch the config allows (`[run] batch_size` up to
/// `MAX_BATCH_SIZE`) is one call, whatever the backend binds per statement.
fn max_batch_size(c: &Ctx) {
    let n = preheat::config::MAX_BATCH_SIZE;
    let batch: Vec<Write> = (0..n).map(|i| c.w(&i.to_string(), i.to_string(), Some(3600))).collect();
    let outcomes = c.write(WritePolicy::Always, &batch);
    assert!(outcomes.iter().all(|o| *o == Outcome::Written));
    for i in (0..n).step_by(997).chain([n - 1]) {
        c.assert_stored(
            &c.key(&i.to_string()),
            i.to_string().as_bytes(),
            Some(Duration::from_secs(3600)),
        );
    }
}

/// A UTF-8 value holding NUL is stored, or rejected alone: never the whole batch.
fn nul_in_text_value(c: &Ctx) {
    let outcomes = c.write(
        WritePolicy::Always,
        &[
            c.w("before", "b", Some(3600)),
            c.w("nul", "a\0b", Some(3600)),
            c.w("after", "a", Some(3600)),
        ],
    );
    assert_eq!((&outcomes[0], &outcomes[2]), (&Outcome::Written, &Outcome::Written));
    match &outcomes[1] {
        Outcome::Written => c.assert_stored(&c.key("nul"), b"a\0b", Some(Duration::from_secs(3600))),
        Outcome::Rejected(why) => {
            assert!(why.contains("NUL"), "{why}");
            c.assert_absent(&c.key("nul"))
        }
        other => panic!("nul: {other:?}"),
    }
}

/// A key without expiry is fresh to refresh at any threshold below what the
/// backend stores for it: nothing, or its forever (SQL: ten years, Laravel's
/// `forever`), beyond which it is rewritten.
fn no_expiry_and_long_thresholds(c: &Ctx) {
    assert_eq!(
        c.write(WritePolicy::Always, &[c.w("k", "old", None)]),
        [Outcome::Written]
    );
    assert_eq!(
        c.write(refresh("9years"), &[c.w("k", "new", Some(60))]),
        [Outcome::Fresh]
    );
    c.assert_stored(&c.key("k"), b"old", None);
    let beyond = if c.t.holds.forever.is_some() {
        Outcome::Written
    } else {
        Outcome::Fresh
    };
    assert_eq!(c.write(refresh("100years"), &[c.w("k", "new", Some(60))]), [beyond]);
}

/// A key lives at least its TTL: one written with 1.5 s (TTLs are fractional
/// once jittered), late in a second, is still there 0.5 s later.
fn sub_second_ttl(c: &Ctx) {
    use std::time::{SystemTime, UNIX_EPOCH};
    while !(600..700).contains(&SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let w = Write {
        key: c.key("k"),
        value: bytes::Bytes::from_static(b"v"),
        ttl: Some(Duration::from_millis(1500)),
    };
    assert_eq!(c.write(WritePolicy::Always, &[w]), [Outcome::Written]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.get(&c.key("k")), Some(b"v".to_vec()), "0.5 s into a 1.5 s TTL");
}
