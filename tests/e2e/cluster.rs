//! Warming into a real Redis Cluster (`kind = "redis-cluster"`), started
//! here: many keys land on the masters of their slots (hash tags too) and
//! read back through cluster clients; a master killed mid-run fails over to
//! its replica and the run still writes every key; slots migrated mid-run
//! (ASK while migrating, MOVED after) keep every write; server stats summed
//! over the masters; usage events from the stream and key events from every
//! master.

use crate::support::*;
use preheat::backend::{Backend, Outcome, Write};
use preheat::config::{Config, WritePolicy};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A config writing the synthetic plugin's `keys` keys (`synthetic:N`, and
/// `{tagged}:N` from a second plugin when `tagged` > 0) into `cluster`, with
/// `extra` lines in `[backend]` and `plugin` lines in the first plugin.
fn config(
    ws: &Workspace,
    cluster: &RedisCluster,
    (keys, tagged): (u64, u64),
    extra: &str,
    plugin_lines: &str,
) -> std::path::PathBuf {
    let path = plugin("synthetic").display().to_string();
    let mut text = format!(
        "[run]\nconcurrency = 8\nbatch_size = 100\nmax_attempts = 6\nretry_base_delay = \"200ms\"\n[backend]\n{}\n{extra}\n[[plugins]]\nname = \"synthetic\"\npath = {path:?}\nkey_prefixes = [\"synthetic:\"]\n{plugin_lines}\n[plugins.settings]\nkeys = \"{keys}\"\nvalue_size = \"32\"\n",
        cluster.backend_toml()
    );
    if tagged > 0 {
        text.push_str(&format!(
            "[[plugins]]\nname = \"tagged\"\npath = {path:?}\nkey_prefixes = [\"{{tagged}}:\"]\n[plugins.settings]\nkeys = \"{tagged}\"\nprefix = \"{{tagged}}:\"\nvalue_size = \"32\"\n"
        ));
    }
    // `ws.config` starts inside `[run]`: the text above opens its own.
    ws.config(text.trim_start_matches("[run]\n"))
}

fn run(ws: &Workspace, config: &Path) -> Run {
    preheat(ws, &["run", "--config", config.to_str().unwrap()], &[])
}

/// The value the synthetic plugin makes for key `i` starts with `i:`.
fn assert_synthetic(conn: &mut redis::cluster::ClusterConnection, prefix: &str, keys: u64) {
    for i in 0..keys {
        let key = format!("{prefix}{i}");
        let value: Option<String> = redis::cmd("GET").arg(&key).query(conn).unwrap();
        let value = value.unwrap_or_else(|| panic!("{key} is missing"));
        assert!(value.starts_with(&format!("{i}:")), "{key} holds {value:?}");
    }
}

#[test]
fn twenty_thousand_keys_land_on_the_masters_of_their_slots() {
    let cluster = RedisCluster::start(3, 0);
    let ws = Workspace::new();
    let (keys, tagged) = (20_000, 500);
    let config = config(&ws, &cluster, (keys, tagged), "", "");
    let run = run(&ws, &config);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("synthetic", "written"), keys);
    assert_eq!(run.count("tagged", "written"), tagged);

    // Where each key belongs, by the servers' own CLUSTER KEYSLOT and slot map.
    let all: Vec<String> = (0..keys)
        .map(|i| format!("synthetic:{i}"))
        .chain((0..tagged).map(|i| format!("{{tagged}}:{i}")))
        .collect();
    let mut pipe = redis::pipe();
    for key in &all {
        pipe.cmd("CLUSTER").arg("KEYSLOT").arg(key);
    }
    let slots: Vec<u16> = pipe.query(&mut cluster.nodes[0].conn()).unwrap();
    let owner_of_slot = slot_owners(&cluster);
    let mut expected: HashMap<u16, u64> = HashMap::new();
    for (key, slot) in all.iter().zip(&slots) {
        *expected.entry(owner_of_slot[*slot as usize]).or_default() += 1;
        if key.starts_with("{tagged}") {
            assert_eq!(
                *slot, slots[keys as usize],
                "{key}: a hash tag puts every key in one slot"
            );
        }
    }
    assert_eq!(expected.len(), 3, "the keys spread over every master");
    for port in cluster.master_ports() {
        assert_eq!(
            cluster.node(port).dbsize(),
            expected[&port],
            "keys on the master on port {port}"
        );
    }
    let mut conn = cluster.conn();
    assert_synthetic(&mut conn, "synthetic:", keys);
    assert_synthetic(&mut conn, "{tagged}:", tagged);
    // redis-cli -c, asked on a node that does not own the key, follows MOVED to it.
    let key = "synthetic:7";
    let elsewhere = cluster
        .master_ports()
        .into_iter()
        .find(|p| *p != cluster.master_of(key))
        .unwrap();
    let out = std::process::Command::new("redis-cli")
        .args(["-c", "-p", &elsewhere.to_string(), "GET", key])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("7:"),
        "redis-cli -c GET {key}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The master port owning each of the 16,384 slots.
