//! `preheat serve` against a real redis-server and real components: every
//! endpoint's happy path and bad-input paths, auth, schedules (firing, changed
//! at run time, persisted), graceful stop, SSE, Prometheus metrics matching
//! the run report, SIGTERM/SIGHUP, and `--watch`.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

const TOKEN: &str = "serve-test-token";

/// A config warming `keys` synthetic keys into `redis`, at most `rate` keys/s (0 = unlimited).
fn config(ws: &Workspace, redis: &RedisServer, keys: u64, rate: u64, extra: &str) -> std::path::PathBuf {
    synthetic_serve_config(ws, redis, TOKEN, (keys, rate), "", extra)
}

fn start(ws: &Workspace, config: &std::path::Path, extra: &[&str]) -> ServeProcess {
    ServeProcess::start_with_token(ws, config, extra, TOKEN)
}

/// The accounting invariant on a finished run document.
fn assert_run_balanced(run: &Value) {
    let t = &run["totals"];
    let n = |k: &str| t[k].as_u64().unwrap();
    assert_eq!(
        n("enumerated"),
        n("written") + n("skipped_fresh") + n("skipped_by_plugin") + n("invalid") + n("failed") + n("abandoned"),
        "accounting invariant broken: {run}"
    );
}

/// `name{labels} value` from Prometheus text; checks every sample line parses.
fn metric(text: &str, series: &str) -> f64 {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad metrics value in {line:?}"));
        let bare = name.split('{').next().unwrap();
        assert!(
            bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name == series {
            found = Some(value);
        }
    }
    found.unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[test]
fn api_runs_warm_keys_and_metrics_match_the_report() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let serve = start(&ws, &config(&ws, &redis, 3000, 0, ""), &[]);

    let (code, health) = serve.get("/healthz");
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));

    // OpenAPI describes every route, and every answer with its content and schema.
    let (_, doc) = serve.get("/openapi.json");
    for path in [
        "/",
        "/dashboard/app.js",
        "/dashboard/style.css",
        "/openapi.json",
        "/cache/warming/start",
        "/cache/warming/stop",
        "/cache/warming/status",
        "/cache/warming/progress",
        "/cache/warming/warm-key",
        "/cache/warming/warm-pattern",
        "/cache/warming/hot-data",
        "/cache/warming/schedule",
        "/cache/warming/stats",
        "/cache/warming/runs",
        "/cache/warming/events",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from /openapi.json");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has no answers");
            for (code, answer) in responses {
                let content = answer["content"].as_object();
                assert!(
                    content.is_some_and(|c| !c.is_empty() && c.values().all(|m| m["schema"].is_object())),
                    "{method} {path} {code} has no content schema: {answer}"
                );
            }
        }
    }

    // Auth: mutating endpoints need the token.
    let (code, body) = serve.post_raw("/cache/warming/start", "{}", None);
    assert_eq!(code, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    assert_eq!(serve.post_raw("/cache/warming/start", "{}", Some("wrong")).0, 401);
    assert_eq!(serve.get("/cache/warming/status").0, 200, "reads need no token");

    // A full run.
    let (code, started) = serve.post("/cache/warming/start", json!({"plugins": ["synthetic"]}));
    assert_eq!(code, 202, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let status = serve.wait_idle();
    let run = &status["last_run"];
    assert_eq!(run["run_id"], run_id.as_str());
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["totals"]["written"], 3000);
    assert_run_balanced(run);
    assert_eq!(redis.dbsize(), 3000);

    // Metrics match the report.
    let (code, text) = serve.get_text("/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        metric(&text, r#"preheat_keys_total{plugin="synthetic",outcome="written"}"#),
        3000.0
    );
    assert_eq!(
        metric(&text, r#"preheat_bytes_written_total{plugin="synthetic"}"#),
        run["totals"]["bytes_written"].as_f64().unwrap()
    );
    assert_eq!(
        metric(&text, r#"preheat_fuel_consumed_total{plugin="synthetic"}"#),
        run["totals"]["fuel_consumed"].as_f64().unwrap()
    );
    assert_eq!(metric(&text, r#"preheat_runs_total{status="completed"}"#), 1.0);
    assert_eq!(
        metric(&text, r#"preheat_produce_duration_seconds_count{plugin="synthetic"}"#),
        run["plugins"][0]["produce_calls"].as_f64().unwrap()
    );
    assert_eq!(metric(&text, "preheat_active_runs"), 0.0);

    // History, stats, progress, hot data.
    let (_, runs) = serve.get("/cache/warming/runs?limit=5");
    let row = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str() && r["job_type"] == "run");
    assert_eq!(row.unwrap_or_else(|| panic!("{runs}"))["status"], "completed");
    let (_, stats) = serve.get("/cache/warming/stats");
    assert_eq!(stats["cost_benefit"]["keys_warmed"], 3000);
    assert!(
        stats["effectiveness"]["hit_rate_before"].is_null(),
        "not measured yet: {stats}"
    );
    assert!(stats["resource_usage"]["rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["timing"]["runs_finished"], 1);
    let (_, progress) = serve.get("/cache/warming/progress");
    assert_eq!(progress["status"], "idle");
    let (_, hot) = serve.get("/cache/warming/hot-data");
    assert_eq!(hot["keys"], json!([]));
    assert!(hot["reason"].as_str().is_some());

    // warm-key: the plugin's produce builds the value, with the TTL asked for.
    let (code, warmed) = serve.post(
        "/cache/warming/warm-key",
        json!({"plugin": "synthetic", "key": "synthetic:99999", "ttl": "10m"}),
    );
    assert_eq!(code, 200, "{warmed}");
    assert_eq!(warmed["outcome"], "written");
    assert_eq!(redis.get("synthetic:99999").map(|v| v.len()), Some(64));
    let ttl = redis.pttl("synthetic:99999");
    assert!(ttl > 590_000 && ttl <= 600_000, "ttl {ttl}");
    let (code, body) = serve.post(
        "/cache/warming/warm-key",
        json!({"plugin": "synthetic", "key": "elsewhere:1"}),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("key_prefixes"), "{body}");

    // warm-pattern: only enumerated keys matching the glob.
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    let (code, body) = serve.post("/cache/warming/warm-pattern", json!({"pattern": "synthetic:1?"}));
    assert_eq!(code, 202, "{body}");
    let run = serve.wait_idle()["last_run"].clone();
    assert_eq!(run["strategy"], "selective");
    assert_eq!(run["totals"]["enumerated"], 10, "{run}");
    assert_eq!(redis.dbsize(), 10);
    assert!(redis.get("synthetic:15").is_some() && redis.get("synthetic:1").is_none());
}

#[test]
fn serve_loads_a_plugin_once_and_again_only_when_its_file_changes() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let wasm = ws.dir.path().join("plugin.wasm");
    // Replaced the way deploys and cargo do it: written aside, renamed over.
    let put = |component: &std::path::Path| {
        let aside = ws.dir.path().join("plugin.wasm.new");
        std::fs::copy(component, &aside).unwrap();
        std::fs::rename(&aside, &wasm).unwrap();
    };
    put(&plugin("synthetic"));
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[serve]\ntoken = \"{TOKEN}\"\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\n[plugins.settings]\nkeys = \"10\"\nvalue_size = \"64\"\n",
        redis.url(),
        wasm.display().to_string(),
    ));
    let serve = start(&ws, &config, &[]);
    let warm = |key: &str| serve.post("/cache/warming/warm-key", json!({"plugin": "synthetic", "key": key}));
    let loads = || serve.log().matches("plugin loaded").count();

    for i in 0..3 {
        let (code, body) = warm(&format!("synthetic:{i}"));
        assert_eq!(code, 200, "{body}");
    }
    // The background preload at start and the first run share one load.
    assert_eq!(loads(), 1, "{}", serve.log());
    assert_eq!(redis.dbsize(), 3);

    // A new component at the same path: the next run loads it (panicker traps in produce).
    put(&fixture("panicker"));
    let (code, body) = warm("synthetic:5");
    assert_eq!(code, 502, "the new version ran: {body}");
    assert_eq!(loads(), 2, "{}", serve.log());
    assert!(
        serve.log().contains("plugin loaded (its file changed on disk)"),
        "{}",
        serve.log()
    );
    let (code, body) = warm("synthetic:6");
    assert_eq!(code, 502, "{body}");
    assert_eq!(loads(), 2, "an unchanged file is not loaded again: {}", serve.log());

    // Gone: the run says so, and the next good file is picked up.
    std::fs::remove_file(&wasm).unwrap();
    let (code, body) = warm("synthetic:7");
    assert_eq!(code, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains("cannot read"), "{body}");
    put(&plugin("synthetic"));
    let (code, body) = warm("synthetic:8");
    assert_eq!(code, 200, "{body}");
    assert_eq!(redis.dbsize(), 4);
}

#[test]
fn warm_key_answers_422_for_a_key_the_plugin_refuses_and_502_when_it_fails() {
    let mut redis = RedisServer::start();
    let ws = Workspace::new();
    // synthetic refuses (produce answers `fail`) a key that is not its prefix
    // followed by an index; panicker traps in every produce call.
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[serve]\ntoken = \"{TOKEN}\"\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\n[[plugins]]\nname = \"panicker\"\npath = {:?}\nkey_prefixes = [\"fx.panicker.\"]\n",
        redis.url(),
        plugin("synthetic").display().to_string(),
        fixture("panicker").display().to_string(),
    ));
    let serve = start(&ws, &config, &[]);
    let warm = |plugin: &str, key: &str| serve.post("/cache/warming/warm-key", json!({"plugin": plugin, "key": key}));

    let (code, body) = warm("synthetic", "synthetic:not-an-index");
    assert_eq!(code, 422, "a key the plugin refuses is the client's input: {body}");
    assert_eq!(
        (body["outcome"].as_str(), body["cause"].as_str()),
        (Some("failed"), Some("rejected")),
        "{body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("is not a synthetic key"),
        "{body}"
    );
    assert_run_balanced(&body["run"]);

    let (code, body) = warm("synthetic", "elsewhere:1");
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        (body["outcome"].as_str(), body["cause"].as_str()),
        (Some("invalid"), Some("invalid")),
        "{body}"
    );

    let (code, body) = warm("panicker", "fx.panicker.1");
    assert_eq!(code, 502, "a plugin that traps is the plugin's failure: {body}");
    assert_eq!(
        (body["outcome"].as_str(), body["cause"].as_str()),
        (Some("failed"), Some("failed")),
        "{body}"
    );

    let (code, body) = warm("synthetic", "synthetic:7");
    assert_eq!(
        (code, body["outcome"].as_str(), body["cause"].as_str()),
        (200, Some("written"), None),
        "{body}"
    );
    assert_eq!(redis.get("synthetic:7").map(|v| v.len()), Some(200));

    redis.kill();
    let (code, body) = warm("synthetic", "synthetic:8");
    assert_eq!(code, 502, "a backend that is down is not the client's fault: {body}");
    assert_ne!(body["cause"], "rejected", "{body}");
}

