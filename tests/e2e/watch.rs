//! Hot reload: `preheat watch` swaps in a rebuilt plugin, refuses a broken
//! one, refuses an invalid config edit, and re-runs what changed.

use crate::support::*;
use std::time::Duration;

#[test]
fn watch_reloads_plugins_and_config_and_keeps_the_last_good_version() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let wasm = ws.dir.path().join("p.wasm");
    std::fs::copy(plugin("synthetic"), &wasm).unwrap();
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nkey_prefixes = [\"synthetic:\", \"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\nwrite_policy = \"always\"\n[plugins.settings]\nkeys = \"5\"\n",
        redis.url()
    ));
    let log_path = ws.dir.path().join("watch.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["watch", "--config", config.to_str().unwrap()])
        .env("XDG_STATE_HOME", ws.dir.path())
        .env("NO_COLOR", "1")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("the first run", Duration::from_secs(30), || {
        redis.dbsize() == 5 && log().contains("watching")
    });

    // A rebuilt plugin is swapped in and re-run.
    std::fs::copy(plugin("critical_keys"), &wasm).unwrap();
    wait_for("the reloaded plugin's keys", Duration::from_secs(30), || {
        redis.get("system.settings").is_some()
    });
    assert!(log().contains("plugin reloaded"), "{}", log());

    // A broken file never replaces the working version.
    std::fs::write(&wasm, b"half-written garbage").unwrap();
    wait_for("the broken file to be rejected", Duration::from_secs(30), || {
        log().contains("new version rejected, keeping the previous one")
    });

    // An invalid config edit keeps the old config, with line and column.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("keys = \"5\"", "keys = \"5\"\nuser_ids = ")).unwrap();
    wait_for("the invalid config to be rejected", Duration::from_secs(30), || {
        log().contains("config change rejected")
    });
    assert!(log().contains("line "), "{}", log());

    // A valid config edit re-runs with the new settings; the plugin file is still
    // broken, so the last good version (critical-keys) keeps serving.
    std::fs::write(
        &config,
        text.replace("keys = \"5\"", "keys = \"5\"\nuser_ids = \"1-3\""),
    )
    .unwrap();
    wait_for("the new setting to take effect", Duration::from_secs(30), || {
        redis.get("user.profile.3").is_some()
    });
    assert!(log().contains("config reloaded"), "{}", log());

    child.kill().unwrap();
    child.wait().unwrap();
}