fn slot_owners(cluster: &RedisCluster) -> Vec<u16> {
    let mut owners = vec![0u16; 16384];
    let ranges: Vec<Vec<Value>> = {
        let raw: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut cluster.nodes[0].conn())
            .unwrap();
        let redis::Value::Array(ranges) = raw else {
            panic!("CLUSTER SLOTS: {raw:?}")
        };
        ranges
            .into_iter()
            .map(|r| {
                let redis::Value::Array(r) = r else { panic!("{r:?}") };
                r.into_iter().map(value_json).collect()
            })
            .collect()
    };
    for range in ranges {
        let (start, end) = (range[0].as_u64().unwrap(), range[1].as_u64().unwrap());
        let port = range[2][1].as_u64().unwrap() as u16;
        for slot in start..=end {
            owners[slot as usize] = port;
        }
    }
    assert!(owners.iter().all(|p| *p != 0), "every slot is assigned");
    owners
}

/// A reply as JSON (integers, strings and arrays are all CLUSTER SLOTS holds).
fn value_json(v: redis::Value) -> Value {
    match v {
        redis::Value::Int(n) => Value::from(n),
        redis::Value::BulkString(b) => Value::from(String::from_utf8_lossy(&b).into_owned()),
        redis::Value::Array(items) => Value::Array(items.into_iter().map(value_json).collect()),
        other => Value::String(format!("{other:?}")),
    }
}

/// Runs `preheat run` on a thread while `during` acts on the cluster once
/// `started` keys are stored; returns the run, and whether the run was still
/// going when `during` had finished.
fn run_while(
    ws: &Workspace,
    config: &Path,
    cluster: &mut RedisCluster,
    started: u64,
    during: impl FnOnce(&mut RedisCluster),
) -> (Run, bool) {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let running = scope.spawn(|| {
            let run = run(ws, config);
            done.store(true, Ordering::SeqCst);
            run
        });
        wait_for("the run to write its first keys", Duration::from_secs(60), || {
            cluster
                .nodes
                .iter()
                .filter(|n| n.alive())
                .map(|n| n.dbsize())
                .sum::<u64>()
                >= started
        });
        during(cluster);
        let mid_run = !done.load(Ordering::SeqCst);
        (running.join().unwrap(), mid_run)
    })
}

#[test]
fn a_master_killed_mid_run_fails_over_and_every_key_is_written() {
    let mut cluster = RedisCluster::start(3, 1);
    let ws = Workspace::new();
    let keys = 6000;
    // 1,000 keys/s: the run lasts about six seconds, the failover one or two.
    let config = config(
        &ws,
        &cluster,
        (keys, 0),
        "response_timeout = \"5s\"",
        "rate_limit = 1000",
    );
    precompile(&config);
    let before = cluster.master_ports();
    let victim = cluster.master_of("synthetic:0");
    let (run, mid_run) = run_while(&ws, &config, &mut cluster, 1000, |cluster| {
        // Redis replicates asynchronously: a write the master acknowledged and
        // its replica never received is lost in the failover, whatever the
        // client does (seen here: replicas at offset 0, holding none of their
        // masters' ~330 keys). Kill the master once its replica holds what
        // it held a moment ago, so the test is about preheat, not that window.
        cluster.wait_replicated(victim);
        cluster.kill(victim);
        cluster.wait_ok();
    });
    assert!(mid_run, "the failover finished before the run did");
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("synthetic", "failed"), 0, "{}", run.errors_of("synthetic"));
    eprintln!(
        "failover (if-missing): {} written, {} found fresh, {} retried",
        run.count("synthetic", "written"),
        run.count("synthetic", "skipped_fresh"),
        run.count("synthetic", "retried")
    );
    assert_written_once_or_found_fresh_after_a_retry(&run, keys);
    // Most writes sent again after the kill were refused by the dead master
    // and never landed; only those in flight when it died may have. Sending
    // whole batches again made most of them fresh (measured: 550 fresh of
    // 800 retried, against 5 of 186 when only unsent writes go again).
    assert!(
        run.count("synthetic", "skipped_fresh") * 4 <= run.count("synthetic", "retried"),
        "writes answered before the failover were sent again"
    );
    let after = cluster.master_ports();
    assert!(
        !after.contains(&victim) && after.len() == 3 && after != before,
        "a replica took over: masters {before:?} → {after:?}"
    );
    eprintln!(
        "failover: {} writes retried, masters {before:?} → {after:?}",
        run.count("synthetic", "retried")
    );
    assert_synthetic(&mut cluster.conn(), "synthetic:", keys);
}

