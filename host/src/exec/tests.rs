//! The executor in process: a scripted [`Producer`] and the memory backend,
//! no binaries, components or servers. Each test checks that every key gets
//! exactly one outcome.

use super::{Producer, RunOptions, Warmer};
use crate::backend::{Backend, MemoryBackend};
use crate::config::Config;
use crate::report::{Report, RunStatus};
use crate::runtime::{CallError, CallStats, Entry, KeySpec, Page, Priority, RunContext, WarmError};
use crate::support::Cancel;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the scripted producer does for a key, chosen by the key's last segment.
///
/// `ok` writes `value:<key>`; `skip` / `fail` answer so; `retry<N>` asks for a
/// retry N times, then writes; `forever` always asks for a retry.
struct Scripted {
    name: String,
    /// The keys, listed `page` at a time.
    keys: Vec<String>,
    page: usize,
    /// Every produce call fails (a trap, as the runtime reports it).
    calls_fail: bool,
    /// Every produce call takes this long (unless the run's cancel interrupts it).
    produce_takes: Duration,
    /// Retries asked so far, per key.
    retries: Mutex<HashMap<String, u32>>,
    produce_calls: AtomicU32,
    /// Keys the host holds for a retry now (asked, not yet produced again), and the most at once.
    held_for_retry: AtomicI64,
    most_held_for_retry: AtomicI64,
    /// The shard of the run context `enumerate` was last given, as (index, count).
    seen_shard: Mutex<Option<(u32, u32)>>,
}

impl Scripted {
    fn new(keys: &[&str]) -> Scripted {
        Scripted {
            name: "scripted".into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            page: 3,
            calls_fail: false,
            produce_takes: Duration::ZERO,
            retries: Mutex::default(),
            produce_calls: AtomicU32::new(0),
            held_for_retry: AtomicI64::new(0),
            most_held_for_retry: AtomicI64::new(0),
            seen_shard: Mutex::default(),
        }
    }

    fn answer(&self, key: &str) -> Result<Entry, WarmError> {
        let last = key.rsplit('.').next().unwrap_or(key);
        let written = Ok(Entry {
            value: format!("value:{key}").into_bytes().into(),
            ttl_seconds: None,
        });
        let mut retries = self.retries.lock().unwrap();
        let asked = retries.entry(key.to_string()).or_default();
        match last {
            "skip" => Err(WarmError::Skip("nothing to cache".into())),
            "fail" => Err(WarmError::Fail("row is broken".into())),
            "hostile" => Err(WarmError::Fail(HOSTILE_REASON.into())),
            "forever" => {
                *asked += 1;
                Err(WarmError::Retry("database busy".into()))
            }
            retry if retry.starts_with("retry") => {
                let wanted: u32 = retry["retry".len()..].parse().unwrap();
                if *asked > 0 {
                    self.held_for_retry.fetch_sub(1, Ordering::SeqCst);
                }
                if *asked < wanted {
                    *asked += 1;
                    let held = self.held_for_retry.fetch_add(1, Ordering::SeqCst) + 1;
                    self.most_held_for_retry.fetch_max(held, Ordering::SeqCst);
                    return Err(WarmError::Retry("database busy".into()));
                }
                written
            }
            _ => written,
        }
    }
}

/// A fail reason that would rewrite a terminal or CI log printed as is.
const HOSTILE_REASON: &str = "\r\u{1b}[2K  ! all keys warmed\u{202e}desrever\u{e0041}";

fn stats() -> CallStats {
    CallStats {
        fuel: 1,
        elapsed: Duration::from_micros(1),
    }
}

fn spec(key: &str) -> KeySpec {
    KeySpec {
        key: key.to_string(),
        priority: Priority::Normal,
        ttl_seconds: None,
        tags: vec![],
        arg: None,
    }
}

impl Producer for Scripted {
    fn name(&self) -> &str {
        &self.name
    }

