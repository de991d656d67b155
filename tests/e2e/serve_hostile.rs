//! `preheat serve` under hostile clients (issue 13): oversized patterns and
//! lists, events from the wrong time or with absurd latencies, bodies above
//! 2 MiB, clients trickling headers or holding half-sent bodies through
//! SIGTERM, SSE clients at shutdown, `stats` polled without new connections,
//! and a SIGKILLed run left `running` with its lock held.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "hostile-test-token";

/// synthetic warming `keys` keys into `redis` at `rate` keys/s, plus `serve` lines.
fn config(ws: &Workspace, redis: &RedisServer, keys: u64, rate: u64, serve: &str) -> std::path::PathBuf {
    synthetic_serve_config(ws, redis, TOKEN, (keys, rate), serve, "")
}

fn start(ws: &Workspace, config: &std::path::Path) -> ServeProcess {
    ServeProcess::start_with_token(ws, config, &[], TOKEN)
}

/// Opens `GET /cache/warming/events` on a connection of its own; the
/// connection and the answer's status line (the stream stays open while the
/// connection is held).
fn open_event_stream(addr: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
        .write_all(b"GET /cache/warming/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    (stream, status)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn redis_info(redis: &RedisServer, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .arg("stats")
        .query(&mut redis.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn hostile_inputs_are_refused_and_history_survives_a_restart() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(&ws, &redis, 20, 0, "max_body = \"3MiB\"");
    let mut serve = start(&ws, &config);

    // 1. Patterns are bounded before globset sees them; lists and names too.
    let long = "a".repeat(300 * 1024) + "*";
    for path in ["/cache/warming/warm-pattern", "/cache/warming/start"] {
        let (code, body) = serve.post(path, json!({"pattern": long}));
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("limit is 1024 bytes"),
            "{body}"
        );
    }
    let stars = "*a".repeat(65);
    let (code, body) = serve.post("/cache/warming/warm-pattern", json!({"pattern": stars}));
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("the limit is 64"), "{body}");
    let tags: Vec<String> = (0..257).map(|i| format!("t{i}")).collect();
    let (code, body) = serve.post("/cache/warming/start", json!({"tags": tags}));
    assert_eq!(
        (code, body["error"].as_str().unwrap().contains("limit is 256")),
        (400, true),
        "{body}"
    );
    let (code, body) = serve.post("/cache/warming/start", json!({"strategy": "s".repeat(129)}));
    assert_eq!(code, 400, "{body}");
    // A pattern at the limits still works.
    let (code, body) = serve.post("/cache/warming/warm-pattern", json!({"pattern": "synthetic:*"}));
    assert_eq!(code, 202, "{body}");
    serve.wait_idle();
    let (_, health) = serve.get("/healthz");
    assert_eq!(health["status"], "ok");

    // 4, 5. Events from the future, the distant past, or with absurd latencies.
    let now = now_ms();
    for (event, word) in [
        (
            json!({"key": "synthetic:1", "hit": true, "ts_ms": 4_102_444_800_000u64}),
            "ahead",
        ),
        (json!({"key": "synthetic:1", "hit": true, "ts_ms": u64::MAX}), "ahead"),
        (json!({"key": "synthetic:1", "hit": true, "ts_ms": 1_000}), "older"),
        (
            json!({"key": "synthetic:1", "hit": false, "latency_ms": 1e308}),
            "latency_ms",
        ),
        (
            json!({"key": "synthetic:1", "hit": false, "latency_ms": -5.0}),
            "latency_ms",
        ),
    ] {
        let (code, body) = serve.post("/cache/warming/events", json!([event]));
        assert_eq!(code, 400, "{event}: {body}");
        assert!(body["error"].as_str().unwrap().contains(word), "{body}");
    }
    let good: Vec<Value> = (0..40)
        .map(|i| json!({"key": format!("synthetic:{}", i % 4), "hit": i % 3 != 0, "ts_ms": now - 1000 + i, "latency_ms": 3.5}))
        .collect();
    let (code, body) = serve.post("/cache/warming/events", json!(good));
    assert_eq!(code, 202, "{body}");

    // 8. A body above axum's 2 MiB default is accepted up to max_body.
    let big = format!("[{}]", " ".repeat(5 << 19));
    let (code, body) = serve.post_raw("/cache/warming/events", &big, Some(TOKEN));
    assert_eq!(code, 202, "a 2.5 MiB body under max_body = 3MiB: {body}");
    // Above it: refused from the headers alone, before the body is read.
    let mut raw = TcpStream::connect(serve.base.trim_start_matches("http://")).unwrap();
    raw.write_all(format!("POST /cache/warming/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n[", 4 << 20).as_bytes()).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut status = String::new();
    BufReader::new(raw).read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // 6. stats shares one backend connection: 200 polls, a handful of connections.
    let before = redis_info(&redis, "total_connections_received");
    for _ in 0..200 {
        let (code, stats) = serve.get("/cache/warming/stats");
        assert_eq!(code, 200, "{stats}");
    }
    let opened = redis_info(&redis, "total_connections_received") - before;
    assert!(opened <= 3, "200 stats requests opened {opened} Redis connections");

    // The history is saved and loads back after a restart.
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0), "{}", serve.log());
    let serve = start(&ws, &config);
    let (_, stats) = serve.get("/cache/warming/stats");
    assert_eq!(stats["effectiveness"]["events_tracked"], 40, "{stats}\n{}", serve.log());
    assert!(!serve.log().contains("starting fresh"), "{}", serve.log());
}

