//! Usage intelligence in `preheat serve`, against a real redis-server: events
//! through the API and a Redis Stream (nothing lost across a restart), hot
//! keys routed to their plugin and warmed reactively, expired hot keys
//! refreshed from keyspace notifications, predictive warming from a seasonal
//! history, the state kept across restarts, and `preheat hot-data`/`stats`.

use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// serve with the synthetic plugin (keys `synthetic:N`) and `usage` settings.
fn config(ws: &Workspace, redis: &RedisServer, usage: &str) -> std::path::PathBuf {
    ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n{usage}\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\n[plugins.settings]\nkeys = \"1000\"\nvalue_size = \"16\"\n",
        redis.url(),
        plugin("synthetic").display().to_string(),
    ))
}

fn hot_keys(serve: &ServeProcess, window: &str) -> Vec<Value> {
    let (_, doc) = serve.get(&format!("/cache/warming/hot-data?window={window}"));
    doc["keys"].as_array().cloned().unwrap_or_default()
}

fn misses(key: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|_| json!({"key": key, "hit": false, "latency_ms": 30.0}))
        .collect()
}

#[test]
fn api_events_make_hot_keys_that_reactive_warming_fills() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(
        &ws,
        &redis,
        "[usage.reactive]\nenabled = true\ninterval = \"200ms\"\nwindow = \"1m\"\nmin_accesses = 5",
    );
    let mut serve = ServeProcess::start(&ws, &config, &[]);
    let (_, empty) = serve.get("/cache/warming/hot-data");
    assert_eq!(empty["keys"], json!([]));
    assert!(empty["reason"].as_str().unwrap().contains("no usage events"), "{empty}");

    // Bad events are refused whole, with the position and the field.
    let (code, body) = serve.post("/cache/warming/events", json!([{"key": "synthetic:1", "hit": "yes"}]));
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("events[0].hit"), "{body}");
    let (code, body) = serve.post("/cache/warming/events", json!([{"key": "synthetic:1"}]));
    assert_eq!(code, 400, "{body}");

    // synthetic:42 is hot and missing; synthetic:7 is hot but hits; other:1 has no plugin.
    let mut events = misses("synthetic:42", 8);
    events.extend((0..8).map(|_| json!({"key": "synthetic:7", "hit": true})));
    events.extend(misses("other:1", 9));
    events.push(json!({"key": "synthetic:3", "hit": 0}));
    let (code, body) = serve.post("/cache/warming/events", json!({ "events": events }));
    assert_eq!((code, body["accepted"].as_u64()), (202, Some(26)), "{body}");

    let hot = hot_keys(&serve, "1m");
    let entry = |key: &str| {
        hot.iter()
            .find(|k| k["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("{key} not hot: {hot:?}"))
    };
    assert_eq!(entry("other:1")["rank"], 1);
    assert_eq!(entry("synthetic:42")["accesses"], 8);
    assert_eq!(entry("synthetic:42")["misses"], 8);
    assert_eq!(entry("synthetic:42")["plugin"], "synthetic");
    assert_eq!(entry("synthetic:42")["priority"], "critical");
    assert!(entry("other:1")["plugin"].is_null());
    assert!(
        entry("synthetic:42")["profile"].is_null(),
        "series start at the end of a step (1 h here)"
    );

    wait_for("reactive warming of synthetic:42", Duration::from_secs(30), || {
        redis.get("synthetic:42").is_some()
    });
    assert_eq!(redis.dbsize(), 1, "only the hot, missing, routable key is warmed");
    // The key lands before the run is recorded as finished.
    wait_for("the reactive run to finish", Duration::from_secs(30), || {
        serve.get("/cache/warming/status").1["last_run"]["strategy"] == "reactive"
    });

    // After the run, hits come in: the stats measure the effect.
    let (_, stats) = serve.get("/cache/warming/stats");
    assert_eq!(stats["effectiveness"]["events_tracked"], 26);
    assert_eq!(stats["effectiveness"]["coverage"]["hot_keys"], 4, "{stats}");

    // The state survives a restart; the CLI reads it.
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
    let out = preheat_in(
        &ws,
        &[
            "hot-data",
            "--config",
            config.to_str().unwrap(),
            "--window",
            "1m",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["key"] == "synthetic:42"),
        "{doc}"
    );
    let out = preheat_in(&ws, &["stats", "--config", config.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("events tracked:        26"));
    let serve = ServeProcess::start(&ws, &config, &[]);
    assert!(
        hot_keys(&serve, "1m").iter().any(|k| k["key"] == "synthetic:42"),
        "state lost on restart"
    );
}

#[test]
fn stream_events_survive_a_restart_and_expired_hot_keys_are_refreshed() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(
        &ws,
        &redis,
        "[usage.stream]\nname = \"app:events\"\n[usage.keyspace]\nenabled = true\nconfigure = true\n[usage.reactive]\nenabled = true\ninterval = \"200ms\"\nwindow = \"1m\"\nmin_accesses = 3",
    );
    let mut serve = ServeProcess::start(&ws, &config, &[]);
    let mut conn = redis.conn();
    let xadd = |conn: &mut redis::Connection, key: &str, hit: &str| {
        let _: String = redis::cmd("XADD")
            .arg("app:events")
            .arg("*")
            .arg("key")
            .arg(key)
            .arg("hit")
            .arg(hit)
            .query(conn)
            .unwrap();
    };
    wait_for("the consumer group", Duration::from_secs(30), || {
        serve.log().contains("reading usage events")
    });
    for _ in 0..4 {
        xadd(&mut conn, "synthetic:5", "1");
    }
    wait_for("stream events tracked", Duration::from_secs(30), || {
        hot_keys(&serve, "1m")
            .iter()
            .any(|k| k["key"] == "synthetic:5" && k["accesses"] == 4)
    });

    // Written while serve is down: read after the restart (consumer group).
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
    for _ in 0..5 {
        xadd(&mut conn, "synthetic:6", "1");
    }
    xadd(&mut conn, "synthetic:6", "maybe");
    let serve = ServeProcess::start(&ws, &config, &[]);
    wait_for("events written while down", Duration::from_secs(30), || {
        hot_keys(&serve, "1m")
            .iter()
            .any(|k| k["key"] == "synthetic:6" && k["accesses"] == 5)
    });
    assert!(serve.log().contains("malformed usage event"), "{}", serve.log());
    // Every entry was acknowledged once tracked (the malformed one too: it is logged, not retried forever).
    let pending: (u64, Option<String>, Option<String>, redis::Value) = redis::cmd("XPENDING")
        .arg("app:events")
        .arg("preheat")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending.0, 0, "unacknowledged stream entries");

    // A hot key (hits only, so reactive leaves it alone) expires: refreshed at once.
    let _: () = redis::cmd("SET")
        .arg("synthetic:6")
        .arg("old")
        .arg("PX")
        .arg(300)
        .query(&mut conn)
        .unwrap();
    wait_for("the expired hot key to be refreshed", Duration::from_secs(30), || {
        redis.get("synthetic:6").is_some_and(|v| v != "old")
    });
    let (_, cfg): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(&mut conn)
        .unwrap();
    assert!(cfg.contains('x') && cfg.contains('e'), "{cfg}");
}

