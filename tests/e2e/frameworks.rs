//! The applications' own frameworks read what preheat warmed: the example
//! plugins (`catalog`, `critical-keys`) warm the demo database's keys with a
//! `[backend] format`, and the readers of tests/readers/ read every key back
//! through Rails' RedisCacheStore and MemCacheStore (ActiveSupport 6.1,
//! Dalli 3.0), Laravel's cache stores (Illuminate 8.83: redis, memcached
//! over php-memcached, and database on SQLite and PostgreSQL) and Django's
//! RedisCache: every key must be a hit with the intended value, the JSON the
//! plugin produced (what the raw format writes). Memcached pools are three
//! servers, and a reader whose client spreads keys another way than the
//! pool was warmed with misses keys.

use super::support::{
    fixture, plugin, preheat, python_venv, repo, MemcachedServer, PgServer, RedisCluster, RedisServer, Run, Workspace,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Django and redis-py releases the Django reader runs on (PyPI).
const DJANGO: &str = "django==5.2.19";
const REDIS_PY: &str = "redis==6.4.0";

/// The demo application database (`preheat demo`), created once per test
/// process; its data is deterministic.
fn demo_db() -> &'static str {
    static DB: OnceLock<String> = OnceLock::new();
    DB.get_or_init(|| {
        let dir = repo().join("target/e2e-frameworks");
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("app.db").display());
        let out = Command::new(env!("CARGO_BIN_EXE_preheat"))
            .args(["demo", "--database", &url])
            .output()
            .expect("running preheat demo");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        url
    })
}

/// The two example plugins reading the demo database, each with an extra
/// line (e.g. its `write_policy`).
fn plugins(extra: &str) -> String {
    plugins_each(extra, extra)
}

/// The two example plugins, `catalog` with the line `catalog_extra` and
/// `critical-keys` with `critical_extra`.
fn plugins_each(catalog_extra: &str, critical_extra: &str) -> String {
    format!(
        "[sources.app]\nurl = {db:?}\n\
         [[plugins]]\nname = \"catalog\"\npath = {catalog:?}\nkey_prefixes = [\"products/\", \"categories/\"]\nsources = [\"app\"]\n{catalog_extra}\n\
         [[plugins]]\nname = \"critical-keys\"\npath = {critical:?}\n\
         key_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n\
         sources = [\"app\"]\ndefault_ttl = \"1h\"\nttl_jitter_percent = 10\n{critical_extra}\n\
         [plugins.settings]\nusers_source = \"app\"\n",
        db = demo_db(),
        catalog = plugin("catalog").display().to_string(),
        critical = plugin("critical_keys").display().to_string(),
    )
}

/// Every key the example plugins warm from the demo database, with the
/// bytes they produced (every value is JSON). Computed once per test process.
fn intended() -> &'static BTreeMap<String, Vec<u8>> {
    static VALUES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    VALUES.get_or_init(|| {
        let values = produced(&plugins(""));
        for (key, value) in &values {
            let text = std::str::from_utf8(value).unwrap_or_else(|_| panic!("{key}: the plugin's value is not UTF-8"));
            serde_json::from_str::<Value>(text)
                .unwrap_or_else(|e| panic!("{key}: the plugin's value is not JSON: {e}"));
        }
        values
    })
}

/// The `value-zoo` fixture's plugin table, with an extra line.
fn zoo_plugin(extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"value-zoo\"\npath = {:?}\nkey_prefixes = [\"fx.value-zoo.\"]\n{extra}\n",
        fixture("value_zoo").display().to_string()
    )
}

/// Every shape of value the `value-zoo` fixture produces (JSON of every type
/// at its edges, text, bytes), by key. Computed once per test process.
fn zoo() -> &'static BTreeMap<String, Vec<u8>> {
    static VALUES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    VALUES.get_or_init(|| produced(&zoo_plugin("")))
}

/// Every key the plugins of `plugins` (config tables) warm, with the bytes
/// they produced: a run with the default (raw) format into a redis of its
/// own.
fn produced(plugins: &str) -> BTreeMap<String, Vec<u8>> {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n{plugins}",
        redis.url()
    ));
    let run = warm(&ws, &config);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis.conn()).unwrap();
    assert_eq!(keys.len() as u64, run.report["totals"]["written"].as_u64().unwrap());
    keys.into_iter()
        .map(|k| {
            let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut redis.conn()).unwrap();
            (k, v)
        })
        .collect()
}

