//! Plugins reading application data (the `query` import), the `sql` cache
//! backend on SQLite and PostgreSQL, the job history and the run lock.

use crate::support::*;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn probe_block(sql: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"probe\"\npath = {:?}\nkey_prefixes = [\"fx.sql-probe.\"]\nsources = [\"app\"]\n{extra}\n[plugins.settings]\nsql = {sql:?}\n",
        fixture("sql_probe").display().to_string()
    )
}

fn critical_keys_block() -> String {
    format!(
        "[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n",
        plugin("critical_keys").display().to_string()
    )
}

const WRITES: &str = "INSERT INTO things (name) VALUES ('evil')|UPDATE things SET name = 'evil'|DELETE FROM things|DROP TABLE things|CREATE TABLE more (x INTEGER)|SELECT count(*) FROM things";

fn read_only_is_enforced(source_url: &str) {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[sources.app]\nurl = {source_url:?}\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n{}",
        redis.url(),
        probe_block(WRITES, "")
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    for i in 0..5 {
        let value = redis.get(&format!("fx.sql-probe.{i}")).unwrap();
        assert!(
            value.starts_with("error (denied): query on source `app` refused:"),
            "statement {i} was not refused: {value}"
        );
        assert!(
            value.contains("read-only") || value.contains("readonly"),
            "statement {i}: {value}"
        );
    }
    assert_eq!(
        redis.get("fx.sql-probe.5").unwrap(),
        "rows=1 first=2",
        "reads still work"
    );
    let rows = sql(
        source_url,
        &["SELECT CAST(count(*) AS TEXT) FROM things WHERE name <> 'evil'"],
    );
    assert_eq!(rows[0][0].as_deref(), Some("2"), "nothing changed in the source");
}

#[test]
fn plugins_cannot_write_through_a_sqlite_source() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    sql(
        &url,
        &[
            "CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)",
            "INSERT INTO things (name) VALUES ('a'), ('b')",
        ],
    );
    read_only_is_enforced(&url);
}

#[test]
fn plugins_cannot_write_through_a_postgres_source() {
    let pg = PgServer::start();
    sql(
        &pg.url(),
        &[
            "CREATE TABLE things (id SERIAL PRIMARY KEY, name TEXT)",
            "INSERT INTO things (name) VALUES ('a'), ('b')",
        ],
    );
    read_only_is_enforced(&pg.reader_url());
}

#[test]
fn a_source_down_at_start_fails_only_the_plugins_granted_it() {
    let port = free_port();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[sources.app]\nurl = \"postgres://postgres@127.0.0.1:{port}/app\"\nconnect_timeout = \"1s\"\n{}{}",
        probe_block("SELECT 1", ""),
        critical_keys_block()
    ));
    let run = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0);
    assert_eq!(run.count("critical-keys", "written"), 4);
    let error = run.plugin("probe")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("source `app`") && error.contains(&format!("127.0.0.1:{port}")) && error.contains("unreachable"),
        "{error}"
    );
    assert_eq!(run.report["status"], "partial");
    run.assert_balanced();
}