/// Every key of an `if-missing` run into an empty cluster was written, or
/// found fresh when it was sent again: a write whose reply was lost (the
/// node died, the connection wedged) may have landed, and only a retry can
/// find it. Writes answered before a failure are not sent again.
fn assert_written_once_or_found_fresh_after_a_retry(run: &Run, keys: u64) {
    let (written, fresh, retried) = (
        run.count("synthetic", "written"),
        run.count("synthetic", "skipped_fresh"),
        run.count("synthetic", "retried"),
    );
    assert_eq!(written + fresh, keys, "{written} written, {fresh} fresh");
    assert!(
        fresh <= retried,
        "{fresh} keys found fresh, but only {retried} writes were sent again"
    );
}

/// A node's id (`CLUSTER MYID`).
fn node_id(node: &ClusterNode) -> String {
    redis::cmd("CLUSTER").arg("MYID").query(&mut node.conn()).unwrap()
}

#[test]
fn slots_resharded_mid_run_keep_every_key() {
    let mut cluster = RedisCluster::start(3, 0);
    let ws = Workspace::new();
    let keys = 6000;
    let config = config(&ws, &cluster, (keys, 0), "", "rate_limit = 1500");
    precompile(&config);
    let from = cluster.master_of("synthetic:0");
    let to = cluster.master_ports().into_iter().find(|p| *p != from).unwrap();
    let slots_of = |cluster: &RedisCluster, port: u16| slot_owners(cluster).iter().filter(|p| **p == port).count();
    let owned = slots_of(&cluster, to);
    let (run, mid_run) = run_while(&ws, &config, &mut cluster, 500, |cluster| {
        let out = std::process::Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &node_id(cluster.node(from))])
            .args(["--cluster-to", &node_id(cluster.node(to))])
            .args(["--cluster-slots", "3000", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster reshard: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert!(mid_run, "the resharding finished before the run did");
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("synthetic", "failed"), 0, "{}", run.errors_of("synthetic"));
    assert_written_once_or_found_fresh_after_a_retry(&run, keys);
    assert_eq!(slots_of(&cluster, to), owned + 3000, "the slots moved");
    assert_synthetic(&mut cluster.conn(), "synthetic:", keys);
}

/// A connected backend for `[backend]` `toml`, and a runtime to drive it.
fn backend(toml: &str) -> (Backend, tokio::runtime::Runtime) {
    let config = Config::parse(&format!("[backend]\n{toml}\n"), Path::new("cluster.toml")).unwrap();
    config.validate().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = rt.block_on(Backend::connect(&config.backend)).unwrap();
    (backend, rt)
}

/// Writes into a slot half migrated: keys still on the source are answered
/// there, the others are sent on to the target with ASKING (the refresh
/// script too, which the target may not have), each with its exact outcome;
/// after the migration completes every key is read where it now lives.
#[test]
fn writes_into_a_migrating_slot_follow_ask_with_exact_outcomes() {
    let cluster = RedisCluster::start(3, 0);
    let (backend, rt) = backend(&cluster.backend_toml());
    let key = |i: usize| format!("{{moving}}:{i}");
    let source = cluster.node(cluster.master_of("{moving}"));
    let target = cluster.nodes.iter().find(|n| n.port != source.port).unwrap();
    let mut conn = cluster.conn();
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg(key(i)).arg("old").query(&mut conn).unwrap();
    }
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{moving}")
        .query(&mut source.conn())
        .unwrap();
    let setslot = |node: &ClusterNode, state: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id)
            .query(&mut node.conn())
            .unwrap();
    };
    setslot(target, "IMPORTING", &node_id(source));
    setslot(source, "MIGRATING", &node_id(target));
    let migrate = |keys: Vec<String>| {
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target.port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(keys)
            .query(&mut source.conn())
            .unwrap();
    };
    migrate((0..50).map(key).collect());

    let writes = |range: std::ops::Range<usize>| -> Vec<Write> {
        range
            .map(|i| Write {
                key: key(i),
                value: bytes::Bytes::from_static(b"new"),
                ttl: Some(Duration::from_secs(3600)),
            })
            .collect()
    };
    let outcomes = rt
        .block_on(backend.write_batch(WritePolicy::IfMissing, &writes(0..200)))
        .unwrap();
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected = if i < 100 { Outcome::Fresh } else { Outcome::Written };
        assert_eq!(*outcome, expected, "{}", key(i));
    }
    let refresh = WritePolicy::parse("refresh-if-ttl-below=1m").unwrap();
    let outcomes = rt.block_on(backend.write_batch(refresh, &writes(200..220))).unwrap();
    assert_eq!(
        outcomes,
        vec![Outcome::Written; 20],
        "refresh of absent keys in the migrating slot"
    );
    assert_eq!(source.dbsize(), 50, "only the keys not yet migrated stay on the source");

    // Finish the migration, as redis-cli --cluster reshard would.
    let left: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(1000)
        .query(&mut source.conn())
        .unwrap();
    migrate(left);
    for node in &cluster.nodes {
        setslot(node, "NODE", &node_id(target));
    }
    for i in 0..220 {
        let expected = if i < 100 { "old" } else { "new" };
        let got: Option<String> = rt
            .block_on(backend.get(&key(i)))
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap());
        assert_eq!(got.as_deref(), Some(expected), "{}", key(i));
    }
    assert_eq!(target.dbsize(), 220);
}