#[test]
fn predictive_warming_fills_keys_forecast_for_the_next_step() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    // One-second steps, a season of 4 steps: the history below is 24 seasons long.
    let config = config(
        &ws,
        &redis,
        "[usage.tracker]\nstep_ms = 1000\n[usage.tracker.model]\nseason = 4\n[usage.predictive]\nenabled = true\ninterval = \"200ms\"\nlead_time = \"1s\"\nmin_predicted = 2.0",
    );
    let serve = ServeProcess::start(&ws, &config, &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start = now - 96_000;
    let mut events = Vec::new();
    for step in 0..96u64 {
        // synthetic:11 is busy every step; synthetic:12 is seen once in the whole history.
        for i in 0..5 {
            events.push(json!({"key": "synthetic:11", "hit": true, "ts_ms": start + step * 1000 + i * 100}));
        }
    }
    events.push(json!({"key": "synthetic:12", "hit": false, "ts_ms": start}));
    let (code, body) = serve.post("/cache/warming/events", Value::Array(events));
    assert_eq!(code, 202, "{body}");
    // synthetic:11 stays busy while the test watches, as a live key does (a
    // key that falls silent is soon forecast cold: the forecaster forgets bursts).
    let watching = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Bounded, so that a failed assertion below ends the test.
            let started = std::time::Instant::now();
            while watching.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                let live: Vec<Value> = (0..5).map(|_| json!({"key": "synthetic:11", "hit": true})).collect();
                serve.post("/cache/warming/events", Value::Array(live));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        wait_for("predictive warming of synthetic:11", Duration::from_secs(30), || {
            redis.get("synthetic:11").is_some()
        });
        assert!(
            redis.get("synthetic:12").is_none(),
            "a key seen once is not forecast hot"
        );
        // Tracked as a series: hot-data shows its seasonal profile and forecast.
        let hot = hot_keys(&serve, "1m");
        let busy = hot
            .iter()
            .find(|k| k["key"] == "synthetic:11")
            .unwrap_or_else(|| panic!("{hot:?}"));
        assert_eq!(
            busy["profile"]["hour_of_day"].as_array().map(Vec::len),
            Some(24),
            "{busy}"
        );
        assert_eq!(
            busy["profile"]["day_of_week"].as_array().map(Vec::len),
            Some(7),
            "{busy}"
        );
        assert!(busy["forecast_this_step"].as_f64().unwrap() > 1.0, "{busy}");
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
    });
    wait_for("the predictive run to finish", Duration::from_secs(30), || {
        serve.get("/cache/warming/status").1["last_run"]["strategy"] == "predictive"
    });
}
