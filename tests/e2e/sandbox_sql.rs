//! The SQL sandbox (issue 12): what a hostile plugin tries through the `query`
//! import against real SQLite files and a real PostgreSQL started here, and
//! what it gets: refusals naming the source, no file created, no value of
//! another plugin changed, no privileged role, results bounded in bytes.

use crate::support::*;
use std::time::Duration;

/// Separates the statements of the probe's `sql` setting.
const SEP: &str = "\n@@\n";

/// A `sql-probe` plugin that runs `statements` on source `app`, one key each
/// (`fx.sql-probe.{i}`), storing the rows or the error text as the value.
fn probe_block(statements: &[String], extra: &str, settings: &str) -> String {
    format!(
        "[[plugins]]\nname = \"probe\"\npath = {:?}\nkey_prefixes = [\"fx.sql-probe.\"]\nsources = [\"app\"]\n{extra}\n[plugins.settings]\nseparator = {SEP:?}\nsql = {:?}\n{settings}\n",
        fixture("sql_probe").display().to_string(),
        statements.join(SEP)
    )
}

/// The real `critical-keys` plugin reading its users from source `app`.
fn critical_keys_block() -> String {
    format!(
        "[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\nsources = [\"app\"]\n[plugins.settings]\nusers_source = \"app\"\n",
        plugin("critical_keys").display().to_string()
    )
}

/// A `users` table with `n` users, every tenth inactive.
fn seed_users(url: &str, n: usize) {
    let rows: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                "({i}, 'User {i}', 'user{i}@example.com', '{{\"theme\": \"t{}\"}}', {})",
                i % 3,
                if i % 10 == 0 { "FALSE" } else { "TRUE" }
            )
        })
        .collect();
    sql(
        url,
        &[
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, preferences TEXT, active BOOLEAN NOT NULL)",
            &format!("INSERT INTO users VALUES {}", rows.join(", ")),
        ],
    );
}

/// A config running `plugins` with source `app` at `source` (plus `source_extra`
/// lines) and the redis backend; `run` holds `[run]` settings.
fn config(ws: &Workspace, redis: &RedisServer, run: &str, source: &str, source_extra: &str, plugins: &str) -> String {
    ws.config(&format!(
        "{run}\n[sources.app]\nurl = {source:?}\n{source_extra}\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n{plugins}",
        redis.url()
    ))
    .display()
    .to_string()
}

/// The probe's value for statement `i`.
fn outcome(redis: &RedisServer, i: usize) -> String {
    redis
        .get(&format!("fx.sql-probe.{i}"))
        .unwrap_or_else(|| panic!("fx.sql-probe.{i} was not written"))
}

/// Asserts every statement's value: `Ok(prefix)` a result starting with it,
/// `Err(fragments)` an error naming source `app` and containing each
/// fragment, typed `denied` when it was refused by the sandbox.
fn assert_outcomes(redis: &RedisServer, cases: &[(String, Result<&str, Vec<&str>>)]) {
    for (i, (statement, expected)) in cases.iter().enumerate() {
        let value = outcome(redis, i);
        match expected {
            Ok(prefix) => assert!(value.starts_with(prefix), "{statement:?} gave {value}"),
            Err(fragments) => {
                let (kind, message) = value
                    .strip_prefix("error (")
                    .and_then(|rest| rest.split_once("): "))
                    .unwrap_or_else(|| panic!("{statement:?} was not refused: {value}"));
                assert!(
                    message.starts_with("query on source `app`"),
                    "{statement:?} was not refused: {value}"
                );
                if fragments.contains(&"refused:") {
                    assert_eq!(kind, "denied", "{statement:?}: {value}");
                }
                for f in fragments {
                    assert!(value.contains(f), "{statement:?}: {value} lacks {f:?}");
                }
            }
        }
    }
}

fn refused(fragment: &str) -> Result<&str, Vec<&str>> {
    Err(vec!["refused:", fragment])
}