    fn enumerate<'a>(
        &'a self,
        ctx: &'a RunContext,
        cursor: Option<&'a str>,
        _cancel: &'a Cancel,
    ) -> BoxFuture<'a, super::CallResult<Result<Page, String>>> {
        Box::pin(async move {
            *self.seen_shard.lock().unwrap() = ctx.shard.map(|s| (s.index, s.count));
            let start: usize = cursor.map_or(0, |c| c.parse().unwrap());
            let end = (start + self.page).min(self.keys.len());
            let page = Page {
                keys: self.keys[start..end].iter().map(|k| spec(k)).collect(),
                cursor: (end < self.keys.len()).then(|| end.to_string()),
            };
            Ok((Ok(page), stats()))
        })
    }

    fn produce<'a>(
        &'a self,
        _ctx: &'a RunContext,
        keys: &'a [KeySpec],
        cancel: &'a Cancel,
    ) -> BoxFuture<'a, super::CallResult<Vec<Result<Entry, WarmError>>>> {
        Box::pin(async move {
            self.produce_calls.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep(self.produce_takes) => {}
                _ = cancel.cancelled() => return Err(CallError::Cancelled("interrupted".into())),
            }
            if self.calls_fail {
                return Err(CallError::Failed(
                    "plugin `scripted`: produce trapped: unreachable".into(),
                ));
            }
            Ok((keys.iter().map(|k| self.answer(&k.key)).collect(), stats()))
        })
    }
}

/// A warmer for `scripted` (keys under `s.`) with `extra` config lines, and its memory backend.
fn warmer(extra: &str, producer: Arc<Scripted>) -> (Warmer, Arc<MemoryBackend>, tempfile::TempDir) {
    warmer_with(extra, "", producer)
}

/// [`warmer`], with `plugin` lines in the plugin's table too.
fn warmer_with(extra: &str, plugin: &str, producer: Arc<Scripted>) -> (Warmer, Arc<MemoryBackend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let delay = if extra.contains("retry_base_delay") {
        ""
    } else {
        "retry_base_delay = \"1ms\""
    };
    let toml = format!(
        "[run]\n{delay}\n{extra}\n[backend]\nkind = \"memory\"\n[[plugins]]\nname = \"scripted\"\npath = \"scripted.wasm\"\nkey_prefixes = [\"s.\"]\n{plugin}\n"
    );
    let mut config = Config::parse(&toml, &dir.path().join("preheat.toml")).unwrap();
    config.run.cache_dir = Some(dir.path().join("cache"));
    let memory = Arc::new(MemoryBackend::new(1 << 20));
    let warmer = Warmer::with_backend(config, Backend::Memory(memory.clone())).unwrap();
    warmer.install_producer(producer);
    (warmer, memory, dir)
}

async fn run(warmer: &Warmer, options: RunOptions) -> Report {
    let report = warmer.execute(options).await;
    assert!(report.balanced(), "one outcome per key: {:?}", report.totals);
    report
}

fn error_of<'a>(report: &'a Report, key: &str) -> &'a str {
    let entry = report.errors.iter().find(|e| e.key == key);
    entry
        .map(|e| e.error.as_str())
        .unwrap_or_else(|| panic!("no error for {key}: {:?}", report.errors))
}

#[tokio::test]
async fn every_key_gets_exactly_one_outcome() {
    let keys = ["s.1", "s.2.skip", "s.3.fail", "elsewhere.4", "s.1", "s.5", "s.6"];
    let (warmer, memory, _dir) = warmer("", Arc::new(Scripted::new(&keys)));
    let report = run(&warmer, RunOptions::default()).await;
    let t = &report.totals;
    assert_eq!(
        (
            t.enumerated,
            t.written,
            t.skipped_by_plugin,
            t.failed,
            t.invalid,
            t.duplicates
        ),
        (6, 3, 1, 1, 1, 1)
    );
    assert_eq!(report.status, RunStatus::Partial);
    let mut stored = memory.keys();
    stored.sort();
    assert_eq!(stored, ["s.1", "s.5", "s.6"]);
    assert_eq!(memory.get("s.5").unwrap(), b"value:s.5");
    assert!(error_of(&report, "s.3.fail").contains("plugin failed the key: row is broken"));
    assert!(error_of(&report, "elsewhere.4").contains("invalid key"));
}

#[tokio::test]
async fn text_from_a_plugin_reaches_the_report_and_summary_escaped() {
    let keys = ["s.1.hostile", "s.\u{1b}[31m.x"];
    let (warmer, _memory, _dir) = warmer("", Arc::new(Scripted::new(&keys)));
    let report = run(&warmer, RunOptions::default()).await;
    assert_eq!(
        error_of(&report, "s.1.hostile"),
        "plugin failed the key: \\r\\u{1b}[2K  ! all keys warmed\\u{202e}desrever\\u{e0041}"
    );
    let invalid = report.errors.iter().find(|e| e.key.contains("[31m")).unwrap();
    assert_eq!(invalid.key, "s.\\u{1b}[31m.x");
    let summary = crate::report::render_summary(&report);
    assert!(summary.contains("all keys warmed"), "{summary}");
    assert!(
        !summary.contains(['\r', '\u{1b}', '\u{202e}', '\u{e0041}']),
        "{summary:?}"
    );
}

