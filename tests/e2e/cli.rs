//! The command line as deploy pipelines and plugin authors use it.

use crate::support::*;

fn demo_config(ws: &Workspace, extra_top: &str) -> std::path::PathBuf {
    ws.config(&format!(
        "{extra_top}\n[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n[plugins.settings]\nuser_ids = \"1-3\"\n",
        plugin("critical_keys").display().to_string()
    ))
}

#[test]
fn deploy_is_skipped_by_preheat_skip_or_enabled_false() {
    let ws = Workspace::new();
    let config = demo_config(&ws, "");
    let run = preheat(
        &ws,
        &["deploy", "--config", config.to_str().unwrap()],
        &[("PREHEAT_SKIP", "1")],
    );
    assert_eq!(run.code(), 0);
    assert_eq!(run.report["status"], "skipped");
    assert!(run.stderr().contains("PREHEAT_SKIP"), "{}", run.stderr());

    // `enabled` is a top-level key: write it before the [run] table.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("enabled = false\n{text}")).unwrap();
    let run = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0);
    assert_eq!(run.report["status"], "skipped");
    assert!(run.stderr().contains("enabled = false"), "{}", run.stderr());
}

#[test]
fn deploy_on_the_memory_backend_prints_a_summary_and_completes() {
    let ws = Workspace::new();
    let config = demo_config(&ws, "");
    let run = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.report["status"], "completed");
    assert_eq!(run.report["totals"]["written"], 7);
    run.assert_balanced();
    assert!(run.stderr().contains("7 written"), "{}", run.stderr());
}

#[test]
fn a_malformed_config_is_reported_with_line_and_column_and_never_breaks_a_deploy() {
    let ws = Workspace::new();
    let config = demo_config(&ws, "concurrency = \"many\"");
    let out = preheat_plain(&["run", "--config", config.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("preheat.toml") && err.contains("line 3"), "{err}");

    let deploy = preheat(&ws, &["deploy", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(deploy.code(), 0);
    assert_eq!(deploy.report["status"], "failed");
    assert!(deploy.report["error"].as_str().unwrap().contains("line 3"));
    let strict = preheat(&ws, &["deploy", "--strict", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(strict.code(), 0);
}

#[test]
fn check_validates_config_and_loads_every_plugin() {
    let ws = Workspace::new();
    let config = demo_config(&ws, "");
    let out = preheat_plain(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 plugin(s) checked, 0 problem(s)"));

    let missing = ws.config("[[plugins]]\nname = \"ghost\"\npath = \"nowhere/ghost.wasm\"\nkey_prefixes = [\"g.\"]\n");
    let out = preheat_plain(&["check", "--config", missing.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ghost") && stdout.contains("nowhere/ghost.wasm") && stdout.contains("wasm32-wasip2"),
        "{stdout}"
    );
}

#[test]
fn plugin_test_prints_keys_sizes_fuel_and_time() {
    let path = plugin("critical_keys");
    let out = preheat_plain(&[
        "plugin",
        "test",
        path.to_str().unwrap(),
        "--setting",
        "user_ids=1-3",
        "--setting",
        "ttl=120",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_mentions(
        &stdout,
        &[
            "KEY",
            "PRIORITY",
            "BYTES",
            "TTL",
            "system.settings",
            "critical",
            "user.profile.3",
            "120s",
            "enumerate",
            "produce",
            "FUEL",
            "7 keys, 7 written",
        ],
    );

    let out = preheat_plain(&[
        "plugin",
        "test",
        path.to_str().unwrap(),
        "--setting",
        "user_ids=1-100",
        "--limit",
        "10",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["keys"].as_array().unwrap().len(), 10);
    assert!(report["calls"][0]["fuel"].as_u64().unwrap() > 0);

    let bad = preheat_plain(&["plugin", "test", path.to_str().unwrap(), "--setting", "user_ids=1-x"]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("user_ids"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
}

#[test]
fn plugin_inspect_shows_the_interface_and_checks_the_limits() {
    let path = plugin("critical_keys");
    let out = preheat_plain(&["plugin", "inspect", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_mentions(
        &stdout,
        &[
            "interface: preheat:plugin@0.2.0 (this host serves 0.2.0 and 0.1.0)",
            "preheat:plugin/host@0.2.0",
            "preheat:plugin/warmer@0.2.0",
            "bytes",
            "ok: loads and starts",
        ],
    );

    let tiny = preheat_plain(&[
        "plugin",
        "inspect",
        path.to_str().unwrap(),
        "--memory-limit",
        "64KiB",
        "--json",
    ]);
    assert_ne!(tiny.status.code(), Some(0));
    let found: serde_json::Value = serde_json::from_slice(&tiny.stdout).unwrap();
    let problems = found["problems"].to_string();
    assert!(
        problems.contains("memory limit exceeded") && problems.contains("memory_limit"),
        "{problems}"
    );

    let wrong = preheat_plain(&["plugin", "inspect", fixture("wrong_version").to_str().unwrap()]);
    assert_ne!(wrong.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&wrong.stdout);
    assert!(
        stdout.contains("interface: preheat:plugin@0.9.0 (this host serves 0.2.0 and 0.1.0)")
            && stdout.contains("problem:"),
        "{stdout}"
    );
}