#[test]
fn a_source_connection_lost_mid_run_is_retried_then_fails_and_a_rerun_completes() {
    let mut pg = PgServer::start();
    let redis = RedisServer::start();
    let ws = Workspace::new();
    // 400 slow-ish queries at 100 keys/s: ~4s of work, during which the server dies.
    let config = ws.config(&format!(
        "concurrency = 2\nbatch_size = 10\nretry_base_delay = \"20ms\"\n[sources.app]\nurl = {:?}\nconnect_timeout = \"1s\"\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n{}",
        pg.reader_url(),
        redis.url(),
        probe_block("SELECT 7", "rate_limit = 100").replace("[plugins.settings]", "[plugins.settings]\non_error = \"retry\"\nrepeat = \"400\"")
    ));
    let config_arg = config.to_str().unwrap().to_string();
    let report_path = ws.report_path();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["run", "--config", &config_arg, "--report"])
        .arg(&report_path)
        .env("XDG_STATE_HOME", ws.dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while redis.dbsize() < 50 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the run never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    pg.stop();
    let output = child.wait_with_output().unwrap();
    assert_ne!(output.status.code(), Some(0));
    let first = Run {
        report: serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap(),
        output,
    };
    first.assert_balanced();
    assert!(first.count("probe", "failed") > 0, "{}", first.report);
    assert!(first.count("probe", "retried") > 0, "{}", first.report);
    let errors = first.errors_of("probe");
    assert!(
        errors.contains("gave up after 3 attempts") && errors.contains("source `app`"),
        "{errors}"
    );

    pg.start_again();
    let second = preheat(&ws, &["run", "--config", &config_arg], &[]);
    assert_eq!(second.code(), 0, "{}", second.stderr());
    second.assert_balanced();
    assert_eq!(redis.dbsize(), 400);
}