/// `preheat run`: it must complete, every key written or skipped as fresh,
/// the accounting invariant holding.
fn warm(ws: &Workspace, config: &Path) -> Run {
    let run = preheat(ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}\n{}", run.report, run.stderr());
    run.assert_balanced();
    for plugin in run.report["plugins"].as_array().unwrap() {
        let name = plugin["name"].as_str().unwrap();
        assert_eq!(run.count(name, "failed"), 0, "{}", run.errors_of(name));
        assert_eq!(run.count(name, "invalid"), 0, "{}", run.errors_of(name));
    }
    run
}

/// Writes a reader's VALUES.json: each key and the plugin's JSON, verbatim
/// (so that objects keep the plugin's key order), or its text as a JSON
/// string when it is not JSON; with `hex`, the hex of each value's bytes
/// (which the reader takes with `--bytes`).
fn values_file(ws: &Workspace, values: &BTreeMap<String, Vec<u8>>, hex: bool) -> PathBuf {
    let mut text = String::from("{");
    for (i, (key, value)) in values.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key).unwrap());
        text.push(':');
        if hex {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            text.push_str(&serde_json::to_string(&hex).unwrap());
            continue;
        }
        let value = std::str::from_utf8(value).unwrap_or_else(|_| panic!("{key}: not UTF-8 (pass it as hex)"));
        match serde_json::from_str::<Value>(value) {
            Ok(_) => text.push_str(value),
            Err(_) => text.push_str(&serde_json::to_string(value).unwrap()),
        }
    }
    text.push('}');
    let path = ws.dir.path().join(if hex { "bytes.json" } else { "values.json" });
    std::fs::write(&path, text).unwrap();
    path
}

/// The venv the Django reader runs in, under target/, made once (and kept
/// across runs while it holds the pinned releases).
fn django_python() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let pinned = |venv: &Path| {
            let check = format!(
                "import django, redis; assert django.__version__ == {:?} and redis.__version__ == {:?}",
                DJANGO.trim_start_matches("django=="),
                REDIS_PY.trim_start_matches("redis==")
            );
            Command::new(venv.join("bin/python"))
                .args(["-c", &check])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        python_venv("django-venv", &[DJANGO, REDIS_PY], pinned).join("bin/python")
    })
}

/// A framework reader of tests/readers/ and the store it reads.
enum Reader {
    /// Rails' RedisCacheStore.
    Rails { url: String, namespace: Option<String> },
    /// Rails' RedisCacheStore over a Redis Cluster client with the seed URLs `seeds` (`url,…`).
    RailsCluster { seeds: String },
    /// Rails' MemCacheStore (Dalli) over `servers` (`host:port,…`).
    RailsMemCache { servers: String, namespace: Option<String> },
    /// Laravel's memcached store (php-memcached) over `servers`, with
    /// `Memcached::OPT_LIBKETAMA_COMPATIBLE` or libmemcached's default distribution.
    LaravelMemcached {
        servers: String,
        ketama: bool,
        cache_prefix: String,
    },
    /// Laravel's redis store.
    LaravelRedis {
        url: String,
        cache_prefix: String,
        redis_prefix: String,
    },
    /// Laravel's redis store on a Redis Cluster of the seed nodes `nodes` (`host:port,…`).
    LaravelRedisCluster {
        nodes: String,
        cache_prefix: String,
        redis_prefix: String,
    },
    /// Laravel's database store.
    LaravelDatabase {
        db: String,
        table: String,
        cache_prefix: String,
    },
    /// Django's RedisCache.
    Django {
        url: String,
        key_prefix: String,
        version: u32,
    },
}

/// One line of a reader's output.
#[derive(Debug)]
struct Read {
    line: Value,
}

impl Read {
    fn hit(&self) -> bool {
        self.line["hit"] == true
    }

    fn equal(&self) -> bool {
        self.line["equal"] == true
    }
}