#[tokio::test]
async fn retries_are_bounded_by_max_attempts() {
    let keys = ["s.a.retry2", "s.b.forever", "s.c"];
    let (warmer, memory, _dir) = warmer("max_attempts = 3", Arc::new(Scripted::new(&keys)));
    let report = run(&warmer, RunOptions::default()).await;
    let t = &report.totals;
    assert_eq!((t.written, t.failed), (2, 1));
    assert_eq!(
        t.retried,
        2 + 2,
        "two for each key that asked: the third attempt is the last"
    );
    assert!(memory.get("s.a.retry2").is_some());
    assert!(memory.get("s.b.forever").is_none());
    assert!(error_of(&report, "s.b.forever").contains("gave up after 3 attempts; last: database busy"));
}

#[tokio::test(start_paused = true)]
async fn keys_waiting_for_a_retry_are_bounded_by_the_queue_capacity() {
    // Every key asks for one retry, and the backoff (10 s) outlasts listing
    // and producing all of them: without a bound the host would hold every key.
    let keys: Vec<String> = (0..6000).map(|i| format!("s.{i}.retry1")).collect();
    let producer = Arc::new(Scripted::new(&keys.iter().map(String::as_str).collect::<Vec<_>>()));
    let (warmer, _memory, _dir) = warmer(
        "batch_size = 8\nconcurrency = 1\nretry_base_delay = \"10s\"\ndeadline = \"1h\"",
        producer.clone(),
    );
    let report = run(&warmer, RunOptions::default()).await;
    assert_eq!((report.totals.written, report.totals.retried), (6000, 6000));
    let most = producer.most_held_for_retry.load(Ordering::SeqCst);
    // The queue's capacity is max(4 × concurrency × batch_size, 1024): at
    // most that many keys wait out a backoff, and at most that many more sit
    // in the queue again; one batch's answers come before the host can wait.
    assert!(most <= 2 * 1024 + 8, "{most} keys held for a retry at once");
}

#[tokio::test]
async fn three_failed_calls_in_a_row_disable_the_plugin() {
    let keys: Vec<String> = (0..20).map(|i| format!("s.{i}")).collect();
    let mut producer = Scripted::new(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    producer.calls_fail = true;
    let calls = Arc::new(producer);
    let (warmer, _memory, _dir) = warmer("batch_size = 2\nconcurrency = 1", calls.clone());
    let report = run(&warmer, RunOptions::default()).await;
    assert_eq!(
        calls.produce_calls.load(Ordering::SeqCst),
        3,
        "no call after the third failure"
    );
    let t = &report.totals;
    assert_eq!((t.enumerated, t.failed, t.written), (20, 20, 0));
    let plugin_error = report.plugins[0].error.as_deref().unwrap();
    assert!(
        plugin_error.contains("disabled after 3 failed calls in a row"),
        "{plugin_error}"
    );
    assert!(plugin_error.contains("produce trapped"), "{plugin_error}");
    assert!(report.errors.iter().any(|e| e.error.contains("not attempted")));
    assert_eq!(report.status, RunStatus::Failed);
}

/// A run of 30 keys whose produce calls take 300 ms each, one batch of 5 at
/// a time. The tests using it run on tokio's paused clock, so every sleep
/// ends in a fixed order whatever the machine's load.
fn slow() -> Arc<Scripted> {
    let keys: Vec<String> = (0..30).map(|i| format!("s.{i}")).collect();
    let mut producer = Scripted::new(&keys.iter().map(String::as_str).collect::<Vec<_>>());
    producer.produce_takes = Duration::from_millis(300);
    Arc::new(producer)
}

#[tokio::test(start_paused = true)]
async fn a_stop_lets_the_batch_in_flight_finish() {
    let (warmer, memory, _dir) = warmer("batch_size = 5\nconcurrency = 1", slow());
    let options = RunOptions::default();
    let stop = options.stop.clone();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(450)).await;
        stop.cancel();
    });
    let report = run(&warmer, options).await;
    stopper.await.unwrap();
    assert!(report.stopped && !report.deadline_hit);
    assert_eq!(report.status, RunStatus::Stopped);
    let t = &report.totals;
    assert_eq!(t.written, 10, "the first batch, and the one in flight at the stop");
    assert_eq!(t.abandoned, 20);
    assert_eq!(memory.keys().len(), 10);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_interrupts_the_batch_in_flight() {
    let (warmer, memory, _dir) = warmer("batch_size = 5\nconcurrency = 1\ndeadline = \"450ms\"", slow());
    let report = run(&warmer, RunOptions::default()).await;
    assert!(report.deadline_hit && !report.stopped);
    let t = &report.totals;
    assert_eq!(t.written, 5, "only the batch that finished before the deadline");
    assert_eq!(
        t.abandoned, 25,
        "the batch in flight is interrupted, the rest never starts"
    );
    assert_eq!(memory.keys().len(), 5);
    assert_eq!(report.status, RunStatus::Partial);
}