/// Checks write policies against a seed-app style cache table in `url`.
fn sql_backend_policies(url: &str) {
    let t = now();
    sql(
        url,
        &[
            "CREATE TABLE cache_entries (\"key\" VARCHAR(255) PRIMARY KEY, \"value\" TEXT NOT NULL, expiration BIGINT NOT NULL, created_at TIMESTAMP, updated_at TIMESTAMP)",
            &format!(
                "INSERT INTO cache_entries (\"key\", \"value\", expiration) VALUES ('app:system.settings', 'fresh', {}), ('app:navigation.menu', 'expired', {}), ('app:featured.products', 'near', {})",
                t + 3600,
                t - 10,
                t + 30
            ),
        ],
    );
    let ws = Workspace::new();
    let config = |policy: &str| {
        ws.config(&format!(
            "[backend]\nkind = \"sql\"\nurl = {url:?}\ntable = \"cache_entries\"\nkey_prefix = \"app:\"\n{}write_policy = {policy:?}\ndefault_ttl = \"2h\"\n",
            critical_keys_block()
        ))
    };
    let value = |key: &str| {
        sql(url, &[&format!("SELECT \"value\", CAST(expiration AS TEXT), CAST(updated_at AS TEXT) FROM cache_entries WHERE \"key\" = 'app:{key}'")])
    };

    let run = preheat(&ws, &["run", "--config", config("if-missing").to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(
        run.count("critical-keys", "written"),
        2,
        "absent and expired keys are written"
    );
    assert_eq!(run.count("critical-keys", "skipped_fresh"), 2);
    assert_eq!(value("system.settings")[0][0].as_deref(), Some("fresh"));
    assert!(
        value("navigation.menu")[0][0].as_deref().unwrap().starts_with('{'),
        "the expired row is replaced"
    );
    assert_eq!(
        value("featured.products")[0][0].as_deref(),
        Some("near"),
        "unexpired rows stay under if-missing"
    );
    let written = value("products.catalog.all");
    let expiration: i64 = written[0][1].as_deref().unwrap().parse().unwrap();
    assert!(
        (expiration - (t + 7200)).abs() < 60,
        "expiration is now + 2h, got {expiration}"
    );
    assert!(written[0][2].is_some(), "updated_at is set");

    let run = preheat(
        &ws,
        &["run", "--config", config("refresh-if-ttl-below=5m").to_str().unwrap()],
        &[],
    );
    assert_eq!(
        run.count("critical-keys", "written"),
        1,
        "only the near-expiry key is refreshed"
    );
    assert!(value("featured.products")[0][0].as_deref().unwrap().starts_with('{'));
    assert_eq!(value("system.settings")[0][0].as_deref(), Some("fresh"));

    let run = preheat(&ws, &["run", "--config", config("always").to_str().unwrap()], &[]);
    assert_eq!(run.count("critical-keys", "written"), 4);
    assert!(value("system.settings")[0][0].as_deref().unwrap().starts_with('{'));
}

#[test]
fn sql_backend_applies_write_policies_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    sql_backend_policies(&format!("sqlite://{}", dir.path().join("cache.db").display()));
}

#[test]
fn sql_backend_applies_write_policies_on_postgres() {
    let pg = PgServer::start();
    sql_backend_policies(&pg.url());
}

#[test]
fn sql_backend_creates_a_laravel_cache_table_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cache.db").display());
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[backend]\nkind = \"sql\"\nurl = {url:?}\ntable = \"cache\"\ncreate_table = true\n{}",
        critical_keys_block()
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(
        sql(&url, &["SELECT CAST(count(*) AS TEXT) FROM cache"])[0][0].as_deref(),
        Some("4")
    );

    let missing = ws.config(&format!(
        "[backend]\nkind = \"sql\"\nurl = {url:?}\ntable = \"nope\"\n{}",
        critical_keys_block()
    ));
    let run = preheat(&ws, &["deploy", "--config", missing.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0);
    let error = run.report["error"].as_str().unwrap();
    assert!(
        error.contains("`nope` not found") && error.contains("create_table"),
        "{error}"
    );
}

fn job_rows(ws: &Workspace) -> Vec<Vec<Option<String>>> {
    let url = format!("sqlite://{}", ws.dir.path().join("preheat/preheat.db").display());
    sql(&url, &["SELECT run_id, job_type, status, CAST(metadata AS TEXT), error_message, started_at, completed_at FROM cache_warming_jobs ORDER BY id"])
}

#[test]
fn every_run_and_plugin_is_recorded_in_the_job_history() {
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "{}[[plugins]]\nname = \"panicker\"\npath = {:?}\nkey_prefixes = [\"fx.panicker.\"]\n",
        critical_keys_block(),
        fixture("panicker").display().to_string()
    ));
    let run = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert!(run.report["history_error"].is_null(), "{}", run.report);
    let rows = job_rows(&ws);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let run_id = run.report["run_id"].as_str().unwrap();
    let find = |job: &str| rows.iter().find(|r| r[1].as_deref() == Some(job)).unwrap().clone();
    let (whole, ck, panicker) = (find("run"), find("critical-keys"), find("panicker"));
    for row in [&whole, &ck, &panicker] {
        assert_eq!(row[0].as_deref(), Some(run_id));
        assert!(
            row[5].is_some() && row[6].is_some(),
            "started_at and completed_at are set: {row:?}"
        );
    }
    assert_eq!(whole[2].as_deref(), Some("partial"));
    assert_eq!(ck[2].as_deref(), Some("completed"));
    assert_eq!(panicker[2].as_deref(), Some("failed"));
    let meta: serde_json::Value = serde_json::from_str(ck[3].as_deref().unwrap()).unwrap();
    assert_eq!(meta["written"], 4);
    let meta: serde_json::Value = serde_json::from_str(whole[3].as_deref().unwrap()).unwrap();
    assert_eq!(meta["failed"], 5);
    assert!(
        panicker[4].as_deref().unwrap().contains("fixture panic"),
        "{panicker:?}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["history", "--config", config.to_str().unwrap()])
        .env("XDG_STATE_HOME", ws.dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(run_id) && table.contains("partial"), "{table}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args([
            "history",
            "--json",
            "--limit",
            "5",
            "--config",
            config.to_str().unwrap(),
        ])
        .env("XDG_STATE_HOME", ws.dir.path())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["metadata"]["written"], 4);
}

#[test]
fn the_job_history_works_on_postgres_too() {
    let pg = PgServer::start();
    let ws = Workspace::new();
    let config = ws.config(&critical_keys_block());
    let run = preheat(
        &ws,
        &["run", "--config", config.to_str().unwrap()],
        &[("PREHEAT_DATABASE_URL", &pg.url())],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.report["history_error"].is_null(), "{}", run.report);
    let rows = sql(
        &pg.url(),
        &["SELECT job_type, status, CAST(metadata->>'written' AS TEXT) FROM cache_warming_jobs ORDER BY id"],
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        vec![Some("run".into()), Some("completed".into()), Some("4".into())]
    );
    assert_eq!(rows[1][0].as_deref(), Some("critical-keys"));
}