#[test]
fn warm_key_answers_409_when_its_run_is_stopped_before_the_key_is_written() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    // flaky answers `retry` to the first attempt; the retry waits an hour, so
    // the key is waiting (not in flight) when another client stops the run.
    let config = ws.config(&format!(
        "retry_base_delay = \"1h\"\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n[serve]\ntoken = \"{TOKEN}\"\n[[plugins]]\nname = \"flaky\"\npath = {:?}\nkey_prefixes = [\"fx.flaky.\"]\n[plugins.settings]\nfail_times = \"1\"\n",
        redis.url(),
        fixture("flaky").display().to_string(),
    ));
    let serve = start(&ws, &config, &[]);
    let (code, body) = std::thread::scope(|s| {
        let warming = s.spawn(|| {
            serve.post(
                "/cache/warming/warm-key",
                json!({"plugin": "flaky", "key": "fx.flaky.1"}),
            )
        });
        wait_for("the key to wait for its retry", Duration::from_secs(30), || {
            serve.get("/cache/warming/status").1["per_plugin"]["flaky"]["retried"].as_u64() > Some(0)
        });
        let (code, stopped) = serve.post("/cache/warming/stop", json!({}));
        assert_eq!(code, 202, "{stopped}");
        warming.join().unwrap()
    });
    assert_eq!(code, 409, "a run another client stopped is not a server error: {body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("was stopped") && error.contains("send it again"),
        "{body}"
    );
    assert_eq!(redis.get("fx.flaky.1"), None);
}

