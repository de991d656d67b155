//! Framework formats end to end: keys and values laid out for Rails, Django and
//! Laravel's database store by a real run, read back with `preheat cache get`
//! and `cache ttl`, with write policies and the accounting unchanged.

use crate::support::*;
use std::time::{SystemTime, UNIX_EPOCH};

fn config(backend: &str, plugin_extra: &str) -> String {
    format!(
        r#"
{backend}
[[plugins]]
name = "critical-keys"
path = {path:?}
key_prefixes = ["system.", "products.", "navigation.", "featured.", "user.profile."]
default_ttl = "10m"
{plugin_extra}
[plugins.settings]
user_ids = "1-50"
page_size = 16
"#,
        path = plugin("critical_keys").display().to_string(),
    )
}

fn cache(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    let out = preheat_in(ws, &[&["cache"], args].concat());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn rails_entries_are_namespaced_expire_with_their_ttl_and_read_back() {
    let redis = RedisServer::start();
    // A key the Rails app wrote itself: if-missing must leave it alone.
    redis::cmd("SET")
        .arg("myapp:system.settings")
        .arg("app-wrote")
        .arg("EX")
        .arg(42)
        .query::<()>(&mut redis.conn())
        .unwrap();
    let ws = Workspace::new();
    let backend = format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\nformat = {{ kind = \"rails\", namespace = \"myapp\" }}",
        redis.url()
    );
    let path = ws.config(&config(&backend, "ttl_jitter_percent = 20"));
    let config = path.to_str().unwrap();
    let run = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 53);
    assert_eq!(run.count("critical-keys", "skipped_fresh"), 1);
    assert_eq!(redis.dbsize(), 54);
    assert_eq!(redis.get("user.profile.7"), None, "keys carry the namespace");
    assert_eq!(redis.get("myapp:system.settings").unwrap(), "app-wrote");
    let raw: Vec<u8> = redis::cmd("GET")
        .arg("myapp:user.profile.7")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(&raw[..2], b"\x00\x11", "the 7.1 framing is the default");

    let (code, out, err) = cache(&ws, &["get", "user.profile.7", "--config", config, "--json"]);
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["key"], "myapp:user.profile.7");
    assert!(got["format"].as_str().unwrap().starts_with("rails 7.1"), "{got}");
    assert_eq!(got["value"]["id"], 7);
    let ttl = got["ttl_seconds"].as_f64().unwrap();
    assert!((480.0..=720.0).contains(&ttl), "10m ± 20% jitter, got {ttl}");
    let expires_at = humantime::parse_rfc3339(got["entry_expires_at"].as_str().unwrap()).unwrap();
    let entry_left = expires_at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() - now();
    assert!(
        (entry_left - ttl).abs() < 3.0,
        "entry expiry {entry_left}s must agree with the TTL {ttl}s"
    );

    let (code, out, _) = cache(&ws, &["ttl", "user.profile.7", "--config", config]);
    assert_eq!(code, 0);
    assert!(out.trim().ends_with('s'), "{out}");
    let (code, _, err) = cache(&ws, &["get", "user.profile.999", "--config", config]);
    assert_eq!(code, 1);
    assert!(err.contains("myapp:user.profile.999"), "{err}");

    let again = preheat(&ws, &["run", "--config", config], &[]);
    again.assert_balanced();
    assert_eq!(again.count("critical-keys", "written"), 0);
    assert_eq!(again.count("critical-keys", "skipped_fresh"), 54);
}