#[test]
fn an_unreachable_job_store_never_stops_warming_or_a_deploy() {
    let port = free_port();
    let ws = Workspace::new();
    let config = ws.config(&critical_keys_block());
    let url = format!("postgres://postgres@127.0.0.1:{port}/jobs");
    let run = preheat(
        &ws,
        &["deploy", "--config", config.to_str().unwrap()],
        &[("PREHEAT_DATABASE_URL", &url)],
    );
    assert_eq!(run.code(), 0);
    assert_eq!(run.report["status"], "completed");
    assert_eq!(run.report["totals"]["written"], 4);
    let history = run.report["history_error"].as_str().unwrap();
    assert!(
        history.contains("job history could not be written") && history.contains(&format!("127.0.0.1:{port}")),
        "{history}"
    );
}

#[test]
fn two_runs_at_once_do_not_both_warm() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[jobs]\nlock = \"skip\"\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\nrate_limit = 5000\n[plugins.settings]\nkeys = \"15000\"\n",
        redis.url(),
        plugin("synthetic").display().to_string()
    ));
    let spawn = |report: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
            .args(["run", "--config", config.to_str().unwrap(), "--report", report])
            .env("XDG_STATE_HOME", ws.dir.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let a_path = ws.dir.path().join("a.json");
    let b_path = ws.dir.path().join("b.json");
    let a = spawn(a_path.to_str().unwrap());
    // Let the first take the lock, then race the second against it.
    let started = std::time::Instant::now();
    while redis.dbsize() == 0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["status", "--config", config.to_str().unwrap()])
        .env("XDG_STATE_HOME", ws.dir.path())
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.contains("running since") && status.contains("synthetic"),
        "{status}"
    );
    let b = spawn(b_path.to_str().unwrap());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let read =
        |p: &std::path::Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let (a, b) = (read(&a_path), read(&b_path));
    assert_eq!(a["status"], "completed");
    assert_eq!(a["totals"]["written"], 15000);
    assert_eq!(b["status"], "skipped");
    let reason = b["error"].as_str().unwrap();
    assert!(
        reason.contains("holds the run lock") && reason.contains(a["run_id"].as_str().unwrap()),
        "{reason}"
    );
    assert_eq!(redis.dbsize(), 15000);
}