#[test]
fn bad_input_gets_clear_errors() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let serve = start(&ws, &config(&ws, &redis, 200_000, 20_000, ""), &[]);
    let cases: Vec<(&str, &str, u16, &str)> = vec![
        ("/cache/warming/start", "{\"plugins\": [", 400, "invalid JSON"),
        (
            "/cache/warming/start",
            "{\"plugins\": [\"nope\"]}",
            404,
            "unknown plugin \"nope\"",
        ),
        (
            "/cache/warming/start",
            "{\"plugin\": \"synthetic\"}",
            400,
            "unknown field `plugin`",
        ),
        (
            "/cache/warming/start",
            "{\"pattern\": \"a[\"}",
            400,
            "invalid key pattern",
        ),
        (
            "/cache/warming/start",
            "{\"min_priority\": \"urgent\"}",
            400,
            "unknown priority",
        ),
        ("/cache/warming/warm-key", "{\"plugin\": \"synthetic\"}", 400, "key"),
        (
            "/cache/warming/warm-key",
            "{\"plugin\": \"synthetic\", \"key\": \"synthetic:1\", \"ttl\": \"soon\"}",
            400,
            "not a duration",
        ),
        ("/cache/warming/warm-pattern", "{}", 400, "pattern"),
        (
            "/cache/warming/schedule",
            "{\"plugin\": \"synthetic\", \"cron\": \"61 * * * *\"}",
            400,
            "invalid cron",
        ),
        (
            "/cache/warming/schedule",
            "{\"plugin\": \"nope\", \"cron\": \"* * * * *\"}",
            404,
            "nope",
        ),
        ("/cache/warming/stop", "{}", 409, "no run is in progress"),
    ];
    for (path, body, want, text) in cases {
        let (code, answer) = serve.post_raw(path, body, Some(TOKEN));
        assert_eq!(code, want, "POST {path} {body} -> {answer}");
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no JSON error for {path} {body}: {answer}"));
        assert!(
            error.contains(text),
            "POST {path} {body}: {error:?} should mention {text:?}"
        );
    }
    let (code, answer) = serve.get("/no/such/thing");
    assert_eq!(code, 404);
    assert!(answer["error"].is_string());
    // A body over [serve] max_body (1 MiB) is refused from its Content-Length, unread.
    let mut tcp = std::net::TcpStream::connect(serve.base.trim_start_matches("http://")).unwrap();
    write!(
        tcp,
        "POST /cache/warming/start HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    )
    .unwrap();
    let mut answer = String::new();
    BufReader::new(tcp).read_line(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // One run per plugin at a time.
    let (code, _) = serve.post("/cache/warming/start", json!({}));
    assert_eq!(code, 202);
    let (code, busy) = serve.post("/cache/warming/start", json!({"plugins": ["synthetic"]}));
    assert_eq!(code, 409, "{busy}");
    assert!(busy["error"].as_str().unwrap().contains("already running"));
    let (code, _) = serve.post(
        "/cache/warming/warm-key",
        json!({"plugin": "synthetic", "key": "synthetic:1"}),
    );
    assert_eq!(code, 409);
    serve.post("/cache/warming/stop", json!({"wait": true}));
}

#[test]
fn stop_mid_run_keeps_the_accounting_and_sse_reports_progress() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let serve = start(&ws, &config(&ws, &redis, 100_000, 1_000, ""), &[]);

    // Subscribe to the event stream before the run starts.
    let events = std::thread::spawn({
        let url = format!("{}/cache/warming/events", serve.base);
        move || {
            let mut response = ureq::get(&url).call().unwrap();
            let reader = BufReader::new(response.body_mut().as_reader());
            let mut seen = Vec::new();
            let mut event = String::new();
            for line in reader.lines() {
                let line = line.unwrap();
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let data: Value = serde_json::from_str(data).unwrap();
                    seen.push((event.clone(), data));
                    if event == "run_finished" {
                        return seen;
                    }
                }
            }
            seen
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, started) = serve.post("/cache/warming/start", json!({}));
    let run_id = started["run_id"].as_str().unwrap().to_string();
    wait_for("progress to show", Duration::from_secs(30), || {
        serve.get("/cache/warming/status").1["progress"]["completed"]
            .as_u64()
            .unwrap_or(0)
            > 2500
    });
    let (_, status) = serve.get("/cache/warming/status");
    assert_eq!(status["status"], "running");
    assert_eq!(status["run_id"], run_id.as_str());
    for field in ["total_items", "completed", "success", "failed", "percentage"] {
        assert!(status["progress"][field].is_number(), "{field} in {status}");
    }
    assert!(
        status["performance"]["items_per_second"].as_f64().unwrap() > 0.0,
        "{status}"
    );
    assert!(status["current_batch"]["batch_size"].as_u64().unwrap() > 0, "{status}");

    let (code, stopped) = serve.post("/cache/warming/stop", json!({"run_id": run_id, "wait": true}));
    assert_eq!(code, 200, "{stopped}");
    let run = &stopped["runs"][0];
    assert_eq!(run["status"], "stopped", "{run}");
    assert!(run["totals"]["abandoned"].as_u64().unwrap() > 0, "{run}");
    assert_run_balanced(run);
    assert_eq!(redis.dbsize(), run["totals"]["written"].as_u64().unwrap());
    let (_, runs) = serve.get("/cache/warming/runs");
    let row = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str() && r["job_type"] == "run")
        .cloned();
    assert_eq!(row.unwrap()["status"], "stopped");

    let seen = events.join().unwrap();
    assert_eq!(seen[0].0, "hello");
    let progress: Vec<&Value> = seen
        .iter()
        .filter(|(e, d)| e == "progress" && d["run_id"] == run_id.as_str())
        .map(|(_, d)| d)
        .collect();
    assert!(!progress.is_empty(), "no progress events: {seen:?}");
    assert!(progress
        .iter()
        .any(|p| p["progress"]["completed"].as_u64().unwrap() > 0));
    let (_, finished) = seen.last().unwrap();
    assert_eq!(finished["run_id"], run_id.as_str());
    assert_eq!(finished["status"], "stopped");
}