/// Reads an SSE stream to its end: the event names, in order.
fn sse_names(base: &str) -> std::thread::JoinHandle<Vec<String>> {
    let url = format!("{base}/cache/warming/events");
    std::thread::spawn(move || {
        let mut response = ureq::get(&url).call().unwrap();
        let reader = BufReader::new(response.body_mut().as_reader());
        reader
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("event: ").map(str::to_string))
            .collect()
    })
}

#[test]
fn slow_clients_neither_lock_out_healthz_nor_hold_up_sigterm() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(
        &ws,
        &redis,
        100_000,
        500,
        "max_connections = 64\nmax_event_streams = 8\nheader_timeout = \"2s\"\nshutdown_timeout = \"3s\"",
    );
    let mut serve = start(&ws, &config);
    let addr = serve.base.trim_start_matches("http://").to_string();

    // Event streams never end and need no token: past max_event_streams they
    // are refused, so they cannot hold every connection.
    let mut held: Vec<TcpStream> = (0..8)
        .map(|i| {
            let (stream, status) = open_event_stream(&addr);
            assert!(status.contains(" 200 "), "stream {i}: {status}");
            stream
        })
        .collect();
    let (_, status) = open_event_stream(&addr);
    assert!(status.contains(" 503 "), "the ninth stream: {status}");
    let (code, health) = serve.get("/healthz");
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    drop(held.pop());
    wait_for("a closed stream to free its room", Duration::from_secs(20), || {
        open_event_stream(&addr).1.contains(" 200 ")
    });
    drop(held);

    // 2. 1000 connections that send half a header and stall; /healthz still answers.
    let trickling: Vec<TcpStream> = (0..1000)
        .filter_map(|_| {
            let mut s = TcpStream::connect(&addr).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").ok()?;
            Some(s)
        })
        .collect();
    assert!(trickling.len() >= 900, "only {} connections opened", trickling.len());
    let asked = Instant::now();
    let (code, health) = serve.get("/healthz");
    assert_eq!((code, health["status"].as_str()), (200, Some("ok")));
    assert!(
        asked.elapsed() < Duration::from_secs(45),
        "healthz took {:?}",
        asked.elapsed()
    );
    // The stalled ones were cut by the header timeout: the server closes them.
    let mut cut = trickling.into_iter().take(10).collect::<Vec<_>>();
    for s in &mut cut {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let closed = s.read_to_end(&mut buf);
        assert!(
            closed.is_ok(),
            "a stalled connection was still open after 30 s: {closed:?}"
        );
    }

    // 3, 9. A run in progress, SSE clients, a half-sent body; SIGTERM ends it all in bound.
    let (code, started) = serve.post("/cache/warming/start", json!({}));
    assert_eq!(code, 202, "{started}");
    let run_id = started["run_id"].as_str().unwrap().to_string();
    let streams: Vec<_> = (0..5).map(|_| sse_names(&serve.base)).collect();
    wait_for("the run to write", Duration::from_secs(30), || redis.dbsize() > 200);
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(
        format!("POST /cache/warming/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"key\"").as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0), "{}", serve.log());
    let took = signalled.elapsed();
    assert!(
        took < Duration::from_secs(3 + 10),
        "SIGTERM took {took:?} with shutdown_timeout = 3s"
    );
    for stream in streams {
        let names = stream.join().unwrap();
        assert!(names.contains(&"run_finished".to_string()), "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some("shutdown"), "{names:?}");
    }
    let history = preheat_in(&ws, &["history", "--config", config.to_str().unwrap(), "--json"]);
    let rows: Value = serde_json::from_slice(&history.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .cloned();
    assert_eq!(row.unwrap_or_else(|| panic!("{rows}"))["status"], "stopped");
    // 10. Requests are not logged at INFO by default.
    assert!(!serve.log().contains("finished processing request"), "{}", serve.log());
}

#[test]
fn a_sigkilled_run_is_interrupted_and_its_lock_taken_over_at_once() {
    sigkilled_run_is_interrupted_and_its_lock_taken_over(None);
}

#[test]
fn a_sigkilled_run_is_interrupted_and_its_lock_taken_over_at_once_on_postgres() {
    let pg = PgServer::start();
    sigkilled_run_is_interrupted_and_its_lock_taken_over(Some(&pg.url()));
}

/// A run SIGKILLed mid-way, its job store the default SQLite file or the
/// PostgreSQL database at `jobs_url`: the next run takes the dead process's
/// lock at once, and the history shows the killed run `interrupted`.
fn sigkilled_run_is_interrupted_and_its_lock_taken_over(jobs_url: Option<&str>) {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = config(&ws, &redis, 100_000, 200, "");
    if let Some(url) = jobs_url {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}[jobs]\nurl = \"{url}\"\n")).unwrap();
    }
    let config_arg = config.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(["run", "--config", config_arg])
        .env_remove("PREHEAT_REDIS_URL")
        .env_remove("PREHEAT_DATABASE_URL")
        .env("XDG_STATE_HOME", ws.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the run to write", Duration::from_secs(30), || redis.dbsize() > 50);
    child.kill().unwrap();
    child.wait().unwrap();

    // The next run of that plugin takes the dead process's lock at once.
    let small = config.with_file_name("small.toml");
    std::fs::write(
        &small,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("\"100000\"", "\"10\""),
    )
    .unwrap();
    let begun = Instant::now();
    let out = preheat_in(&ws, &["run", "--config", small.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "waited {:?} on a dead lock",
        begun.elapsed()
    );

    let history = preheat_in(&ws, &["history", "--config", config_arg, "--json"]);
    let rows: Value = serde_json::from_slice(&history.stdout).unwrap();
    let statuses: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["completed", "interrupted"], "{rows}");
    if let Some(url) = jobs_url {
        let stored = sql(
            url,
            &["SELECT status FROM cache_warming_jobs WHERE job_type = 'run' ORDER BY id"],
        );
        let stored: Vec<&str> = stored.iter().map(|r| r[0].as_deref().unwrap()).collect();
        assert_eq!(stored, ["interrupted", "completed"], "the rows are in PostgreSQL");
        let locks = sql(url, &["SELECT CAST(count(*) AS TEXT) FROM preheat_run_locks"]);
        assert_eq!(locks[0][0].as_deref(), Some("0"), "no lock is left behind");
    }
    let status = preheat_in(&ws, &["status", "--config", config_arg]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("no run in progress"));
}