#[test]
fn a_plugin_format_overrides_the_backend_format() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let backend = format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[backend.format]\nkind = \"django\"\nkey_prefix = \"shop\"",
        redis.url()
    );
    let path = ws.config(&config(&backend, "format = { kind = \"raw\" }"));
    let config = path.to_str().unwrap();
    let run = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let profile: serde_json::Value = serde_json::from_str(&redis.get("user.profile.3").unwrap()).unwrap();
    assert_eq!(profile["id"], 3, "raw JSON under the plugin's own key");
    let (code, out, err) = cache(
        &ws,
        &["get", "user.profile.3", "--config", config, "--plugin", "critical-keys"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("format:  raw") && out.contains("\"id\":3"), "{out}");
    let (code, _, err) = cache(&ws, &["get", "user.profile.3", "--config", config]);
    assert_eq!(code, 1, "the backend's format looks under shop:1:…");
    assert!(err.contains("shop:1:user.profile.3"), "{err}");
    let (code, _, err) = cache(&ws, &["get", "user.profile.3", "--config", config, "--plugin", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("critical-keys"), "{err}");
}

#[test]
fn laravel_database_store_gets_laravels_schema_keys_and_expiration() {
    let ws = Workspace::new();
    let db = ws.dir.path().join("cache.db");
    let url = format!("sqlite://{}", db.display());
    let backend = format!(
        "[backend]\nkind = \"sql\"\nurl = \"{url}\"\ncreate_table = true\nformat = {{ kind = \"laravel\", version = \"11\", app_name = \"Shop\" }}"
    );
    let path = ws.config(&config(&backend, ""));
    let config = path.to_str().unwrap();
    let before = now();
    let run = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 54);
    let types = sql(
        &url,
        &["SELECT name, type FROM pragma_table_info('cache') ORDER BY cid"],
    );
    let types: Vec<(String, String)> = types
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap().to_lowercase()))
        .collect();
    assert_eq!(
        types,
        [("key", "varchar(255)"), ("value", "text"), ("expiration", "integer")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let rows = sql(
        &url,
        &["SELECT value, CAST(expiration AS TEXT) FROM cache WHERE key = 'shop_cache_user.profile.7'"],
    );
    let value = rows[0][0].clone().unwrap();
    assert!(value.starts_with("a:") && value.contains("s:2:\"id\";i:7;"), "{value}");
    let expiration: f64 = rows[0][1].clone().unwrap().parse().unwrap();
    assert!(
        (expiration - before - 600.0).abs() < 5.0,
        "expiration is unix seconds now + TTL"
    );

    let (code, out, err) = cache(&ws, &["get", "user.profile.7", "--config", config, "--json"]);
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(got["key"], "shop_cache_user.profile.7");
    assert_eq!(got["format"], "laravel serialize()");
    assert_eq!(got["value"]["id"], 7);
    let again = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(again.count("critical-keys", "skipped_fresh"), 54);
}

#[test]
fn laravel_database_store_on_postgresql_gets_text_values_and_laravel_8_keys() {
    let pg = PgServer::start();
    let ws = Workspace::new();
    let backend = format!(
        "[backend]\nkind = \"sql\"\nurl = \"{}\"\ncreate_table = true\nformat = {{ kind = \"laravel\", version = \"8\" }}",
        pg.url()
    );
    let path = ws.config(&config(&backend, "write_policy = \"refresh-if-ttl-below=5m\""));
    let config = path.to_str().unwrap();
    let run = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 54);
    let types = sql(
        &pg.url(),
        &["SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = 'cache' ORDER BY ordinal_position"],
    );
    let types: Vec<String> = types
        .into_iter()
        .map(|r| format!("{} {}", r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    assert_eq!(types, ["key character varying", "value text", "expiration bigint"]);
    // Laravel 8's default cache prefix has no trailing underscore and the table never a colon.
    let rows = sql(
        &pg.url(),
        &["SELECT value FROM cache WHERE key = 'laravel_cacheuser.profile.7'"],
    );
    assert!(rows[0][0].clone().unwrap().contains("s:2:\"id\";i:7;"));
    let (code, out, err) = cache(&ws, &["get", "user.profile.7", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("laravel serialize()") && out.contains("\"id\":7"), "{out}");
    // Refresh-ahead: nothing is close to expiry, so a second run writes nothing.
    let again = preheat(&ws, &["run", "--config", config], &[]);
    again.assert_balanced();
    assert_eq!(again.count("critical-keys", "skipped_fresh"), 54);
}

#[test]
fn a_key_too_long_for_the_postgresql_key_column_fails_alone() {
    let pg = PgServer::start();
    let ws = Workspace::new();
    // The host accepts the fixture's 300-byte key (max_key_bytes = 300), but
    // Laravel's `key` column is varchar(255): that key, and only it, fails.
    let path = ws.config(&format!(
        "[backend]\nkind = \"sql\"\nurl = \"{}\"\ncreate_table = true\nformat = {{ kind = \"laravel\", version = \"11\" }}\n[[plugins]]\nname = \"invalid-key\"\npath = {:?}\nkey_prefixes = [\"fx.invalid-key.\"]\nmax_key_bytes = 300\n",
        pg.url(),
        fixture("invalid_key").display().to_string()
    ));
    let run = preheat(&ws, &["run", "--config", path.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("invalid-key", "written"), 3, "{}", run.report);
    assert_eq!(run.count("invalid-key", "failed"), 1, "{}", run.report);
    assert_mentions(
        &run.errors_of("invalid-key"),
        &["is 314 characters, over the 255 the `key` column of `cache` holds"],
    );
    let rows = sql(&pg.url(), &["SELECT count(*)::text FROM cache"]);
    assert_eq!(rows[0][0].as_deref(), Some("3"));
}

/// Bytes that are not UTF-8 in a text `value` column: SQLite keeps them as
/// they are (as PHP's PDO stores Laravel's serialized binary strings) and
/// gives them back whole; on PostgreSQL, whose text holds only UTF-8,
/// Laravel's format base64-encodes a serialized value with a NUL (Laravel's
/// own rule), and anything else that is not UTF-8 fails alone, with the
/// reason.
#[test]
fn binary_values_in_a_text_column_are_kept_on_sqlite_and_base64_or_refused_on_postgresql() {
    let pg = PgServer::start();
    let ws = Workspace::new();
    let sqlite = format!("sqlite://{}", ws.dir.path().join("cache.db").display());
    let zoo = format!(
        "[[plugins]]\nname = \"value-zoo\"\npath = {:?}\nkey_prefixes = [\"fx.value-zoo.\"]\n",
        fixture("value_zoo").display().to_string()
    );
    let laravel = "create_table = true\nformat = { kind = \"laravel\", version = \"8\" }";
    // What is stored for the binary value: serialize("\xff\xfe\x00\x80 binary
    // \xc3\x28") as SQLite text (read as hex), its base64 on PostgreSQL, or
    // nothing (refused).
    let sqlite_stored = (
        "SELECT hex(value) FROM cache WHERE key = 'laravel_cachefx.value-zoo.binary'",
        "733A31343A22FFFE00802062696E61727920C328223B",
    );
    let pg_stored = (
        "SELECT value FROM cache WHERE key = 'laravel_cachefx.value-zoo.binary'",
        "czoxNDoi//4AgCBiaW5hcnkgwygiOw==",
    );
    for (url, backend, stored) in [
        (&sqlite, laravel, Some(sqlite_stored)),
        (&pg.url(), laravel, Some(pg_stored)),
        (&pg.url(), "table = \"raw_cache\"", None),
    ] {
        if backend.contains("raw_cache") {
            sql(url, &["CREATE TABLE raw_cache (key varchar(255) PRIMARY KEY, value text NOT NULL, expiration bigint NOT NULL)"]);
        }
        let path = ws.config(&format!("[backend]\nkind = \"sql\"\nurl = \"{url}\"\n{backend}\n{zoo}"));
        let config = path.to_str().unwrap();
        let run = preheat(&ws, &["run", "--config", config], &[]);
        run.assert_balanced();
        let Some((select, stored)) = stored else {
            assert_eq!(run.count("value-zoo", "failed"), 1, "{}", run.report);
            assert_eq!(run.report["errors"][0]["key"], "fx.value-zoo.binary");
            assert_mentions(
                &run.errors_of("value-zoo"),
                &["`raw_cache` is PostgreSQL text, which holds only UTF-8; use a BYTEA column"],
            );
            continue;
        };
        assert_eq!(run.count("value-zoo", "failed"), 0, "{}", run.report);
        assert_eq!(sql(url, &[select])[0][0].as_deref(), Some(stored));
        let (code, out, err) = cache(&ws, &["get", "fx.value-zoo.binary", "--config", config, "--json"]);
        assert_eq!(code, 0, "{err}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        let format = got["format"].as_str().unwrap();
        assert!(format.starts_with("laravel serialize()"), "{out}");
        assert_eq!(
            got["bytes"],
            stored.len() as u64 / if url == &sqlite { 2 } else { 1 },
            "{out}"
        );
    }
}
