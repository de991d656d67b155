//! Sharded runs: one run split across three `preheat run --shard I/3`
//! processes, against a real Redis Cluster with a PostgreSQL job store, both
//! started here. Every key is written exactly once across the shards, each
//! shard does a share, one plugin keeps to its share itself (`sharding =
//! "plugin"`) and one is kept to it by the host; a shard killed mid-run is
//! found interrupted and rerun alone, which completes the set; `status
//! --group` and `history` show the shards as one run.

use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Keys per plugin.
const KEYS: u64 = 3000;

/// Two synthetic plugins into `cluster`, history in `jobs_url`: `own` lists
/// only its shard's share, `kept` lists every key and the host keeps the
/// share. `if-missing`: a key written by two shards would show as fresh.
fn shard_config(ws: &Workspace, name: &str, cluster: &RedisCluster, jobs_url: &str, rate_limit: u32) -> PathBuf {
    let path = plugin("synthetic").display().to_string();
    let plugin = |name: &str, sharding: &str| {
        format!(
            "[[plugins]]\nname = \"{name}\"\npath = {path:?}\nkey_prefixes = [\"{name}:\"]\nsharding = \"{sharding}\"\nrate_limit = {rate_limit}\n[plugins.settings]\nkeys = \"{KEYS}\"\nprefix = \"{name}:\"\nvalue_size = \"16\"\npage_size = \"500\"\n"
        )
    };
    ws.config_named(
        name,
        &format!(
            "concurrency = 4\nbatch_size = 50\n[backend]\n{}\n[jobs]\nurl = {jobs_url:?}\n{}{}",
            cluster.backend_toml(),
            plugin("own", "plugin"),
            plugin("kept", "host")
        ),
    )
}

/// Starts shard `index` of 3 of `group`, its report in `reports/`, the shard
/// given each of the three ways a worker can be told it.
fn start_shard(ws: &Workspace, config: &Path, group: &str, index: u32) -> (std::process::Child, PathBuf) {
    let report = ws.dir.path().join(format!("report-{group}-{index}.json"));
    let config = config.to_str().unwrap();
    let index_text = index.to_string();
    let shard = format!("{index}/3");
    let child = match index {
        // Flags.
        0 => spawn_preheat(
            ws,
            &["run", "--config", config, "--shard", &shard, "--group", group],
            &[],
            &report,
        ),
        // The environment.
        1 => spawn_preheat(
            ws,
            &["run", "--config", config],
            &[("PREHEAT_SHARD", &shard), ("PREHEAT_RUN_GROUP", group)],
            &report,
        ),
        // A Kubernetes Indexed Job: the index in JOB_COMPLETION_INDEX.
        _ => spawn_preheat(
            ws,
            &["run", "--config", config, "--shards", "3", "--group", group],
            &[("JOB_COMPLETION_INDEX", &index_text)],
            &report,
        ),
    };
    (child, report)
}

fn finish(child: std::process::Child, report: &Path) -> Run {
    let output = child.wait_with_output().unwrap();
    read_report(output, report)
}

