//! Plugins written in Python (componentize-py) and JavaScript (componentize-js),
//! built from source by scripts/build-guests.sh, against their Rust twin
//! `critical-keys`; and `preheat plugin new` in all three languages.

use crate::support::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Runs scripts/build-guests.sh once per test process; it installs
/// componentize-py and componentize-js when they are missing.
fn build_guests() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(repo().join("scripts/build-guests.sh"))
            .output()
            .expect("running scripts/build-guests.sh");
        assert!(
            out.status.success(),
            "scripts/build-guests.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        repo().join("plugins/target/guests")
    })
}

/// Path of a guest built by scripts/build-guests.sh (e.g. "python_critical_keys").
fn guest(name: &str) -> PathBuf {
    build_guests().join(format!("{name}.wasm"))
}

/// The three implementations of the critical keys: (label, component).
fn twins() -> [(&'static str, PathBuf); 3] {
    [
        ("rust", plugin("critical_keys")),
        ("python", guest("python_critical_keys")),
        ("js", guest("js_critical_keys")),
    ]
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `preheat plugin test PATH --json --setting k=v ...`: exit code and report.
fn plugin_test_json(path: &Path, settings: &[(&str, &str)]) -> (Option<i32>, Value) {
    let mut args = vec![
        "plugin".to_string(),
        "test".into(),
        path.display().to_string(),
        "--json".into(),
    ];
    for (k, v) in settings {
        args.push("--setting".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = preheat_plain(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report from plugin test ({e}):\n{}", text(&out)));
    (out.status.code(), report)
}

/// (key, priority, value bytes, ttl, outcome) of every key in a plugin test report, by key.
fn key_table(report: &Value) -> Vec<(String, String, u64, u64, String)> {
    let mut rows: Vec<_> = report["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_str().unwrap().to_string(),
                k["priority"].as_str().unwrap().to_string(),
                k["value_bytes"].as_u64().unwrap(),
                k["ttl_seconds"].as_u64().unwrap(),
                k["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn python_js_and_rust_list_the_same_keys_priorities_ttls_and_sizes() {
    let settings = [("user_ids", "1-20,5,40-41"), ("page_size", "7"), ("ttl", "120")];
    let mut tables = Vec::new();
    for (label, path) in twins() {
        let (code, report) = plugin_test_json(&path, &settings);
        assert_eq!(code, Some(0), "{label}: {report}");
        assert_eq!(report["status"], "completed", "{label}");
        assert_eq!(report["totals"]["written"], 26, "{label}: {report}");
        tables.push((label, key_table(&report)));
    }
    let (_, rust) = &tables[0];
    assert_eq!(rust.len(), 26);
    let settings_row = rust.iter().find(|r| r.0 == "system.settings").unwrap();
    assert_eq!(settings_row.1, "critical");
    assert_eq!(settings_row.3, 120);
    let profile = rust.iter().find(|r| r.0 == "user.profile.41").unwrap();
    assert_eq!(profile.1, "normal");
    for (label, table) in &tables[1..] {
        assert_eq!(table, rust, "{label} differs from the Rust plugin");
    }
}

/// Every key in redis DB `db`: its value and TTL in seconds.
fn redis_contents(redis: &RedisServer, db: u32) -> BTreeMap<String, (Vec<u8>, i64)> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}/{db}", redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.into_iter()
        .map(|key| {
            let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
            let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
            (key, (value, ttl))
        })
        .collect()
}

#[test]
fn python_js_and_rust_write_byte_identical_values_into_redis() {
    let redis = RedisServer::start();
    let mut contents = Vec::new();
    for (db, (label, path)) in (1..).zip(twins()) {
        let ws = Workspace::new();
        let config = ws.config(&format!(
            r#"
batch_size = 8
[backend]
kind = "redis"
url = "redis://127.0.0.1:{port}/{db}"
[[plugins]]
name = "{label}"
path = {path:?}
key_prefixes = ["system.", "products.", "navigation.", "featured.", "user.profile."]
[plugins.settings]
user_ids = "1-50,75,100-110"
page_size = 7
ttl = 300
"#,
            port = redis.port,
            path = path.display().to_string(),
        ));
        let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
        assert_eq!(run.code(), 0, "{label}: {}", run.stderr());
        run.assert_balanced();
        assert_eq!(run.count(label, "written"), 66, "{label}: {}", run.report);
        let values = redis_contents(&redis, db);
        for (key, (_, ttl)) in &values {
            // Read right after the run: at most a few seconds have passed.
            assert!(
                (270..=300).contains(ttl),
                "{label}: {key} has TTL {ttl}, expected the plugin's 300s"
            );
        }
        contents.push((label, values));
    }

    let (_, rust) = &contents[0];
    assert_eq!(rust.len(), 66);
    let profile: Value = serde_json::from_slice(&rust["user.profile.75"].0).unwrap();
    assert_eq!(profile["id"], 75);
    assert!(String::from_utf8_lossy(&rust["products.catalog.all"].0).contains(r#"27\" Monitor"#));
    for (label, values) in &contents[1..] {
        assert_eq!(
            values.keys().collect::<Vec<_>>(),
            rust.keys().collect::<Vec<_>>(),
            "{label}: not the same keys as the Rust plugin"
        );
        for (key, (value, _)) in rust {
            // Compared as text first for a readable diff, then byte for byte.
            assert_eq!(
                String::from_utf8_lossy(&values[key].0),
                String::from_utf8_lossy(value),
                "{label}: the value of {key} differs from the Rust plugin's"
            );
            assert_eq!(&values[key].0, value, "{label}: {key}");
        }
    }
}

#[test]
fn python_js_and_rust_reject_bad_settings_with_the_same_message() {
    let cases = [
        ("user_ids", "1-x"),
        ("user_ids", "10-1"),
        ("user_ids", "1,,2"),
        ("page_size", "0"),
        ("page_size", ""),
        ("ttl", "-1"),
        ("ttl", "4294967296"),
    ];
    for (name, value) in cases {
        let mut messages = Vec::new();
        for (label, path) in twins() {
            let (code, report) = plugin_test_json(&path, &[(name, value)]);
            assert_ne!(code, Some(0), "{label} accepted {name}={value:?}");
            let plugin = &report["plugins"][0];
            let error = plugin["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{label}: no plugin error for {name}={value:?}: {report}"));
            // The message names the plugin (after the file), then the plugin's own words.
            let own = error
                .split_once("enumerate returned an error: ")
                .unwrap_or_else(|| panic!("{label}: unexpected error {error:?}"))
                .1
                .to_string();
            assert!(own.contains(name), "{label}: {own}");
            messages.push((label, own));
        }
        for (label, message) in &messages[1..] {
            assert_eq!(message, &messages[0].1, "{label} vs rust for {name}={value:?}");
        }
    }
}

/// `preheat plugin new NAME --lang LANG --dir DIR`, asserted to succeed.
fn plugin_new(name: &str, lang: &str, dir: &Path) -> PathBuf {
    let out = preheat_plain(&["plugin", "new", name, "--lang", lang, "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("preheat plugin test"), "{stdout}");
    dir.join(name)
}

/// `preheat plugin test PATH` on a scaffold's component: exit 0, the starter's 10 keys.
fn assert_scaffold_passes_plugin_test(wasm: &Path) -> Value {
    let out = preheat_plain(&["plugin", "test", wasm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("10 keys, 10 written"),
        "{}",
        text(&out)
    );
    let (code, report) = plugin_test_json(wasm, &[("count", "3"), ("ttl", "30")]);
    assert_eq!(code, Some(0), "{report}");
    report
}

/// The starter plugin's keys, the same in every language.
fn assert_starter_keys(report: &Value, name: &str) {
    let table = key_table(report);
    let expected: Vec<_> = (1..=3)
        .map(|n| {
            let priority = if n == 1 { "high" } else { "normal" };
            let value = format!(r#"{{"id":{n},"title":"Item {n}"}}"#);
            (
                format!("{name}:item:{n}"),
                priority.to_string(),
                value.len() as u64,
                30,
                "written".to_string(),
            )
        })
        .collect();
    assert_eq!(table, expected);
}

/// `preheat run --config preheat.toml` in a scaffold: the generated config works as is.
fn assert_scaffold_config_runs(project: &Path) {
    let ws = Workspace::new();
    let config = project.join("preheat.toml");
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.report["totals"]["written"], 10, "{}", run.report);
}

#[test]
fn plugin_new_rust_builds_and_passes_plugin_test() {
    let tmp = tempfile::tempdir().unwrap();
    let project = plugin_new("demo-plugin", "rust", tmp.path());
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("[workspace]"), "{manifest}");
    assert!(
        manifest.contains(&repo().join("guest-sdk").display().to_string()),
        "outside the repo, the scaffold depends on this checkout's guest SDK:\n{manifest}"
    );

    // A target dir shared by every run of this test: the scaffold's
    // dependencies (the guest SDK, wit-bindgen, serde) compile once, not per run.
    let target = repo().join("target/e2e-plugin-new");
    let cargo = |args: &[&str]| {
        let out = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(&project)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .env("CARGO_TARGET_DIR", &target)
            .output()
            .expect("running cargo");
        assert!(out.status.success(), "cargo {args:?} failed:\n{}", text(&out));
    };
    cargo(&["build", "--release", "--target", "wasm32-wasip2"]);
    // The scaffold's own unit tests run natively, and it is formatted as rustfmt wants.
    cargo(&["test"]);
    cargo(&["fmt", "--check"]);

    let built = target.join("wasm32-wasip2/release/demo_plugin.wasm");
    // Where a plain `cargo build` in the project puts it, and where its preheat.toml looks.
    let wasm = project.join("target/wasm32-wasip2/release/demo_plugin.wasm");
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    std::fs::copy(&built, &wasm).unwrap();
    let report = assert_scaffold_passes_plugin_test(&wasm);
    assert_starter_keys(&report, "demo-plugin");
    assert_scaffold_config_runs(&project);

    let again = preheat_plain(&["plugin", "new", "demo-plugin", "--dir", tmp.path().to_str().unwrap()]);
    assert_ne!(again.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        text(&again)
    );
}

#[test]
fn plugin_new_python_and_js_build_and_pass_plugin_test() {
    // The scaffolds' build.sh would install their tools; reuse the ones
    // scripts/build-guests.sh installed instead of downloading them again.
    build_guests();
    let tools = [
        (
            "python",
            "COMPONENTIZE_PY",
            repo().join("target/guest-tools/venv/bin/componentize-py"),
        ),
        (
            "js",
            "COMPONENTIZE_JS",
            repo().join("plugins/js-critical-keys/node_modules/.bin/componentize-js"),
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (lang, var, tool) in tools {
        let name = format!("{lang}-starter");
        let project = plugin_new(&name, lang, tmp.path());
        assert!(project.join("wit/preheat.wit").is_file());
        let out = Command::new(project.join("build.sh"))
            .env(var, &tool)
            .output()
            .expect("running the scaffold's build.sh");
        assert!(out.status.success(), "{lang} build.sh failed:\n{}", text(&out));
        let wasm = project.join(format!("target/{lang}_starter.wasm"));
        let report = assert_scaffold_passes_plugin_test(&wasm);
        assert_starter_keys(&report, &name);
        assert_scaffold_config_runs(&project);
    }
}