impl Reader {
    /// The command running this reader with `args`.
    fn command(&self, args: &[&str]) -> Command {
        let readers = repo().join("tests/readers");
        let mut cmd = match self {
            Reader::Rails { url, namespace } => {
                let mut c = Command::new("ruby");
                c.arg(readers.join("rails_read.rb")).args(["--url", url]);
                if let Some(ns) = namespace {
                    c.args(["--namespace", ns]);
                }
                c
            }
            Reader::RailsCluster { seeds } => {
                let mut c = Command::new("ruby");
                c.arg(readers.join("rails_read.rb")).args(["--cluster", seeds]);
                c
            }
            Reader::RailsMemCache { servers, namespace } => {
                let mut c = Command::new("ruby");
                c.arg(readers.join("rails_read.rb")).args(["--memcached", servers]);
                if let Some(ns) = namespace {
                    c.args(["--namespace", ns]);
                }
                c
            }
            Reader::LaravelMemcached {
                servers,
                ketama,
                cache_prefix,
            } => {
                let mut c = Command::new("php");
                c.arg(readers.join("laravel_read.php")).args([
                    "--store",
                    "memcached",
                    "--servers",
                    servers,
                    "--cache-prefix",
                    cache_prefix,
                ]);
                if *ketama {
                    c.arg("--ketama");
                }
                c
            }
            Reader::LaravelRedis {
                url,
                cache_prefix,
                redis_prefix,
            } => laravel_redis(["--redis-url", url], cache_prefix, redis_prefix),
            Reader::LaravelRedisCluster {
                nodes,
                cache_prefix,
                redis_prefix,
            } => laravel_redis(["--redis-cluster", nodes], cache_prefix, redis_prefix),
            Reader::LaravelDatabase {
                db,
                table,
                cache_prefix,
            } => {
                let mut c = Command::new("php");
                c.arg(readers.join("laravel_read.php")).args([
                    "--store",
                    "database",
                    "--db",
                    db,
                    "--table",
                    table,
                    "--cache-prefix",
                    cache_prefix,
                ]);
                c
            }
            Reader::Django {
                url,
                key_prefix,
                version,
            } => {
                let mut c = Command::new(django_python());
                c.arg(readers.join("django_read.py")).args([
                    "--url",
                    url,
                    "--key-prefix",
                    key_prefix,
                    "--version",
                    &version.to_string(),
                ]);
                c
            }
        };
        cmd.args(args);
        cmd
    }

    /// Runs the reader; its JSON lines.
    fn run(&self, args: &[&str]) -> Vec<Read> {
        let out = self.command(args).output().expect("running a framework reader");
        assert!(
            out.status.success(),
            "reader {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let line: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("reader line {l:?}: {e}"));
                assert!(line["key"].is_string(), "reader line without a key: {l}");
                Read { line }
            })
            .collect()
    }

    /// The framework writes sample values itself and reads them back: the
    /// reader works, so a miss later is the format's.
    fn self_test(&self) {
        let reads = self.run(&["--self-test"]);
        assert!(reads.len() >= 7, "{reads:?}");
        for r in &reads {
            assert!(r.hit() && r.equal(), "self-test of {}: {}", self.name(), r.line);
        }
    }

    /// Reads every key of `values`; the lines. Values that are not UTF-8
    /// are read in a second pass, given as hex.
    fn read(&self, ws: &Workspace, values: &BTreeMap<String, Vec<u8>>) -> Vec<Read> {
        let (text, binary): (BTreeMap<_, _>, BTreeMap<_, _>) = values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(_, v)| std::str::from_utf8(v).is_ok());
        let mut reads = Vec::new();
        if !text.is_empty() {
            reads.extend(self.run(&[values_file(ws, &text, false).to_str().unwrap()]));
        }
        if !binary.is_empty() {
            reads.extend(self.run(&["--bytes", values_file(ws, &binary, true).to_str().unwrap()]));
        }
        assert_eq!(reads.len(), values.len(), "one line per key");
        reads
    }

    /// The application itself caches `values` (no expiry).
    fn write(&self, ws: &Workspace, values: &BTreeMap<String, Vec<u8>>) {
        let file = values_file(ws, values, false);
        let lines = self.run(&["--write", file.to_str().unwrap()]);
        assert_eq!(lines.len(), values.len());
    }

    /// Whether a value can be a hit in this framework, whoever cached it:
    /// Laravel's `get()` answers `null` for a miss and for a cached `null`
    /// alike, and `has()` says false for both.
    fn can_hit(&self, value: &[u8]) -> bool {
        let laravel = matches!(
            self,
            Reader::LaravelRedis { .. }
                | Reader::LaravelRedisCluster { .. }
                | Reader::LaravelDatabase { .. }
                | Reader::LaravelMemcached { .. }
        );
        !(laravel && value.trim_ascii() == b"null")
    }

    fn name(&self) -> &'static str {
        match self {
            Reader::Rails { .. } => "Rails",
            Reader::RailsCluster { .. } => "Rails (RedisCacheStore on a cluster)",
            Reader::RailsMemCache { .. } => "Rails (MemCacheStore)",
            Reader::LaravelMemcached { .. } => "Laravel (memcached store)",
            Reader::LaravelRedis { .. } => "Laravel (redis store)",
            Reader::LaravelRedisCluster { .. } => "Laravel (redis store on a cluster)",
            Reader::LaravelDatabase { .. } => "Laravel (database store)",
            Reader::Django { .. } => "Django",
        }
    }

    /// Every key of `values` is a hit with its intended value.
    fn assert_all_hits(&self, ws: &Workspace, values: &BTreeMap<String, Vec<u8>>) {
        let reads = self.read(ws, values);
        let bad: Vec<&Read> = reads.iter().filter(|r| !(r.hit() && r.equal())).collect();
        let shown: Vec<String> = bad.iter().take(5).map(|r| r.line.to_string()).collect();
        assert!(
            bad.is_empty(),
            "{}: {} of {} keys are not a hit with the intended value, e.g.\n{}",
            self.name(),
            bad.len(),
            reads.len(),
            shown.join("\n")
        );
    }
}