#[test]
fn schedules_fire_change_at_run_time_and_persist() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    // Every second (6 fields: seconds first).
    let config = config(&ws, &redis, 50, 0, "schedule = \"* * * * * *\"");
    let serve = start(&ws, &config, &[]);
    let (_, schedule) = serve.get("/cache/warming/schedule");
    let entry = &schedule["schedules"][0];
    assert_eq!(entry["plugin"], "synthetic");
    assert_eq!(entry["cron"], "* * * * * *");
    assert!(entry["next_fire"].is_string(), "{schedule}");
    wait_for("a scheduled run", Duration::from_secs(30), || {
        serve.get("/cache/warming/status").1["last_run"]["strategy"] == "proactive"
    });
    assert_eq!(redis.dbsize(), 50);

    // Changed at run time: validated, persisted, next fire time recomputed.
    let (code, changed) = serve.post(
        "/cache/warming/schedule",
        json!({"plugin": "synthetic", "cron": "0 3 * * *", "jitter": "1m"}),
    );
    assert_eq!(code, 200, "{changed}");
    assert_eq!(changed["schedule"]["cron"], "0 3 * * *");
    assert!(
        changed["schedule"]["next_fire"].as_str().unwrap().contains("T03:0"),
        "{changed}"
    );
    drop(serve);

    let serve = start(&ws, &config, &[]);
    let (_, schedule) = serve.get("/cache/warming/schedule");
    assert_eq!(
        schedule["schedules"][0]["cron"], "0 3 * * *",
        "not persisted: {schedule}"
    );
    assert_eq!(schedule["schedules"][0]["source"], "api");
}