/// Keys waiting out an hour-long retry backoff when the run halts: each is
/// neither queued nor in flight, and must still be reported abandoned. On
/// several threads and the real clock (the race it guards against, a report
/// built before the waiting keys are counted, needs both), a few times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_waiting_out_a_retry_are_abandoned_when_the_run_halts() {
    let keys: Vec<String> = (0..12).map(|i| format!("s.w{i}.retry1")).collect();
    for round in 0..40 {
        let halt = if round % 2 == 0 { "stop" } else { "deadline" };
        let producer = Arc::new(Scripted::new(&keys.iter().map(String::as_str).collect::<Vec<_>>()));
        let extra = match halt {
            "stop" => "batch_size = 4\nretry_base_delay = \"1h\"",
            _ => "batch_size = 4\nretry_base_delay = \"1h\"\ndeadline = \"20ms\"",
        };
        let (warmer, memory, _dir) = warmer(extra, producer);
        let options = RunOptions::default();
        let stop = options.stop.clone();
        if halt == "stop" {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                stop.cancel();
            });
        }
        // `run` checks that every key got exactly one outcome.
        let report = run(&warmer, options).await;
        let t = &report.totals;
        // Normally all 12 wait for their retry at the halt; on a loaded machine
        // some may not have been produced yet, and are abandoned all the same.
        assert_eq!((t.abandoned, t.written), (12, 0), "{halt}: {t:?}");
        assert!(t.retried <= 12, "{halt}: {t:?}");
        assert!(memory.keys().is_empty());
    }
}

fn shard_of_run(index: u32, count: u32) -> RunOptions {
    RunOptions {
        shard: Some(crate::report::RunShard {
            group: "release-1".into(),
            index,
            count,
        }),
        ..RunOptions::default()
    }
}

#[tokio::test]
async fn the_shards_of_a_run_warm_every_key_once_between_them() {
    let keys: Vec<String> = (0..300).map(|i| format!("s.{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut warmed = Vec::new();
    for index in 0..3 {
        let producer = Arc::new(Scripted::new(&refs));
        let (warmer, memory, _dir) = warmer("", producer.clone());
        let report = run(&warmer, shard_of_run(index, 3)).await;
        let t = &report.totals;
        assert_eq!(t.enumerated + t.other_shards, 300, "every listed key is kept or left");
        assert!((70..=130).contains(&t.written), "shard {index} wrote {}", t.written);
        assert_eq!(report.shard.as_ref().map(|s| (s.index, s.count)), Some((index, 3)));
        // `sharding = "host"`: the plugin is not told, it lists every key.
        assert_eq!(*producer.seen_shard.lock().unwrap(), None);
        let shard = crate::plan::shard(index, 3).unwrap();
        for key in memory.keys() {
            assert!(crate::plan::owns(shard, &key), "{key} is not shard {index}'s");
            warmed.push(key);
        }
    }
    warmed.sort();
    let mut all = keys.clone();
    all.sort();
    assert_eq!(warmed, all, "the shards cover every key, each once");
}

#[tokio::test]
async fn a_plugin_that_keeps_to_its_share_sees_the_shard_and_keeps_what_it_lists() {
    let producer = Arc::new(Scripted::new(&["s.1", "s.2", "s.3", "s.4"]));
    let (warmer, memory, _dir) = warmer_with("", "sharding = \"plugin\"", producer.clone());
    let report = run(&warmer, shard_of_run(1, 3)).await;
    assert_eq!(*producer.seen_shard.lock().unwrap(), Some((1, 3)));
    assert_eq!((report.totals.written, report.totals.other_shards), (4, 0));
    assert_eq!(memory.keys().len(), 4);
    // Not sharded: no shard in the context either way.
    let report = run(&warmer, RunOptions::default()).await;
    assert_eq!(*producer.seen_shard.lock().unwrap(), None);
    assert!(report.shard.is_none());
}