/// The Laravel reader on its redis store, the server given by `at`.
fn laravel_redis(at: [&str; 2], cache_prefix: &str, redis_prefix: &str) -> Command {
    let mut c = Command::new("php");
    c.arg(repo().join("tests/readers/laravel_read.php"))
        .args(["--store", "redis"])
        .args(at)
        .args(["--cache-prefix", cache_prefix, "--redis-prefix", redis_prefix]);
    c
}

/// Warms the example plugins and the `value-zoo` fixture into `backend` with
/// `format` (a TOML inline table) and checks, through `reader`, that every
/// key is a hit with the intended value; the workspace and those values.
fn warm_and_read(backend: &str, format: &str, reader: &Reader) -> (Workspace, BTreeMap<String, Vec<u8>>) {
    reader.self_test();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "{backend}\nformat = {format}\n{}{}",
        plugins(""),
        zoo_plugin("")
    ));
    let run = warm(&ws, &config);
    assert_eq!(
        run.report["totals"]["written"].as_u64().unwrap() as usize,
        intended().len() + zoo().len()
    );
    let mut values = intended().clone();
    values.extend(
        zoo()
            .iter()
            .filter(|(_, v)| reader.can_hit(v))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    reader.assert_all_hits(&ws, &values);
    (ws, values)
}

fn redis_backend(redis: &RedisServer) -> String {
    format!("[backend]\nkind = \"redis\"\nurl = \"{}\"", redis.url())
}

#[test]
fn rails_6_1_reads_every_warmed_key() {
    let redis = RedisServer::start();
    warm_and_read(
        &redis_backend(&redis),
        r#"{ kind = "rails", cache_format_version = "6.1", compress = false }"#,
        &Reader::Rails {
            url: redis.url(),
            namespace: None,
        },
    );
}

#[test]
fn rails_6_1_with_a_namespace_reads_every_warmed_key() {
    let redis = RedisServer::start();
    warm_and_read(
        &redis_backend(&redis),
        r#"{ kind = "rails", namespace = "shop", cache_format_version = "6.1" }"#,
        &Reader::Rails {
            url: redis.url(),
            namespace: Some("shop".into()),
        },
    );
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis.conn()).unwrap();
    assert!(keys.iter().all(|k| k.starts_with("shop:")), "{keys:?}");
}

#[test]
fn rails_6_1_reads_compressed_entries() {
    let redis = RedisServer::start();
    // Every value from 64 bytes on is deflated (the default threshold is 1 KiB).
    warm_and_read(
        &redis_backend(&redis),
        r#"{ kind = "rails", cache_format_version = "6.1", compress_threshold = "64" }"#,
        &Reader::Rails {
            url: redis.url(),
            namespace: None,
        },
    );
    // The entries Rails read were compressed ones (Entry's @compressed ivar).
    let value: Vec<u8> = redis::cmd("GET")
        .arg("categories/navigation")
        .query(&mut redis.conn())
        .unwrap();
    assert!(
        value.windows(11).any(|w| w == b"@compressed"),
        "categories/navigation is not compressed: {}",
        String::from_utf8_lossy(&value)
    );
}

