//! Warming into a real Redis: keys and TTLs, write policies, idempotence,
//! deadlines, and a server that is down or dies mid-run.

use crate::support::*;

fn critical_keys_config(redis: &RedisServer, extra: &str) -> String {
    format!(
        r#"
[backend]
kind = "redis"
url = "{url}"
[[plugins]]
name = "critical-keys"
path = {path:?}
key_prefixes = ["system.", "products.", "navigation.", "featured.", "user.profile."]
{extra}
[plugins.settings]
user_ids = "1-50"
page_size = 16
"#,
        url = redis.url(),
        path = plugin("critical_keys").display().to_string(),
    )
}

#[test]
fn keys_and_ttls_land_in_redis_and_a_second_run_writes_nothing() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&critical_keys_config(&redis, "default_ttl = \"10m\""));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.report["status"], "completed");
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "enumerated"), 54);
    assert_eq!(run.count("critical-keys", "written"), 54);
    assert_eq!(redis.dbsize(), 54);
    let settings: serde_json::Value = serde_json::from_str(&redis.get("system.settings").unwrap()).unwrap();
    assert!(settings.is_object());
    let profile: serde_json::Value = serde_json::from_str(&redis.get("user.profile.7").unwrap()).unwrap();
    assert_eq!(profile["id"], 7);
    let ttl = redis.pttl("user.profile.7");
    assert!(
        ttl > 590_000 && ttl <= 600_000,
        "TTL should be the 10m default, got {ttl} ms"
    );
    assert!(run.count("critical-keys", "bytes_written") > 0);
    assert!(run.plugin("critical-keys")["produce_p50_us"].as_u64().is_some());

    let again = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(again.code(), 0, "{}", again.stderr());
    again.assert_balanced();
    assert_eq!(
        again.count("critical-keys", "written"),
        0,
        "a second run must not rewrite fresh keys"
    );
    assert_eq!(again.count("critical-keys", "skipped_fresh"), 54);
}

#[test]
fn if_missing_leaves_an_existing_value_and_ttl_untouched() {
    let redis = RedisServer::start();
    let mut c = redis.conn();
    redis::cmd("SET")
        .arg("system.settings")
        .arg("hand-written")
        .arg("EX")
        .arg(42)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("navigation.menu")
        .arg("no-expiry")
        .query::<()>(&mut c)
        .unwrap();
    let ws = Workspace::new();
    let config = ws.config(&critical_keys_config(&redis, ""));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(redis.get("system.settings").unwrap(), "hand-written");
    let ttl = redis.pttl("system.settings");
    assert!(ttl > 0 && ttl <= 42_000, "TTL must stay at most 42s, got {ttl} ms");
    assert_eq!(redis.get("navigation.menu").unwrap(), "no-expiry");
    assert_eq!(redis.pttl("navigation.menu"), -1);
    assert_eq!(run.count("critical-keys", "skipped_fresh"), 2);
    assert_eq!(run.count("critical-keys", "written"), 52);
}

#[test]
fn refresh_ahead_rewrites_only_keys_close_to_expiry() {
    let redis = RedisServer::start();
    let mut c = redis.conn();
    // Near expiry (30s left, threshold 5m): rewritten. Far (1h left) and persistent: kept.
    redis::cmd("SET")
        .arg("system.settings")
        .arg("old")
        .arg("EX")
        .arg(30)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("navigation.menu")
        .arg("old")
        .arg("EX")
        .arg(3600)
        .query::<()>(&mut c)
        .unwrap();
    redis::cmd("SET")
        .arg("featured.products")
        .arg("old")
        .query::<()>(&mut c)
        .unwrap();
    let ws = Workspace::new();
    let config = ws.config(&critical_keys_config(
        &redis,
        "write_policy = \"refresh-if-ttl-below=5m\"\ndefault_ttl = \"2h\"",
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_ne!(redis.get("system.settings").unwrap(), "old");
    assert!(
        redis.pttl("system.settings") > 3_600_000,
        "refreshed key gets the new 2h TTL"
    );
    assert_eq!(redis.get("navigation.menu").unwrap(), "old");
    assert!(redis.pttl("navigation.menu") <= 3_600_000);
    assert_eq!(redis.get("featured.products").unwrap(), "old");
    assert_eq!(redis.pttl("featured.products"), -1);
    assert_eq!(run.count("critical-keys", "skipped_fresh"), 2);
    assert_eq!(run.count("critical-keys", "written"), 52);
}

#[test]
fn the_deadline_stops_the_run_and_reports_the_rest_as_abandoned() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    // 20,000 keys at 2,000 keys/s cannot finish inside a 1s deadline.
    let config = ws.config(&format!(
        r#"deadline = "1s"
[backend]
kind = "redis"
url = "{}"
[[plugins]]
name = "synthetic"
path = {:?}
key_prefixes = ["synthetic:"]
rate_limit = 2000
[plugins.settings]
keys = "20000"
"#,
        redis.url(),
        plugin("synthetic").display().to_string()
    ));
    precompile(&config);
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(run.code(), 0, "a run that hit its deadline exits non-zero");
    assert_eq!(run.report["deadline_hit"], true);
    assert_eq!(run.report["status"], "partial");
    run.assert_balanced();
    let written = run.count("synthetic", "written");
    assert!(written > 0 && written < 20_000, "written {written}");
    assert!(run.count("synthetic", "abandoned") > 0);
    assert_eq!(redis.dbsize(), written);

    // The deploy hook reports the same, but never fails the deploy.
    redis::cmd("FLUSHALL").query::<()>(&mut redis.conn()).unwrap();
    let deploy = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(deploy.code(), 0, "{}", deploy.stderr());
    assert_eq!(deploy.report["deadline_hit"], true);
}

#[test]
fn redis_down_at_start_fails_run_but_not_deploy() {
    let port = free_port();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        r#"
[backend]
kind = "redis"
url = "redis://127.0.0.1:{port}/0"
connect_timeout = "500ms"
[[plugins]]
name = "critical-keys"
path = {:?}
key_prefixes = ["system.", "products.", "navigation.", "featured.", "user.profile."]
"#,
        plugin("critical_keys").display().to_string()
    ));
    let config = config.to_str().unwrap();
    let deploy = preheat(&ws, &["deploy", "--config", config], &[]);
    assert_eq!(deploy.code(), 0, "deploy must not fail the deploy: {}", deploy.stderr());
    assert_eq!(deploy.report["status"], "failed");
    let error = deploy.report["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{port}")) && error.contains("PREHEAT_REDIS_URL"),
        "{error}"
    );

    let run = preheat(&ws, &["run", "--config", config], &[]);
    assert_ne!(run.code(), 0);
    assert_eq!(run.report["status"], "failed");

    let strict = preheat(&ws, &["deploy", "--strict", "--config", config], &[]);
    assert_ne!(strict.code(), 0, "--strict fails like run");
}

