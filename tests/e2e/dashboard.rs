//! The dashboard in a real browser: `preheat serve` warming a real redis-server
//! with the `synthetic` plugin, and Debian's headless Chromium driven by
//! `tests/browser/dashboard.mjs` (Node + playwright-core from npm, installed
//! with `npm ci`; no browser download). The page starts a run through the API
//! and must show it live, at 100%, and as a completed row in the run history.
//!
//! The full-page screenshot is kept as a test artifact at
//! `target/test-artifacts/dashboard.png` (also when the page check fails).
//!
//! Needs node, npm and /usr/bin/chromium (`scripts/setup.sh` installs chromium).

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "dashboard-test-token";
/// Keys of the run and the plugin's rate limit: the run lasts a few seconds,
/// long enough for the page to show it in progress.
const KEYS: u64 = 12_000;
const RATE_LIMIT: u64 = 2_000;

/// `npm ci` in tests/browser, unless node_modules already matches package-lock.json.
fn npm_ci(dir: &Path) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(&dir.join("package-lock.json")).expect("tests/browser/package-lock.json is missing");
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    if installed.is_some_and(|t| t >= lock) && dir.join("node_modules/playwright-core/package.json").exists() {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .expect("running npm (install Node.js and npm)");
    assert!(
        out.status.success(),
        "npm ci in {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboard_shows_a_run_live_to_100_percent_and_in_the_history() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/setup.sh (or apt-get install chromium)"
    );
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        r#"
[backend]
kind = "redis"
url = "{url}"
[serve]
token = "{TOKEN}"
missed_runs = "skip"
[[plugins]]
name = "synthetic"
path = {path:?}
key_prefixes = ["synthetic:"]
write_policy = "always"
rate_limit = {RATE_LIMIT}
schedule = "0 0 1 1 *"
[plugins.settings]
keys = "{KEYS}"
value_size = "64"
"#,
        url = redis.url(),
        path = plugin("synthetic").display().to_string(),
    ));
    let serve = ServeProcess::start(&ws, &config, &[]);

    let browser = repo().join("tests/browser");
    npm_ci(&browser);
    let screenshot = repo().join("target/test-artifacts/dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = Command::new("node")
        .arg("dashboard.mjs")
        .arg(&serve.base)
        .arg(&screenshot)
        .arg(TOKEN)
        .current_dir(&browser)
        .output()
        .expect("running node (install Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the dashboard check failed (screenshot: {}):\n{stdout}{stderr}\npreheat serve log:\n{}",
        screenshot.display(),
        serve.log()
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the browser script's last line is not JSON ({e}):\n{stdout}{stderr}"));
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["keys_warmed"], KEYS.to_string(), "{result}");
    assert!(screenshot.exists(), "no screenshot at {}", screenshot.display());
    eprintln!("dashboard check: {result}");

    // What the page showed is what happened: the run is in the job history as
    // completed, and every key is in Redis.
    let run_id = result["run_id"].as_str().unwrap();
    let (status, runs) = serve.get("/cache/warming/runs?limit=20");
    assert_eq!(status, 200, "{runs}");
    let row = runs["runs"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["run_id"] == run_id && r["job_type"] == "run"))
        .unwrap_or_else(|| panic!("run {run_id} is not in GET /cache/warming/runs: {runs}"));
    assert_eq!(row["status"], "completed", "{row}");
    assert_eq!(row["metadata"]["written"], KEYS, "{row}");
    assert_eq!(redis.dbsize(), KEYS);
}