#[test]
fn rails_reads_every_key_warmed_into_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    warm_and_read(
        &format!("[backend]\n{}", cluster.backend_toml()),
        r#"{ kind = "rails", cache_format_version = "6.1" }"#,
        &Reader::RailsCluster {
            seeds: cluster.urls().join(","),
        },
    );
    assert_spread_over_every_master(&cluster);
}

#[test]
fn laravel_reads_every_key_warmed_into_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    warm_and_read(
        &format!("[backend]\n{}", cluster.backend_toml()),
        r#"{ kind = "laravel", version = "8", cache_prefix = "shop_cache", redis_prefix = "shop_database_" }"#,
        &Reader::LaravelRedisCluster {
            nodes: nodes.join(","),
            cache_prefix: "shop_cache".into(),
            redis_prefix: "shop_database_".into(),
        },
    );
    assert_spread_over_every_master(&cluster);
}

/// The warmed keys are on every master, not on one by chance.
fn assert_spread_over_every_master(cluster: &RedisCluster) {
    for port in cluster.master_ports() {
        assert!(cluster.node(port).dbsize() > 0, "no key on the master on port {port}");
    }
}

#[test]
fn laravel_redis_store_reads_every_warmed_key() {
    let redis = RedisServer::start();
    warm_and_read(
        &redis_backend(&redis),
        r#"{ kind = "laravel", version = "8", cache_prefix = "shop_cache", redis_prefix = "shop_database_" }"#,
        &Reader::LaravelRedis {
            url: redis.url(),
            cache_prefix: "shop_cache".into(),
            redis_prefix: "shop_database_".into(),
        },
    );
}

/// Three memcached servers and the `[backend]` that spreads keys over them by `distribution`.
fn memcached_pool(distribution: &str) -> (Vec<MemcachedServer>, String, String) {
    let servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start()).collect();
    let addresses: Vec<String> = servers.iter().map(|s| s.address()).collect();
    let backend =
        format!("[backend]\nkind = \"memcached\"\nservers = {addresses:?}\ndistribution = \"{distribution}\"");
    (servers, backend, addresses.join(","))
}

/// `reader`, whose client spreads keys another way than the pool was
/// warmed with, misses some of `values` and finds the others (those its
/// mapping happens to put on the same server): the readers can fail.
fn assert_misses_some(reader: &Reader, ws: &Workspace, values: &BTreeMap<String, Vec<u8>>) {
    let reads = reader.read(ws, values);
    let hits = reads.iter().filter(|r| r.hit()).count();
    assert!(
        hits > 0 && hits < reads.len() * 2 / 3,
        "{} with the wrong distribution hits {hits} of {} keys",
        reader.name(),
        reads.len()
    );
}

#[test]
fn laravel_memcached_store_reads_every_key_of_a_modula_pool() {
    let (servers, backend, list) = memcached_pool("modula");
    let format = r#"{ kind = "laravel", version = "8", cache_prefix = "shop_cache" }"#;
    let reader = |ketama| Reader::LaravelMemcached {
        servers: list.clone(),
        ketama,
        cache_prefix: "shop_cache".into(),
    };
    let (ws, values) = warm_and_read(&backend, format, &reader(false));
    // Every server took a share; each key is on one server, under Laravel
    // 8's `prefix:` layout, with php-memcached's "serialized" flag (4).
    let items: Vec<u64> = servers.iter().map(|s| s.items()).collect();
    assert!(items.iter().all(|&n| n > 10), "{items:?}");
    for key in intended().keys().take(20) {
        let answers: Vec<String> = servers
            .iter()
            .map(|s| s.command(&format!("mg shop_cache:{key} f")))
            .collect();
        let held: Vec<&String> = answers.iter().filter(|a| *a != "EN").collect();
        assert_eq!(held, [&"HD f4".to_string()], "{key}: {answers:?}");
    }
    assert_misses_some(&reader(true), &ws, &values);
}