#[test]
fn redis_killed_mid_run_ends_the_run_cleanly_and_a_rerun_completes_the_set() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let ws = Workspace::new();
    let config = ws.config(&format!(
        r#"retry_base_delay = "50ms"
[backend]
kind = "redis"
url = "{}"
connect_timeout = "500ms"
response_timeout = "1s"
[[plugins]]
name = "synthetic"
path = {:?}
key_prefixes = ["synthetic:"]
rate_limit = 5000
[plugins.settings]
keys = "30000"
"#,
        redis.url(),
        plugin("synthetic").display().to_string()
    ));
    let config_arg = config.to_str().unwrap().to_string();
    let report = ws.report_path();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["run", "--config", &config_arg, "--report"])
        .arg(&report)
        .env("XDG_STATE_HOME", ws.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some keys landed, then kill the server under the run.
    let started = std::time::Instant::now();
    while redis.dbsize() < 1000 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the run never started writing"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    redis.kill();
    let output = child.wait_with_output().unwrap();
    assert_ne!(
        output.status.code(),
        Some(0),
        "a run that lost its backend exits non-zero"
    );
    let first = Run {
        report: serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap(),
        output,
    };
    first.assert_balanced();
    assert!(first.count("synthetic", "failed") > 0, "{}", first.report);
    assert!(
        first.errors_of("synthetic").contains(&format!("127.0.0.1:{port}")),
        "{}",
        first.errors_of("synthetic")
    );

    let redis = RedisServer::start_on(port);
    let second = preheat(&ws, &["run", "--config", &config_arg], &[]);
    assert_eq!(second.code(), 0, "{}", second.stderr());
    second.assert_balanced();
    assert_eq!(redis.dbsize(), 30_000);
}

#[test]
fn a_password_and_a_database_number_in_the_url_are_honoured_and_never_printed() {
    let redis = RedisServer::start();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret-pw")
        .query::<()>(&mut redis.conn())
        .unwrap();
    let ws = Workspace::new();
    let config = |password: &str| {
        ws.config(&format!(
            "[backend]\nkind = \"redis\"\nurl = \"redis://:{password}@127.0.0.1:{}/3\"\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\n[plugins.settings]\nkeys = \"10\"\n",
            redis.port,
            plugin("synthetic").display().to_string()
        ))
    };
    let ok = preheat(&ws, &["run", "--config", config("s3cret-pw").to_str().unwrap()], &[]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
    let mut c = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{}/3", redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(
        redis::cmd("DBSIZE").query::<u64>(&mut c).unwrap(),
        10,
        "keys land in database 3"
    );
    assert!(!ok.report.to_string().contains("s3cret-pw"));

    let denied = preheat(&ws, &["deploy", "--config", config("wrong-pw").to_str().unwrap()], &[]);
    assert_eq!(denied.code(), 0);
    assert_eq!(denied.report["status"], "failed");
    let text = format!("{}{}", denied.report, denied.stderr());
    assert!(!text.contains("wrong-pw"), "the password leaked: {text}");
    assert!(text.contains(":***@127.0.0.1"), "{text}");
}