fn group_status(ws: &Workspace, config: &Path, group: &str) -> (bool, Value, String) {
    let config = config.to_str().unwrap();
    let json = preheat_in(ws, &["status", "--config", config, "--group", group, "--json"]);
    let text = preheat_in(ws, &["status", "--config", config, "--group", group]);
    let value = serde_json::from_slice(&json.stdout)
        .unwrap_or_else(|e| panic!("status --json: {e}: {}", String::from_utf8_lossy(&json.stderr)));
    assert_eq!(json.status.success(), text.status.success());
    (
        json.status.success(),
        value,
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

/// Keys held by the cluster's masters.
fn keys_in(cluster: &RedisCluster) -> u64 {
    cluster.master_ports().iter().map(|p| cluster.node(*p).dbsize()).sum()
}

#[test]
fn three_shards_write_every_key_once_and_a_killed_shard_is_rerun_alone() {
    let cluster = RedisCluster::start(3, 0);
    let pg = PgServer::start();
    let ws = Workspace::new();
    let config = shard_config(&ws, "preheat.toml", &cluster, &pg.url(), 0);
    precompile(&config);

    // Three shards at once.
    let started: Vec<_> = (0..3).map(|i| start_shard(&ws, &config, "release-1", i)).collect();
    let runs: Vec<Run> = started.into_iter().map(|(c, r)| finish(c, &r)).collect();
    let (mut written, mut fresh) = (0, 0);
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.code(), 0, "shard {i}: {}", run.stderr());
        run.assert_balanced();
        assert_eq!(run.report["shard"]["index"], i as u64);
        assert_eq!(run.report["shard"]["count"], 3);
        assert_eq!(run.report["shard"]["group"], "release-1");
        for plugin in ["own", "kept"] {
            let share = run.count(plugin, "written");
            // Each shard does about a third of each plugin's keys.
            assert!(
                (700..=1300).contains(&share),
                "shard {i} wrote {share} {plugin} keys, not about {}",
                KEYS / 3
            );
            written += share;
            fresh += run.count(plugin, "skipped_fresh");
        }
        // Only the host-kept plugin lists the other shards' keys (and leaves them).
        assert_eq!(run.count("own", "other_shards"), 0);
        assert_eq!(
            run.count("kept", "other_shards"),
            KEYS - run.count("kept", "enumerated")
        );
        // The summary says which shard this was.
        let summary = format!(
            "shard {i}/3 of run group release-1: {} listed keys left to the other shards",
            run.report["totals"]["other_shards"]
        );
        assert!(run.stderr().contains(&summary), "{}", run.stderr());
    }
    // Exactly once: written keys add up to every key, none was found fresh,
    // and every key is in the cluster.
    assert_eq!((written, fresh), (2 * KEYS, 0));
    assert_eq!(keys_in(&cluster), 2 * KEYS);
    let mut conn = cluster.conn();
    for key in ["own:0", "own:2999", "kept:1", "kept:2998"] {
        let value: Option<String> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
        assert!(value.is_some(), "{key} is missing");
    }
    let (done, summary, text) = group_status(&ws, &config, "release-1");
    assert!(done, "{text}");
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["count"], 3);
    assert!(
        text.contains("group release-1: completed (3 of 3 shards completed)"),
        "{text}"
    );

    // A second run, slowed down, whose shard 1 is killed mid-run.
    for port in cluster.master_ports() {
        let _: () = redis::cmd("FLUSHALL").query(&mut cluster.node(port).conn()).unwrap();
    }
    // 100 keys per second per plugin: a shard takes about 10 s, and its
    // progress reaches the job store with the first heartbeat, at 5 s.
    let slow = shard_config(&ws, "slow.toml", &cluster, &pg.url(), 100);
    let mut started: Vec<_> = (0..3).map(|i| start_shard(&ws, &slow, "release-2", i)).collect();
    let (mut victim, victim_report) = started.remove(1);
    wait_for("shard 1 to write some keys", Duration::from_secs(60), || {
        let rows = sql(
            &pg.url(),
            &["SELECT CAST(metadata AS TEXT) FROM cache_warming_jobs WHERE run_group = 'release-2' AND shard_index = 1 AND job_type = 'run' AND status = 'running'"],
        );
        rows.iter().any(|r| {
            r[0].as_deref()
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
                .and_then(|m| m["progress"]["written"].as_u64())
                .is_some_and(|w| w > 0)
        })
    });
    victim.kill().unwrap();
    let _ = victim.wait();
    assert!(!victim_report.exists(), "a killed shard writes no report");
    for (i, (child, report)) in started.into_iter().enumerate() {
        let run = finish(child, &report);
        assert_eq!(run.code(), 0, "shard {}: {}", [0, 2][i], run.stderr());
    }
    assert!(keys_in(&cluster) < 2 * KEYS, "shard 1's keys are missing");
    let (done, summary, text) = group_status(&ws, &config, "release-2");
    assert!(!done, "{text}");
    assert_eq!(summary["status"], "partial", "{summary}");
    let shard1 = &summary["shards"][1];
    assert_eq!(shard1["attempts"][0]["status"], "interrupted", "{summary}");
    assert_mentions(
        &text,
        &[
            "shard 1/3  interrupted",
            "rerun shard 1: preheat run --config",
            "--shard 1/3 --group release-2",
        ],
    );
    assert!(
        !text.contains("rerun shard 0") && !text.contains("rerun shard 2"),
        "{text}"
    );

    // Shard 1 alone, again: the set is complete.
    let (child, report) = start_shard(&ws, &config, "release-2", 1);
    let rerun = finish(child, &report);
    assert_eq!(rerun.code(), 0, "{}", rerun.stderr());
    assert!(rerun.count("own", "skipped_fresh") + rerun.count("kept", "skipped_fresh") > 0);
    assert_eq!(keys_in(&cluster), 2 * KEYS);
    let (done, summary, text) = group_status(&ws, &config, "release-2");
    assert!(done, "{text}");
    assert_eq!(summary["shards"][1]["attempts"].as_array().unwrap().len(), 2);
    assert!(text.contains("(earlier: "), "{text}");
    let history = preheat_in(&ws, &["history", "--config", config.to_str().unwrap()]);
    let history = String::from_utf8_lossy(&history.stdout);
    assert_mentions(
        &history,
        &[
            "group release-2: completed (3 of 3 shards completed)",
            "group release-1: completed",
            "  shard 1/3 ",
            "interrupted",
        ],
    );
}