#[test]
fn laravel_memcached_store_with_libketama_reads_every_key_of_a_ketama_pool() {
    let (_servers, backend, list) = memcached_pool("ketama");
    let format = r#"{ kind = "laravel", version = "8", cache_prefix = "shop_cache" }"#;
    let reader = |ketama| Reader::LaravelMemcached {
        servers: list.clone(),
        ketama,
        cache_prefix: "shop_cache".into(),
    };
    let (ws, values) = warm_and_read(&backend, format, &reader(true));
    assert_misses_some(&reader(false), &ws, &values);
}

#[test]
fn rails_mem_cache_store_reads_every_key_of_a_dalli_pool() {
    let (servers, backend, list) = memcached_pool("dalli");
    let reader = Reader::RailsMemCache {
        servers: list,
        namespace: Some("shop".into()),
    };
    warm_and_read(
        &backend,
        r#"{ kind = "rails", namespace = "shop", cache_format_version = "6.1", compress_threshold = "64" }"#,
        &reader,
    );
    // Dalli's "marshalled" flag (1) on every entry, under `namespace:`.
    for key in intended().keys().take(20) {
        let answers: Vec<String> = servers.iter().map(|s| s.command(&format!("mg shop:{key} f"))).collect();
        let held: Vec<&String> = answers.iter().filter(|a| *a != "EN").collect();
        assert_eq!(held, [&"HD f1".to_string()], "{key}: {answers:?}");
    }
    // The same keys warmed into a pool spread by libmemcached's ketama: Dalli misses some.
    let (_servers, backend, list) = memcached_pool("ketama");
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "{backend}\nformat = {{ kind = \"rails\", namespace = \"shop\", cache_format_version = \"6.1\" }}\n{}",
        plugins("")
    ));
    warm(&ws, &config);
    let reader = Reader::RailsMemCache {
        servers: list,
        namespace: Some("shop".into()),
    };
    assert_misses_some(&reader, &ws, intended());
}

fn sql_backend(url: &str) -> String {
    format!("[backend]\nkind = \"sql\"\nurl = {url:?}\ntable = \"cache\"\ncreate_table = true")
}

#[test]
fn laravel_database_store_on_sqlite_reads_every_warmed_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    warm_and_read(
        &sql_backend(&format!("sqlite://{}", path.display())),
        r#"{ kind = "laravel", version = "8", cache_prefix = "shop_cache" }"#,
        &Reader::LaravelDatabase {
            db: format!("sqlite://{}", path.display()),
            table: "cache".into(),
            cache_prefix: "shop_cache".into(),
        },
    );
}

#[test]
fn laravel_database_store_on_postgres_reads_every_warmed_key() {
    let pg = PgServer::start();
    warm_and_read(
        &sql_backend(&pg.url()),
        r#"{ kind = "laravel", version = "8", cache_prefix = "shop_cache" }"#,
        &Reader::LaravelDatabase {
            db: pg.url(),
            table: "cache".into(),
            cache_prefix: "shop_cache".into(),
        },
    );
}

#[test]
fn django_reads_every_warmed_key() {
    let redis = RedisServer::start();
    warm_and_read(
        &redis_backend(&redis),
        r#"{ kind = "django", key_prefix = "shop", version = 2 }"#,
        &Reader::Django {
            url: redis.url(),
            key_prefix: "shop".into(),
            version: 2,
        },
    );
}

#[test]
fn every_write_policy_keeps_its_rules_and_the_accounting_with_a_format() {
    let redis = RedisServer::start();
    let reader = Reader::Rails {
        url: redis.url(),
        namespace: Some("shop".into()),
    };
    let format = r#"format = { kind = "rails", namespace = "shop", cache_format_version = "6.1" }"#;
    let total = intended().len() as u64;
    let pttl = |key: &str| -> i64 {
        redis::cmd("PTTL")
            .arg(format!("shop:{key}"))
            .query(&mut redis.conn())
            .unwrap()
    };
    for (policy, second_written) in [
        ("if-missing", 0),
        // Every TTL is at most 2h10%: all below 3h, all refreshed.
        ("refresh-if-ttl-below=3h", total),
        ("always", total),
    ] {
        redis::cmd("FLUSHALL").query::<()>(&mut redis.conn()).unwrap();
        let ws = Workspace::new();
        let config = ws.config(&format!(
            "{}\n{format}\n{}",
            redis_backend(&redis),
            plugins(&format!("write_policy = {policy:?}"))
        ));
        let first = warm(&ws, &config);
        assert_eq!(first.report["totals"]["written"], total, "{policy}: first run");
        reader.assert_all_hits(&ws, intended());
        let before = pttl("categories/navigation");
        let second = warm(&ws, &config);
        assert_eq!(
            second.report["totals"]["written"], second_written,
            "{policy}: second run"
        );
        assert_eq!(
            second.report["totals"]["skipped_fresh"],
            total - second_written,
            "{policy}: second run"
        );
        reader.assert_all_hits(&ws, intended());
        if second_written == 0 {
            assert!(pttl("categories/navigation") <= before, "{policy} extended a TTL");
        }
    }
}