#[test]
fn sigterm_stops_runs_and_sighup_reloads_only_a_valid_config() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(&ws, &redis, 100_000, 5_000, "");
    let mut serve = start(&ws, &config, &[]);

    // SIGHUP with a broken config keeps the old one; a valid edit applies.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("rate_limit", "rate_limit = \n#")).unwrap();
    serve.signal("HUP");
    wait_for("the invalid config to be rejected", Duration::from_secs(30), || {
        serve.log().contains("config reload rejected")
    });
    assert!(serve.log().contains("line "), "{}", serve.log());
    std::fs::write(
        &config,
        text.replace("[plugins.settings]", "schedule = \"0 4 * * *\"\n[plugins.settings]"),
    )
    .unwrap();
    serve.signal("HUP");
    wait_for("the new schedule", Duration::from_secs(30), || {
        serve.get("/cache/warming/schedule").1["schedules"][0]["cron"] == "0 4 * * *"
    });
    // The document follows the token in force: removed by a reload, no
    // operation declares `security` any more; put back, they all do again.
    let declares_security = |doc: &Value| doc.to_string().contains("\"security\"");
    assert!(declares_security(&serve.get("/openapi.json").1));
    let token_line = format!("token = \"{TOKEN}\"\n");
    assert!(text.contains(&token_line));
    std::fs::write(&config, text.replace(&token_line, "")).unwrap();
    serve.signal("HUP");
    wait_for("the document without security", Duration::from_secs(30), || {
        !declares_security(&serve.get("/openapi.json").1)
    });
    std::fs::write(&config, &text).unwrap();
    serve.signal("HUP");
    wait_for("the document with security again", Duration::from_secs(30), || {
        declares_security(&serve.get("/openapi.json").1)
    });

    // SIGTERM mid-run: the run is stopped and recorded, the process exits 0.
    let (_, started) = serve.post("/cache/warming/start", json!({}));
    let run_id = started["run_id"].as_str().unwrap().to_string();
    wait_for("the run to write", Duration::from_secs(30), || redis.dbsize() > 1000);
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0), "{}", serve.log());
    let history = preheat_in(&ws, &["history", "--config", config.to_str().unwrap(), "--json"]);
    let rows: Value = serde_json::from_slice(&history.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str() && r["job_type"] == "run")
        .cloned();
    assert_eq!(row.unwrap_or_else(|| panic!("{rows}"))["status"], "stopped");
}