/// `INFO stats` of every master, summed: reads that hit and missed on each
/// master all count.
#[test]
fn server_stats_sum_every_master() {
    let cluster = RedisCluster::start(3, 0);
    let (backend, rt) = backend(&cluster.backend_toml());
    let before = rt.block_on(backend.server_stats()).unwrap().unwrap();
    let mut conn = cluster.conn();
    // Keys on every master: present ones are hits, absent ones misses.
    let keys: Vec<String> = (0..30).map(|i| format!("stats:{i}")).collect();
    let masters: std::collections::HashSet<u16> = keys.iter().map(|k| cluster.master_of(k)).collect();
    assert_eq!(masters.len(), 3);
    for key in &keys[..20] {
        let _: () = redis::cmd("SET").arg(key).arg("v").query(&mut conn).unwrap();
    }
    for key in &keys {
        let _: Option<String> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
    }
    let after = rt.block_on(backend.server_stats()).unwrap().unwrap();
    assert_eq!((after.hits - before.hits, after.misses - before.misses), (20, 10));
}

fn hot_keys(serve: &ServeProcess) -> Vec<Value> {
    let (_, doc) = serve.get("/cache/warming/hot-data?window=1m");
    doc["keys"].as_array().cloned().unwrap_or_default()
}

/// serve on a cluster: the usage stream is read on the node owning its key,
/// and a hot key that expires on any master is refreshed at once.
#[test]
fn usage_events_and_expired_keys_come_from_every_master() {
    let cluster = RedisCluster::start(3, 0);
    let ws = Workspace::new();
    let usage = "[usage.stream]\nname = \"app:events\"\n[usage.keyspace]\nenabled = true\nconfigure = true\n[usage.reactive]\nenabled = true\ninterval = \"200ms\"\nwindow = \"1m\"\nmin_accesses = 3";
    let config = ws.config(&format!(
        "[backend]\n{}\n{usage}\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\n[plugins.settings]\nkeys = \"1000\"\nvalue_size = \"16\"\n",
        cluster.backend_toml(),
        plugin("synthetic").display().to_string(),
    ));
    let serve = ServeProcess::start(&ws, &config, &[]);
    wait_for("the consumer group", Duration::from_secs(30), || {
        serve.log().contains("reading usage events")
    });
    wait_for("every master watched", Duration::from_secs(30), || {
        serve.log().matches("watching expired and evicted keys").count() == 3
    });
    // One hot key per master (hits only, so reactive warming leaves them alone).
    let mut hot: HashMap<u16, String> = HashMap::new();
    for i in 0.. {
        let key = format!("synthetic:{i}");
        hot.entry(cluster.master_of(&key)).or_insert(key);
        if hot.len() == 3 {
            break;
        }
    }
    let mut conn = cluster.conn();
    for key in hot.values() {
        for _ in 0..4 {
            let _: String = redis::cmd("XADD")
                .arg("app:events")
                .arg("*")
                .arg("key")
                .arg(key)
                .arg("hit")
                .arg("1")
                .query(&mut conn)
                .unwrap();
        }
    }
    wait_for("stream events tracked", Duration::from_secs(30), || {
        let tracked = hot_keys(&serve);
        hot.values()
            .all(|key| tracked.iter().any(|k| k["key"] == key.as_str() && k["accesses"] == 4))
    });
    for key in hot.values() {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("old")
            .arg("PX")
            .arg(300)
            .query(&mut conn)
            .unwrap();
    }
    wait_for("every expired hot key refreshed", Duration::from_secs(30), || {
        hot.values().all(|key| {
            let value: Option<String> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
            value.is_some_and(|v| v != "old")
        })
    });
    for port in cluster.master_ports() {
        let (_, cfg): (String, String) = redis::cmd("CONFIG")
            .arg("GET")
            .arg("notify-keyspace-events")
            .query(&mut cluster.node(port).conn())
            .unwrap();
        assert!(cfg.contains('x') && cfg.contains('e'), "master {port}: {cfg}");
    }
}