#[test]
fn if_missing_never_touches_a_key_the_application_wrote() {
    let redis = RedisServer::start();
    let reader = Reader::Rails {
        url: redis.url(),
        namespace: Some("shop".into()),
    };
    // The application caches its own values of two keys, with no expiry.
    let own: BTreeMap<String, Vec<u8>> = [
        ("system.settings", r#"{"from":"the app","version":3}"#),
        ("categories/3/product_count", "12"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    let ws = Workspace::new();
    reader.write(&ws, &own);
    let config = ws.config(&format!(
        "{}\nformat = {{ kind = \"rails\", namespace = \"shop\", cache_format_version = \"6.1\" }}\n{}",
        redis_backend(&redis),
        plugins("write_policy = \"if-missing\"")
    ));
    let run = warm(&ws, &config);
    assert_eq!(run.report["totals"]["skipped_fresh"], 2);
    assert_eq!(run.report["totals"]["written"], intended().len() as u64 - 2);
    // The application's values, untouched, and still without expiry.
    reader.assert_all_hits(&ws, &own);
    for key in own.keys() {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("shop:{key}"))
            .query(&mut redis.conn())
            .unwrap();
        assert_eq!(ttl, -1, "{key}: preheat set a TTL on the application's key");
    }
    // Every other key: preheat's.
    let others: BTreeMap<String, Vec<u8>> = intended()
        .iter()
        .filter(|(k, _)| !own.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    reader.assert_all_hits(&ws, &others);
}

#[test]
fn a_plugin_s_format_overrides_the_backend_s() {
    let redis = RedisServer::start();
    let reader = Reader::Django {
        url: redis.url(),
        key_prefix: String::new(),
        version: 1,
    };
    reader.self_test();
    let ws = Workspace::new();
    // Django reads the catalog; the critical keys stay raw JSON (for, say, a
    // Node service beside it).
    let config = ws.config(&format!(
        "{}\nformat = {{ kind = \"django\" }}\n{}",
        redis_backend(&redis),
        plugins_each("", "format = { kind = \"raw\" }")
    ));
    warm(&ws, &config);
    let (raw, django): (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) = intended()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, _)| !(k.starts_with("products/") || k.starts_with("categories/")));
    reader.assert_all_hits(&ws, &django);
    for (key, value) in &raw {
        let got: Option<Vec<u8>> = redis::cmd("GET").arg(key).query(&mut redis.conn()).unwrap();
        assert_eq!(
            got.as_ref(),
            Some(value),
            "{key}: not the plugin's bytes under the bare key"
        );
    }
}

/// The Rails 7.0 and 7.1 framings, plain and compressed, which no
/// installable Rails reads here: the framing is taken apart as
/// ActiveSupport's 7.0 `Rails70Coder` and 7.1 `Coder` lay it out, and every
/// payload is inflated when marked compressed and loaded by real Ruby
/// (`Zlib::Inflate`, `Marshal.load`, or the string payload in its encoding),
/// which must give the intended value and a future expiry.
#[test]
fn rails_7_0_and_7_1_payloads_load_in_real_ruby() {
    // Uncompressed, then every value from 64 bytes on deflated.
    for (version, compress) in [
        ("7.0", "compress = false"),
        ("7.0", "compress_threshold = \"64\""),
        ("7.1", "compress = false"),
        ("7.1", "compress_threshold = \"64\""),
    ] {
        let redis = RedisServer::start();
        let ws = Workspace::new();
        let config = ws.config(&format!(
            "{}\nformat = {{ kind = \"rails\", cache_format_version = \"{version}\", {compress} }}\n{}{}",
            redis_backend(&redis),
            plugins(""),
            zoo_plugin("")
        ));
        warm(&ws, &config);
        let mut lines = String::new();
        let mut compressed_keys = 0;
        for (key, value) in intended().iter().chain(zoo()) {
            let raw: Vec<u8> = redis::cmd("GET").arg(key).query(&mut redis.conn()).unwrap();
            // 7.0: a mark byte, 0 or 1 (compressed); 7.1: the type byte's 0x80 bit.
            let compressed = match version {
                "7.0" => raw[0] == 0x01,
                _ => raw[2] & 0x80 != 0,
            };
            compressed_keys += usize::from(compressed);
            let (kind, payload, expires) = match version {
                "7.0" => {
                    assert!(raw[0] <= 0x01, "{key}: the 7.0 mark is {:#x}", raw[0]);
                    ("packed", raw[1..].to_vec(), None)
                }
                _ => {
                    assert_eq!(&raw[..2], b"\x00\x11", "{key}: the 7.1 signature");
                    let kind = match raw[2] & 0x7f {
                        0x01 => "marshal",
                        0x02 => "utf8",
                        0x03 => "binary",
                        0x04 => "ascii",
                        other => panic!("{key}: type byte {other:#x}"),
                    };
                    let expires = f64::from_le_bytes(raw[3..11].try_into().unwrap());
                    let version_len = i32::from_le_bytes(raw[11..15].try_into().unwrap());
                    let start = 15 + version_len.max(0) as usize;
                    (kind, raw[start..].to_vec(), Some(expires))
                }
            };
            let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
            let line = serde_json::json!({
                "key": key,
                "kind": kind,
                "payload": hex(&payload),
                "expires": expires,
                "compressed": compressed,
                "intended": hex(value),
            });
            lines.push_str(&format!("{line}\n"));
        }
        let input = ws.dir.path().join("payloads.jsonl");
        std::fs::write(&input, lines).unwrap();
        let script = r##"
            require "json"
            require "zlib"
            bad = []; n = 0; now = Time.now.to_f
            File.foreach(ARGV[0]) do |line|
              e = JSON.parse(line); n += 1
              bytes = [e["payload"]].pack("H*")
              bytes = Zlib::Inflate.inflate(bytes) if e["compressed"]
              # The plugin's bytes: JSON, else UTF-8 text, else a binary String.
              produced = [e["intended"]].pack("H*").force_encoding(Encoding::UTF_8)
              produced.force_encoding(Encoding::BINARY) unless produced.valid_encoding?
              # (JSON.parse of a copy: it re-tags a binary source as UTF-8.)
              intended = begin JSON.parse(produced.dup) rescue produced end
              value, expires = case e["kind"]
                when "packed" then v = Marshal.load(bytes); [v[0], v[1]]
                when "marshal" then [Marshal.load(bytes), e["expires"]]
                when "utf8" then [bytes.force_encoding(Encoding::UTF_8), e["expires"]]
                when "binary" then [bytes.force_encoding(Encoding::BINARY), e["expires"]]
                when "ascii" then [bytes.force_encoding(Encoding::US_ASCII), e["expires"]]
              end
              ok = value == intended && value.class == intended.class &&
                (!value.is_a?(String) || (value.valid_encoding? && value.encoding == intended.encoding))
              bad << "#{e["key"]}: got #{value.inspect[0, 200]}" unless ok
              bad << "#{e["key"]}: expires #{expires.inspect} is not in the future" unless expires.is_a?(Float) && expires > now
            end
            puts JSON.generate({ "read" => n, "bad" => bad.first(10) })
        "##;
        let out = std::process::Command::new("ruby")
            .args(["-e", script])
            .arg(&input)
            .output()
            .expect("running ruby (scripts/setup.sh installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["read"], intended().len() + zoo().len(), "{version}: {result}");
        assert_eq!(result["bad"], serde_json::json!([]), "{version}: {result}");
        if compress == "compress = false" {
            assert_eq!(compressed_keys, 0, "{version}");
        } else {
            assert!(
                compressed_keys > 100,
                "{version} {compress}: {compressed_keys} keys compressed"
            );
        }
    }
}
