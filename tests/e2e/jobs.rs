//! The job history stays bounded: `[jobs] keep` prunes old runs with their
//! plugin rows after every run and when serve starts, on SQLite and PostgreSQL,
//! never a run still running; `preheat history` keeps working.

use crate::support::*;
use std::time::{Duration, SystemTime};

/// The critical-keys plugin (4 keys) into the memory backend, with `[jobs]` lines.
fn config(ws: &Workspace, jobs: &str, extra: &str) -> std::path::PathBuf {
    ws.config(&format!(
        "[jobs]\n{jobs}\n[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n{extra}\n",
        plugin("critical_keys").display().to_string()
    ))
}

/// `(run_id, job_type, status)` of every row, oldest first.
fn rows(url: &str) -> Vec<(String, String, String)> {
    sql(
        url,
        &["SELECT run_id, job_type, status FROM cache_warming_jobs ORDER BY id"],
    )
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap(), r[2].clone().unwrap()))
    .collect()
}

fn history_json(ws: &Workspace, config: &std::path::Path) -> serde_json::Value {
    let out = preheat_in(ws, &["history", "--json", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn repeated_runs_keep_the_newest_runs_and_a_running_one_on_sqlite() {
    let ws = Workspace::new();
    let config = config(&ws, "keep = 3", "");
    let url = format!("sqlite://{}", ws.dir.path().join("preheat/preheat.db").display());
    let run_ids: Vec<String> = (0..6)
        .map(|i| {
            let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
            assert_eq!(run.code(), 0, "{}", run.stderr());
            if i == 0 {
                // A run of another process, in progress (fresh heartbeat), older than every later one.
                let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
                sql(
                    &url,
                    &[&format!(
                        "INSERT INTO cache_warming_jobs (run_id, job_type, strategy, status, metadata, started_at, created_at, updated_at) VALUES ('elsewhere', 'run', 'proactive', 'running', '{{}}', '{now}', '{now}', '{now}')"
                    )],
                );
            }
            let rows = rows(&url);
            assert!(rows.len() <= 2 * 3 + 1, "after run {i}: {} rows: {rows:?}", rows.len());
            run.report["run_id"].as_str().unwrap().to_string()
        })
        .collect();
    let rows = rows(&url);
    let kept: Vec<&str> = rows.iter().filter(|r| r.1 == "run").map(|r| r.0.as_str()).collect();
    assert_eq!(kept, ["elsewhere", &run_ids[3], &run_ids[4], &run_ids[5]], "{rows:?}");
    assert_eq!(rows.len(), 1 + 3 * 2, "each kept run keeps its plugin row: {rows:?}");

    let history = history_json(&ws, &config);
    let listed: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&run_ids[5], &run_ids[4], &run_ids[3], "elsewhere"]);
}

#[test]
fn serve_on_a_one_second_schedule_keeps_postgres_history_bounded() {
    let pg = PgServer::start();
    let ws = Workspace::new();
    let jobs = format!("url = \"{}\"\nkeep = 3", pg.url());
    let config = config(&ws, &jobs, "schedule = \"* * * * * *\"");
    // Create the tables, then a backlog of 40 old runs (run row + plugin row each).
    history_json(&ws, &config);
    sql(
        &pg.url(),
        &["INSERT INTO cache_warming_jobs (run_id, job_type, strategy, status, metadata, started_at, completed_at, created_at, updated_at) \
           SELECT 'seed-' || g, t, 'proactive', 'completed', '{}', now(), now(), now(), now() \
           FROM generate_series(1, 40) g, (VALUES ('run'), ('critical-keys')) AS types(t) ORDER BY g, t DESC"],
    );
    let count = || {
        sql(&pg.url(), &["SELECT CAST(count(*) AS TEXT) FROM cache_warming_jobs"])[0][0]
            .clone()
            .unwrap()
    };
    assert_eq!(count(), "80");

    let mut serve = ServeProcess::start(&ws, &config, &[]);
    // Pruned at start, before any scheduled run could finish: 3 runs, or 4 with one starting.
    let at_start: usize = count().parse().unwrap();
    assert!(at_start <= 4 * 2, "{at_start} rows after serve started");
    let last_id = || {
        sql(
            &pg.url(),
            &["SELECT CAST(last_value AS TEXT) FROM cache_warming_jobs_id_seq"],
        )[0][0]
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let first_id = last_id();
    let mut most = 0;
    wait_for("8 scheduled runs", Duration::from_secs(60), || {
        let n: usize = count().parse().unwrap();
        most = most.max(n);
        last_id() >= first_id + 16
    });
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0), "{}", serve.log());

    assert!(
        most <= 4 * 2,
        "at most the 3 kept runs and one in progress: saw {most} rows"
    );
    let rows = rows(&pg.url());
    let runs: Vec<&(String, String, String)> = rows.iter().filter(|r| r.1 == "run").collect();
    assert_eq!(runs.len(), 3, "{rows:?}");
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        runs.iter().all(|r| !r.0.starts_with("seed-")),
        "the backlog is gone: {rows:?}"
    );
    let newest = sql(&pg.url(), &["SELECT CAST(max(id) AS TEXT) FROM cache_warming_jobs"])[0][0]
        .clone()
        .unwrap();
    assert_eq!(newest.parse::<u64>().unwrap(), last_id(), "the newest run survives");
    assert_eq!(history_json(&ws, &config).as_array().unwrap().len(), 3);
}