#[test]
fn a_shard_is_refused_with_what_to_do_when_it_is_given_wrong() {
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[backend]\nkind = \"memory\"\n[[plugins]]\nname = \"legacy\"\npath = {:?}\nkey_prefixes = [\"fx.legacy-v01.\"]\nsharding = \"plugin\"\n",
        fixture("legacy_v01").display().to_string()
    ));
    let config = config.to_str().unwrap();
    let refused = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["run", "--config", config];
        all.extend(args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_preheat"))
            .args(&all)
            .env_remove("PREHEAT_SHARD")
            .env_remove("PREHEAT_RUN_GROUP")
            .env_remove("JOB_COMPLETION_INDEX")
            .envs(env.iter().copied())
            .env("XDG_STATE_HOME", ws.dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_mentions(
        &refused(&["--shard", "3/3", "--group", "g"], &[]),
        &["the last of 3 is 2/3"],
    );
    assert_mentions(
        &refused(&["--shard", "1/3"], &[]),
        &["needs a run group", "--group NAME", "PREHEAT_RUN_GROUP"],
    );
    assert_mentions(
        &refused(&["--shards", "3", "--group", "g"], &[]),
        &["JOB_COMPLETION_INDEX", "not set", "--shard I/3"],
    );
    assert_mentions(
        &refused(&["--shards", "3", "--group", "g"], &[("JOB_COMPLETION_INDEX", "x")]),
        &["JOB_COMPLETION_INDEX is \"x\""],
    );
    assert_mentions(
        &refused(&["--shard", "0/2", "--shards", "2", "--group", "g"], &[]),
        &["give the shard once"],
    );
    assert_mentions(&refused(&["--group", "g"], &[]), &["give the shard too"]);
    assert_mentions(
        &refused(&["--shard", "0/2", "--group", "a b"], &[]),
        &["run group \"a b\" holds ' '"],
    );
    // A 0.1 plugin cannot see the shard: keeping to its share itself is refused by name.
    let run = preheat(&ws, &["run", "--config", config, "--shard", "0/2", "--group", "g"], &[]);
    assert_ne!(run.code(), 0);
    assert_mentions(
        &run.errors_of("legacy"),
        &["sharding = \"plugin\"", "interface 0.1", "sharding = \"host\""],
    );
}