#[test]
fn a_sqlite_source_refuses_everything_but_one_read_and_no_file_is_created() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let dir = ws.dir.path().to_path_buf();
    let app = format!("sqlite://{}", dir.join("app.db").display());
    seed_users(&app, 20);
    let jobs = dir.join("jobs.db");
    let out: Vec<_> = (0..6).map(|i| dir.join(format!("out{i}.db"))).collect();
    let o = |i: usize| out[i].display().to_string();
    let cases: Vec<(String, Result<&str, Vec<&str>>)> = vec![
        ("SELECT count(*) FROM users".into(), Ok("rows=1 first=20")),
        ("SELECT 1; SELECT 2".into(), refused("more than one statement")),
        (
            "SELECT 1;\n/* hidden */ ;CREATE TEMP VIEW users AS SELECT 1 AS id".into(),
            refused("more than one statement"),
        ),
        (
            format!("SELECT 1; VACUUM INTO '{}'", o(0)),
            refused("more than one statement"),
        ),
        ("CREATE TEMP TABLE t (x)".into(), refused("creating a TEMP object")),
        (
            "create temporary view users as select 9 as id".into(),
            refused("creating a TEMP object"),
        ),
        (
            "CREATE TEMP TRIGGER tr AFTER INSERT ON users BEGIN SELECT 1; END".into(),
            refused("CREATE TEMP TRIGGER"),
        ),
        (
            "INSERT INTO users VALUES (99, 'x', 'x', NULL, TRUE)".into(),
            refused("INSERT on users"),
        ),
        ("UPDATE users SET name = 'evil'".into(), refused("UPDATE on users")),
        ("DELETE FROM users".into(), refused("DELETE on users")),
        (
            "WITH x AS (SELECT 1) DELETE FROM users".into(),
            refused("DELETE on users"),
        ),
        (
            format!("ATTACH DATABASE '{}' AS jobs", jobs.display()),
            refused("ATTACH of"),
        ),
        (format!("attach '{}' as x", o(1)), refused("ATTACH of")),
        ("DETACH DATABASE main".into(), refused("DETACH")),
        ("VACUUM".into(), refused("not read-only")),
        (format!("VACUUM INTO '{}'", o(2)), refused("not read-only")),
        (
            format!("/* hi */ VaCuUm main InTo '{}'", o(3)),
            refused("not read-only"),
        ),
        (
            format!("vacuum into 'file:{}?mode=rwc'", o(4)),
            refused("not read-only"),
        ),
        (format!("EXPLAIN VACUUM INTO '{}'", o(5)), refused("not read-only")),
        ("PRAGMA journal_mode = DELETE".into(), refused("PRAGMA journal_mode")),
        ("PRAGMA writable_schema = ON".into(), refused("PRAGMA writable_schema")),
        ("SELECT * FROM pragma_database_list".into(), Err(vec!["not authorized"])),
        (
            format!("SELECT load_extension('{}/evil.so')", dir.display()),
            refused("the function load_extension()"),
        ),
        ("BEGIN IMMEDIATE".into(), refused("transaction control")),
        (
            "SELECT name FROM users ORDER BY id LIMIT 1".into(),
            Ok("rows=1 first=User 1"),
        ),
    ];
    let statements: Vec<String> = cases.iter().map(|(s, _)| s.clone()).collect();
    let jobs_url = format!("sqlite://{}", jobs.display());
    let config = config(
        &ws,
        &redis,
        "",
        &app,
        "",
        &format!("[jobs]\nurl = {jobs_url:?}\n{}", probe_block(&statements, "", "")),
    );
    let run = preheat(&ws, &["run", "--config", &config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("probe", "written"), cases.len() as u64);
    assert_outcomes(&redis, &cases);
    assert!(jobs.exists(), "the job store the probe tried to attach exists");
    for path in &out {
        assert!(!path.exists(), "{} was created", path.display());
    }
    let rows = sql(&app, &["SELECT CAST(count(*) AS TEXT) FROM users WHERE name <> 'evil'"]);
    assert_eq!(rows[0][0].as_deref(), Some("20"), "the source is unchanged");
}