/// Seeds the demo database at `url`, warms catalog + critical-keys from it
/// (through `source_url`: the same data, as a role that may only read) into a
/// fresh redis, checks the values against SQL on the same data, and returns
/// every key and value written.
fn catalog_on_demo_data(url: &str, source_url: &str) -> std::collections::BTreeMap<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["demo", "--database", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[sources.app]\nurl = {source_url:?}\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n[[plugins]]\nname = \"catalog\"\npath = {:?}\nkey_prefixes = [\"products/\", \"categories/\"]\nsources = [\"app\"]\n{}sources = [\"app\"]\n[plugins.settings]\nusers_source = \"app\"\n",
        redis.url(),
        plugin("catalog").display().to_string(),
        critical_keys_block(),
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    let q = |s: &str| sql(url, &[s]);
    let col = |s: &str| q(s).into_iter().map(|r| r[0].clone().unwrap()).collect::<Vec<_>>();
    let json = |key: &str| -> serde_json::Value {
        serde_json::from_str(&redis.get(key).unwrap_or_else(|| panic!("{key} was not warmed"))).unwrap()
    };
    let ttl = |key: &str| redis.pttl(key) / 1000;

    // One navigation key, one featured key, two keys per active category.
    let active = col("SELECT slug FROM categories WHERE active ORDER BY id");
    assert_eq!(run.count("catalog", "written") as usize, 2 + 2 * active.len());

    // categories/navigation: an Array of the active roots by position, name,
    // each with all its subcategories by id (the seed app's includes(:subcategories)).
    let roots = col("SELECT slug FROM categories WHERE parent_id IS NULL AND active ORDER BY position, name");
    let nav = json("categories/navigation");
    let nav_roots: Vec<&str> = nav
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert_eq!(nav_roots, roots);
    let first_children = col(&format!(
        "SELECT s.slug FROM categories s JOIN categories r ON s.parent_id = r.id WHERE r.slug = '{}' ORDER BY s.id",
        roots[0]
    ));
    let nav_children: Vec<&str> = nav[0]["subcategories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert_eq!(nav_children, first_children);
    assert!((7100..=7200).contains(&ttl("categories/navigation")));

    // products/homepage_featured: an Array of featured active products, at most 8.
    let featured = col("SELECT CAST(p.id AS TEXT) FROM products p WHERE p.featured AND p.active ORDER BY p.id LIMIT 8");
    let warmed: Vec<String> = json("products/homepage_featured")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].to_string())
        .collect();
    assert_eq!(warmed, featured);
    assert!(json("products/homepage_featured")[0]["category"]["slug"].is_string());
    assert!((3500..=3600).contains(&ttl("products/homepage_featured")));

    // products/category/{slug}: the category's active products by name.
    let slug = &active[3];
    let names = col(&format!("SELECT p.name FROM products p JOIN categories c ON c.id = p.category_id WHERE c.slug = '{slug}' AND p.active ORDER BY p.name, p.id"));
    let page = json(&format!("products/category/{slug}"));
    let warmed: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(warmed, names);
    assert!((1700..=1800).contains(&ttl(&format!("products/category/{slug}"))));

    // categories/{id}/product_count: an Integer.
    let (id, count) = {
        let r = q("SELECT CAST(c.id AS TEXT), CAST(COUNT(p.id) AS TEXT) FROM categories c LEFT JOIN products p ON p.category_id = c.id AND p.active WHERE c.active GROUP BY c.id ORDER BY c.id LIMIT 1");
        (r[0][0].clone().unwrap(), r[0][1].clone().unwrap())
    };
    assert_eq!(json(&format!("categories/{id}/product_count")).to_string(), count);
    let inactive = col("SELECT CAST(id AS TEXT) FROM categories WHERE NOT active ORDER BY id LIMIT 1");
    assert!(
        redis
            .get(&format!("categories/{}/product_count", inactive[0]))
            .is_none(),
        "inactive categories are not warmed"
    );

    // critical-keys: one profile per active user, none for inactive ones.
    let active_users: u64 = col("SELECT CAST(count(*) AS TEXT) FROM users WHERE active")[0]
        .parse()
        .unwrap();
    assert_eq!(run.count("critical-keys", "written"), 4 + active_users);
    let inactive_user = col("SELECT CAST(id AS TEXT) FROM users WHERE NOT active ORDER BY id LIMIT 1");
    assert!(redis.get(&format!("user.profile.{}", inactive_user[0])).is_none());

    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut redis.conn()).unwrap();
    keys.into_iter().map(|k| (k.clone(), redis.get(&k).unwrap())).collect()
}

#[test]
fn the_catalog_plugin_warms_the_seed_keys_identically_from_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("app.db").display());
    let from_sqlite = catalog_on_demo_data(&sqlite, &sqlite);
    let pg = PgServer::start();
    let from_postgres = catalog_on_demo_data(&pg.url(), &pg.reader_url());
    assert_eq!(from_sqlite.len(), from_postgres.len());
    for (key, value) in &from_sqlite {
        assert_eq!(
            Some(value),
            from_postgres.get(key),
            "{key} differs between SQLite and PostgreSQL"
        );
    }
}