#[test]
fn refuses_a_public_address_without_a_token() {
    let ws = Workspace::new();
    let config = ws.config("[backend]\nkind = \"memory\"\n");
    let out = preheat_plain(&["serve", "--config", config.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without an API token") && err.contains("PREHEAT_API_TOKEN"),
        "{err}"
    );
}

#[test]
fn serve_watch_reruns_a_rebuilt_plugin() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let wasm = ws.dir.path().join("p.wasm");
    std::fs::copy(plugin("synthetic"), &wasm).unwrap();
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[[plugins]]\nname = \"p\"\npath = \"p.wasm\"\nkey_prefixes = [\"synthetic:\", \"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n[plugins.settings]\nkeys = \"5\"\n",
        redis.url()
    ));
    let serve = ServeProcess::start(&ws, &config, &["--watch"]);
    wait_for("the first watch run", Duration::from_secs(30), || {
        serve.get("/cache/warming/status").1["last_run"]["strategy"] == "watch"
    });
    assert_eq!(redis.dbsize(), 5);
    std::fs::copy(plugin("critical_keys"), &wasm).unwrap();
    wait_for("the reloaded plugin's keys", Duration::from_secs(30), || {
        redis.get("system.settings").is_some()
    });
    assert!(serve.log().contains("plugin reloaded"), "{}", serve.log());
    let status = serve.wait_idle();
    assert_eq!(status["last_run"]["strategy"], "watch");
}