#[test]
fn a_plugin_cannot_poison_what_another_plugin_reads_from_a_shared_sqlite_source() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let app = format!("sqlite://{}", ws.dir.path().join("app.db").display());
    seed_users(&app, 600);
    let profiles = |redis: &RedisServer| -> std::collections::BTreeMap<String, String> {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("user.profile.*")
            .query(&mut redis.conn())
            .unwrap();
        keys.into_iter().map(|k| (k.clone(), redis.get(&k).unwrap())).collect()
    };

    // The true values: critical-keys alone.
    let alone = config(&ws, &redis, "", &app, "", &critical_keys_block());
    let run = preheat(&ws, &["run", "--config", &alone], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let truth = profiles(&redis);
    assert_eq!(truth.len(), 540, "one profile per active user");
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();

    // The same run with a hostile neighbour trying, over and over, to shadow
    // `users` on the connections of the shared source.
    let shadow = "SELECT id, 'evil' AS name, 'evil@example.com' AS email, '{}' AS preferences, active FROM main.users";
    let attacks: Vec<String> = vec![
        format!("CREATE TEMP VIEW users AS {shadow}"),
        format!("CREATE TEMP TABLE users AS {shadow}"),
        format!("SELECT 1; CREATE TEMP VIEW users AS {shadow}"),
        format!("SELECT 1 -- \n; CREATE TEMP VIEW users AS {shadow}"),
        "ATTACH ':memory:' AS evil".into(),
        "SELECT name FROM users WHERE id = 1".into(),
    ];
    let both = config(
        &ws,
        &redis,
        "",
        &app,
        "",
        &format!(
            "{}{}",
            probe_block(&attacks, "", "repeat = \"40\""),
            critical_keys_block()
        ),
    );
    let run = preheat(&ws, &["run", "--config", &both], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert!(run.plugin("critical-keys")["error"].is_null());
    assert_eq!(run.count("critical-keys", "failed"), 0);
    assert_eq!(run.count("critical-keys", "written"), 4 + 540);
    assert_eq!(profiles(&redis), truth, "every user.profile.* value is the true one");
    for i in 0..attacks.len() * 40 {
        let value = outcome(&redis, i);
        if i % attacks.len() == attacks.len() - 1 {
            assert_eq!(
                value, "rows=1 first=User 1",
                "the attacker's own reads are not shadowed either"
            );
        } else {
            assert!(
                value.starts_with("error (denied): query on source `app` refused:"),
                "{value}"
            );
        }
    }
}

/// `reader` (see [`PgServer::reader_url`]) plus `filer`, a role that can read
/// the server's files.
fn pg_with_users() -> PgServer {
    let pg = PgServer::start();
    seed_users(&pg.url(), 20);
    sql(
        &pg.url(),
        &[
            "CREATE ROLE filer LOGIN",
            "GRANT pg_read_server_files TO filer",
            "GRANT SELECT ON users TO filer",
        ],
    );
    pg
}

#[test]
fn a_privileged_postgres_role_is_refused_at_connect_unless_the_source_allows_it() {
    let pg = pg_with_users();
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let read = vec!["SELECT count(*) FROM users".to_string()];
    let filer = format!("postgres://filer@127.0.0.1:{}/app", pg.port);
    for (url, privilege) in [
        (pg.url(), "which is a superuser"),
        (filer, "a member of `pg_read_server_files`"),
    ] {
        let refused = config(
            &ws,
            &redis,
            "",
            &url,
            "",
            &format!("{}{}", probe_block(&read, "", ""), critical_keys_block()),
        );
        let run = preheat(&ws, &["run", "--config", &refused], &[]);
        run.assert_balanced();
        for plugin in ["probe", "critical-keys"] {
            let error = run.plugin(plugin)["error"].as_str().unwrap_or_default().to_string();
            for fragment in [
                "source `app`",
                privilege,
                "CREATE ROLE preheat_reader LOGIN",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO preheat_reader",
                "allow_privileged_role = true",
            ] {
                assert!(error.contains(fragment), "{plugin}: {error} lacks {fragment:?}");
            }
            assert_eq!(run.count(plugin, "written"), 0);
        }

        let allowed = config(
            &ws,
            &redis,
            "",
            &url,
            "allow_privileged_role = true",
            &probe_block(&read, "", ""),
        );
        let run = preheat(&ws, &["run", "--config", &allowed], &[]);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        run.assert_balanced();
        assert_eq!(outcome(&redis, 0), "rows=1 first=20");
    }
}

#[test]
fn a_postgres_reader_cannot_reach_files_programs_or_leave_state_behind() {
    let pg = pg_with_users();
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let pwned = ws.dir.path().join("pwned");
    let cases: Vec<(String, Result<&str, Vec<&str>>)> = vec![
        ("SELECT count(*) FROM users".into(), Ok("rows=1 first=20")),
        (
            format!("COPY (SELECT 1) TO PROGRAM 'touch {}'", pwned.display()),
            Err(vec!["pg_execute_server_program"]),
        ),
        (
            "SELECT pg_read_file('/etc/hostname')".into(),
            Err(vec!["permission denied for function pg_read_file"]),
        ),
        (
            "SELECT lo_import('/etc/hostname')".into(),
            Err(vec!["permission denied for function lo_import"]),
        ),
        ("SELECT 1; SELECT 2".into(), Err(vec!["multiple commands"])),
        ("CREATE TEMP TABLE t (x int)".into(), Err(vec!["read-only transaction"])),
        (
            "INSERT INTO users VALUES (99, 'x', 'x', NULL, TRUE)".into(),
            Err(vec!["read-only transaction"]),
        ),
        (
            "SET TRANSACTION READ WRITE".into(),
            Err(vec!["must be set before any query"]),
        ),
        (
            "DO $$ BEGIN SET TRANSACTION READ WRITE; CREATE TABLE evil (x int); END $$".into(),
            Err(vec!["must be set before any query"]),
        ),
        ("COMMIT".into(), Ok("rows=0")),
        // State that survives a rollback: the connection holding it is closed.
        ("SELECT pg_advisory_lock(42)::text".into(), Ok("rows=1")),
        // Blocks until the holder is gone: times out if it went back to the pool.
        ("SELECT pg_advisory_lock(42)::text".into(), Ok("rows=1")),
        ("PREPARE p AS SELECT 1".into(), Ok("rows=0")),
        (
            "SELECT count(*) FROM pg_prepared_statements WHERE from_sql".into(),
            Ok("rows=1 first=0"),
        ),
        (
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()".into(),
            Ok("rows=1 first=0"),
        ),
    ];
    let statements: Vec<String> = cases.iter().map(|(s, _)| s.clone()).collect();
    // One worker, one batch: the statements run in order, one after the other.
    let config = config(
        &ws,
        &redis,
        "concurrency = 1",
        &pg.reader_url(),
        "query_timeout = \"3s\"",
        &probe_block(&statements, "", ""),
    );
    let run = preheat(&ws, &["run", "--config", &config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_outcomes(&redis, &cases);
    assert!(!pwned.exists(), "COPY … TO PROGRAM ran");
}

/// Peak RSS the host may reach in the result-size tests. Without the byte cap
/// each of them makes the host hold 600 MB of rows; with it, what is left is
/// the host itself (about 100 MiB with wasmtime) and a few capped rows.
const PEAK_RSS_BOUND: u64 = 400 << 20;

/// Runs the probe's `statements` against `source` with the default
/// `max_result_bytes` (16 MiB), checks the peak RSS, and returns each outcome.
fn result_cap_run(source: &str, statements: &[String]) -> Vec<String> {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(
        &ws,
        &redis,
        "concurrency = 1",
        source,
        "max_rows = 100000",
        &probe_block(statements, "timeout = \"60s\"", ""),
    );
    let (run, peak) = preheat_measured(&ws, &["run", "--config", &config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert!(
        peak < PEAK_RSS_BOUND,
        "peak RSS {} MiB is over the bound of {} MiB",
        peak >> 20,
        PEAK_RSS_BOUND >> 20
    );
    eprintln!("result caps on {source}: peak RSS {} MiB", peak >> 20);
    (0..statements.len()).map(|i| outcome(&redis, i)).collect()
}

#[test]
fn sqlite_results_over_max_result_bytes_fail_naming_the_limit_and_the_host_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let app = format!("sqlite://{}", dir.path().join("app.db").display());
    seed_users(&app, 3);
    let statements = [
        // 600 rows of 1 MB.
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 600) SELECT randomblob(1000000) FROM c",
        // 3 rows of 200 MB, built by SQLite.
        "SELECT randomblob(200000000) FROM users",
        "SELECT zeroblob(200000000) FROM users",
        "SELECT length(hex(randomblob(10000000))) FROM users",
        // 16 values of 9 MB in one row: each under 16 MiB, the row far over it.
        &format!("SELECT {}", vec!["randomblob(9000000)"; 16].join(", ")),
        "SELECT length(zeroblob(1000)) FROM users",
    ]
    .map(String::from);
    let outcomes = result_cap_run(&app, &statements);
    assert!(
        outcomes[0].starts_with("error (limit): ")
            && outcomes[0].contains("larger than max_result_bytes = 16.0 MiB")
            && outcomes[0].contains("raise max_result_bytes for source `app`"),
        "{}",
        outcomes[0]
    );
    for (i, columns) in [
        (1, "1 result column)"),
        (2, "1 result column)"),
        (3, "1 result column)"),
        (4, "16 result columns)"),
    ] {
        let o = &outcomes[i];
        assert!(o.starts_with("error (limit): query on source `app`"), "{o}");
        assert!(
            o.contains("the per-value cap (max_result_bytes = 16.0 MiB shared by") && o.contains(columns),
            "{o}"
        );
    }
    assert_eq!(outcomes[5], "rows=3 first=1000");
}

#[test]
fn postgres_results_over_max_result_bytes_fail_naming_the_limit_and_the_host_stays_small() {
    let pg = pg_with_users();
    let statements = [
        // 600 rows of 1 MB.
        "SELECT repeat('x', 1000000) FROM generate_series(1, 600)",
        // One value over the cap (PostgreSQL sends a row whole: see sources/postgres.rs).
        "SELECT repeat('x', 20000000)",
        "SELECT length(repeat('x', 1000)) FROM users",
    ]
    .map(String::from);
    let outcomes = result_cap_run(&pg.reader_url(), &statements);
    for o in &outcomes[..2] {
        assert!(
            o.contains("larger than max_result_bytes = 16.0 MiB")
                && o.contains("raise max_result_bytes for source `app`"),
            "{o}"
        );
    }
    assert_eq!(outcomes[2], "rows=20 first=1000");
}

#[test]
fn a_sqlite_query_cut_with_its_call_stops_and_frees_its_connection() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let dir = tempfile::tempdir().unwrap();
    let app = format!("sqlite://{}", dir.path().join("app.db").display());
    seed_users(&app, 3);
    // One connection for the plugin, a query that never ends, and a
    // query_timeout far beyond the call's timeout: only cutting the call can
    // stop the statement, and the next key needs that connection.
    let statements = [
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        "SELECT 42",
    ]
    .map(String::from);
    let config = config(
        &ws,
        &redis,
        "concurrency = 1\nbatch_size = 1\nmax_attempts = 1\ndeadline = \"60s\"",
        &app,
        "max_connections = 1\nquery_timeout = \"10m\"",
        &probe_block(&statements, "timeout = \"2s\"", ""),
    );
    let started = std::time::Instant::now();
    let run = preheat(&ws, &["run", "--config", &config], &[]);
    let took = started.elapsed();
    run.assert_balanced();
    assert_mentions(&run.errors_of("probe"), &["timed out after 2s"]);
    assert_eq!(run.count("probe", "written"), 1, "{}", run.report);
    assert_eq!(outcome(&redis, 1), "rows=1 first=42");
    assert!(took < Duration::from_secs(30), "run took {took:?}");
}
