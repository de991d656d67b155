use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

const PLUGINS: &str = r#"
[[plugins]]
name = "catalog"
path = "catalog.wasm"
key_prefixes = ["catalog."]
schedule = "*/15 * * * *"
schedule_jitter = "30s"

[[plugins]]
name = "critical-keys"
path = "critical.wasm"
key_prefixes = ["system."]

[[plugins]]
name = "old"
path = "old.wasm"
key_prefixes = ["old."]
enabled = false
schedule = "@hourly"
"#;

fn config(text: &str) -> Config {
    Config::parse(text, Path::new("/etc/preheat/preheat.toml")).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(42)
}

fn in_memory(config: &Config, rows: Vec<StoredSchedule>, now: DateTime<Utc>) -> Schedules {
    Schedules::from_rows(config, None, rows, now, &mut rng())
}

fn row(plugin: &str, cron: Option<&str>, overridden: bool, last_fired: Option<&str>) -> StoredSchedule {
    StoredSchedule {
        plugin: plugin.into(),
        cron: cron.map(Into::into),
        jitter: None,
        enabled: true,
        overridden,
        last_fired: last_fired.map(at),
    }
}

fn view<'a>(views: &'a [ScheduleView], plugin: &str) -> &'a ScheduleView {
    views.iter().find(|v| v.plugin == plugin).unwrap()
}

fn update(plugin: &str) -> ScheduleUpdate {
    ScheduleUpdate {
        plugin: plugin.into(),
        ..ScheduleUpdate::default()
    }
}

async fn refused(schedules: &Schedules, update: ScheduleUpdate) -> String {
    schedules.update(update).await.unwrap_err().to_string()
}

#[test]
fn config_schedules_are_listed_in_config_order_without_disabled_plugins() {
    let now = at("2024-01-01T10:05:00Z");
    let views = in_memory(&config(PLUGINS), Vec::new(), now).list();
    let names: Vec<_> = views.iter().map(|v| v.plugin.as_str()).collect();
    assert_eq!(names, ["catalog", "critical-keys"]);

    let catalog = &views[0];
    assert_eq!(catalog.cron.as_deref(), Some("*/15 * * * *"));
    assert_eq!(catalog.jitter.as_deref(), Some("30s"));
    assert_eq!(
        (catalog.source, catalog.enabled, catalog.persisted),
        ("config", true, true)
    );
    assert_eq!(catalog.last_fired, None);
    assert!(catalog.description.as_deref().is_some_and(|d| !d.is_empty()));
    // Next fire: 10:15 UTC plus a jitter of at most 30 s, in RFC 3339 UTC.
    let next = at(catalog.next_fire.as_deref().unwrap());
    assert!(
        next >= at("2024-01-01T10:15:00Z") && next <= at("2024-01-01T10:15:30Z"),
        "{next}"
    );
    assert!(catalog.next_fire.as_deref().unwrap().ends_with('Z'));

    let on_demand = &views[1];
    assert_eq!((on_demand.cron.as_ref(), on_demand.next_fire.as_ref()), (None, None));
    assert_eq!(on_demand.source, "config");
}

#[test]
fn views_serialize_as_the_api_shows_them() {
    let now = at("2024-01-01T10:05:00Z");
    let views = in_memory(
        &config(&PLUGINS.replace("schedule_jitter = \"30s\"\n", "")),
        Vec::new(),
        now,
    )
    .list();
    let json = serde_json::to_value(&views[0]).unwrap();
    assert_eq!(json["plugin"], "catalog");
    assert_eq!(json["cron"], "*/15 * * * *");
    assert_eq!(json["jitter"], serde_json::Value::Null);
    assert_eq!(json["source"], "config");
    assert_eq!(json["next_fire"], "2024-01-01T10:15:00Z");
    assert_eq!(json["persisted"], true);
}

#[test]
fn stored_overrides_win_over_the_config() {
    let now = at("2024-01-01T10:30:00Z");
    let rows = vec![
        row("catalog", Some("0 * * * *"), true, None),
        row("critical-keys", Some("0 4 * * *"), false, Some("2024-01-01T04:00:00Z")),
        // Not a plugin of this config: kept aside, not listed.
        row("elsewhere", Some("* * * * *"), true, None),
    ];
    let views = in_memory(&config(PLUGINS), rows, now).list();
    assert_eq!(views.len(), 2);
    let catalog = view(&views, "catalog");
    assert_eq!((catalog.cron.as_deref(), catalog.source), (Some("0 * * * *"), "api"));
    assert_eq!(catalog.jitter, None, "the override replaces the config's jitter too");
    assert_eq!(catalog.next_fire.as_deref(), Some("2024-01-01T11:00:00Z"));
    // A row that only records a fire time is no override.
    let critical = view(&views, "critical-keys");
    assert_eq!((critical.cron.as_ref(), critical.source), (None, "config"));
    assert_eq!(critical.last_fired.as_deref(), Some("2024-01-01T04:00:00Z"));
    // Without a store, API overrides do not survive a restart.
    assert!(!catalog.persisted && critical.persisted);
}

#[test]
fn an_unreadable_stored_override_falls_back_to_the_config() {
    let now = at("2024-01-01T10:30:00Z");
    let views = in_memory(
        &config(PLUGINS),
        vec![row("catalog", Some("61 * * * *"), true, None)],
        now,
    )
    .list();
    assert_eq!(view(&views, "catalog").cron.as_deref(), Some("*/15 * * * *"));
    assert_eq!(view(&views, "catalog").source, "config");
}

#[test]
fn reload_takes_new_config_schedules_keeps_overrides_and_drops_removed_plugins() {
    let now = at("2024-01-01T10:30:00Z");
    let rows = vec![row("critical-keys", Some("0 4 * * *"), true, None)];
    let schedules = in_memory(&config(PLUGINS), rows, now);

    let reloaded = config(
        r#"
[[plugins]]
name = "critical-keys"
path = "critical.wasm"
key_prefixes = ["system."]
schedule = "*/5 * * * *"

[[plugins]]
name = "fresh"
path = "fresh.wasm"
key_prefixes = ["fresh."]
schedule = "@daily"
"#,
    );
    schedules.reload(&reloaded).unwrap();
    let views = schedules.list();
    let names: Vec<_> = views.iter().map(|v| v.plugin.as_str()).collect();
    assert_eq!(names, ["critical-keys", "fresh"], "catalog left the config");
    let critical = view(&views, "critical-keys");
    assert_eq!((critical.cron.as_deref(), critical.source), (Some("0 4 * * *"), "api"));
    let fresh = view(&views, "fresh");
    // croner spells nicknames out.
    assert_eq!((fresh.cron.as_deref(), fresh.source), (Some("0 0 * * *"), "config"));
    assert!(fresh.next_fire.is_some());

    // An invalid config changes nothing.
    let bad = config(&PLUGINS.replace("schedule_jitter = \"30s\"", "schedule_jitter = \"20m\""));
    let err = schedules.reload(&bad).unwrap_err().to_string();
    assert!(err.contains("catalog") && err.contains("schedule_jitter 20m"), "{err}");
    assert_eq!(schedules.list(), views);
}

#[test]
fn reload_keeps_the_due_time_of_unchanged_schedules() {
    let now = at("2024-01-01T10:30:00Z");
    let schedules = in_memory(&config(PLUGINS), Vec::new(), now);
    let before = schedules.list();
    schedules.reload(&config(PLUGINS)).unwrap();
    assert_eq!(schedules.list(), before);
}

#[test]
fn config_jitter_must_be_below_the_period_and_the_cron_must_fire() {
    let now = at("2024-01-01T10:30:00Z");
    let err = check_config_at(&config(&PLUGINS.replace("\"30s\"", "\"15m\"")), now)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/etc/preheat/preheat.toml: [[plugins]] \"catalog\""),
        "{err}"
    );
    assert!(
        err.contains("schedule_jitter 15m is not below") && err.contains("under 15m"),
        "{err}"
    );
    let err = check_config_at(&config(&PLUGINS.replace("*/15 * * * *", "0 0 30 2 *")), now)
        .unwrap_err()
        .to_string();
    assert!(err.contains("never fires"), "{err}");
    // Disabled plugins are not checked.
    check_config_at(&config(&PLUGINS.replace("@hourly", "0 0 30 2 *")), now).unwrap();
}

#[tokio::test]
async fn updates_are_validated_with_messages_that_say_how_to_fix_them() {
    let schedules = in_memory(&config(PLUGINS), Vec::new(), Utc::now());

    let mut bad_cron = update("catalog");
    bad_cron.cron = Some(Some("61 * * * *".into()));
    let err = refused(&schedules, bad_cron).await;
    assert!(
        err.starts_with("schedule for plugin \"catalog\": invalid cron expression \"61 * * * *\""),
        "{err}"
    );
    assert!(err.contains("use 5 fields"), "{err}");

    let mut unknown = update("catalgo");
    unknown.enabled = Some(false);
    let err = schedules.update(unknown).await.unwrap_err();
    assert!(matches!(err, ScheduleError::UnknownPlugin(_)));
    assert_eq!(
        err.to_string(),
        "unknown plugin \"catalgo\": the enabled plugins are \"catalog\", \"critical-keys\""
    );

    let mut disabled = update("old");
    disabled.enabled = Some(true);
    let err = refused(&schedules, disabled).await;
    assert!(
        err.contains("\"old\" is disabled in the config (enabled = false)"),
        "{err}"
    );

    let mut not_a_duration = update("catalog");
    not_a_duration.jitter = Some(Some("soonish".into()));
    let err = refused(&schedules, not_a_duration).await;
    assert!(
        err.contains("jitter \"soonish\" is not a duration") && err.contains("\"30s\""),
        "{err}"
    );

    let mut too_long = update("catalog");
    too_long.jitter = Some(Some("15m".into()));
    let err = refused(&schedules, too_long).await;
    assert!(err.contains("jitter 15m is not below the schedule's period"), "{err}");
    assert!(
        err.contains("\"*/15 * * * *\" fires every 15m at the shortest; use a jitter under 15m"),
        "{err}"
    );

    // The kept jitter (30 s) is checked against a new cron too.
    let mut faster = update("catalog");
    faster.cron = Some(Some("*/20 * * * * *".into()));
    let err = refused(&schedules, faster).await;
    assert!(
        err.contains("jitter 30s is not below") && err.contains("under 20s"),
        "{err}"
    );

    let err = refused(&schedules, update("catalog")).await;
    assert!(err.contains("nothing to change"), "{err}");

    let mut mixed = update("catalog");
    mixed.reset = true;
    mixed.enabled = Some(false);
    let err = refused(&schedules, mixed).await;
    assert!(err.contains("send it without"), "{err}");

    // Nothing was applied.
    assert_eq!(view(&schedules.list(), "catalog").source, "config");
}

#[tokio::test]
async fn updates_change_only_the_fields_given_and_reset_goes_back_to_the_config() {
    let schedules = in_memory(&config(PLUGINS), Vec::new(), Utc::now());

    let mut pause = update("catalog");
    pause.enabled = Some(false);
    let paused = schedules.update(pause).await.unwrap();
    assert_eq!(paused.cron.as_deref(), Some("*/15 * * * *"));
    assert_eq!(paused.jitter.as_deref(), Some("30s"));
    assert_eq!(
        (paused.enabled, paused.source, paused.next_fire.as_ref()),
        (false, "api", None)
    );
    assert!(!paused.persisted, "no job store: the change does not survive a restart");

    let mut resume = update("catalog");
    resume.enabled = Some(true);
    resume.jitter = Some(None);
    let resumed = schedules.update(resume).await.unwrap();
    assert_eq!((resumed.enabled, resumed.jitter.as_ref()), (true, None));
    assert!(resumed.next_fire.is_some());

    let mut remove = update("catalog");
    remove.cron = Some(None);
    let removed = schedules.update(remove).await.unwrap();
    assert_eq!((removed.cron.as_ref(), removed.next_fire.as_ref()), (None, None));
    assert_eq!(removed.source, "api");

    let mut add = update("critical-keys");
    add.cron = Some(Some("0 */6 * * *".into()));
    add.jitter = Some(Some("0s".into()));
    let added = schedules.update(add).await.unwrap();
    assert_eq!(
        (added.cron.as_deref(), added.jitter.as_ref()),
        (Some("0 */6 * * *"), None)
    );
    assert!(added.description.is_some());

    let mut reset = update("catalog");
    reset.reset = true;
    let back = schedules.update(reset).await.unwrap();
    assert_eq!((back.cron.as_deref(), back.source), (Some("*/15 * * * *"), "config"));
    assert_eq!(schedules.list()[0], back);
}

#[test]
fn update_bodies_tell_null_from_absent_and_reject_unknown_fields() {
    let body: ScheduleUpdate = serde_json::from_str(r#"{"plugin":"catalog","enabled":false}"#).unwrap();
    assert_eq!(
        (body.cron, body.jitter, body.enabled, body.reset),
        (None, None, Some(false), false)
    );
    let body: ScheduleUpdate = serde_json::from_str(r#"{"plugin":"catalog","cron":null,"jitter":"1m"}"#).unwrap();
    assert_eq!((body.cron, body.jitter), (Some(None), Some(Some("1m".into()))));
    let err = serde_json::from_str::<ScheduleUpdate>(r#"{"plugin":"catalog","crom":"* * * * *"}"#).unwrap_err();
    assert!(err.to_string().contains("crom"), "{err}");
}

/// The due plugins at `now`, as the loop would fire them.
fn fire_due(schedules: &Schedules, now: DateTime<Utc>) -> Vec<String> {
    schedules.state().take_due(now, &mut rng())
}

#[test]
fn run_once_fires_once_at_start_for_all_missed_fire_times() {
    // Down from 07:00 to 10:30: thirteen 15-minute fire times missed.
    let now = at("2024-01-01T10:30:10Z");
    let rows = vec![row("catalog", None, false, Some("2024-01-01T07:00:05Z"))];
    let schedules = in_memory(&config(PLUGINS), rows, now);
    schedules.state().start(now, &mut rng());
    let due = at(schedules.list()[0].next_fire.as_deref().unwrap());
    assert!(due >= now && due <= now + chrono::Duration::seconds(30), "{due}");

    let after_jitter = now + chrono::Duration::seconds(31);
    assert_eq!(fire_due(&schedules, after_jitter), ["catalog"]);
    assert_eq!(
        fire_due(&schedules, after_jitter),
        Vec::<String>::new(),
        "one run, not one per missed time"
    );
    let catalog = &schedules.list()[0];
    assert_eq!(catalog.last_fired.as_deref(), Some("2024-01-01T10:30:41Z"));
    assert!(at(catalog.next_fire.as_deref().unwrap()) >= at("2024-01-01T10:45:00Z"));
}

#[test]
fn skip_waits_for_the_next_fire_time() {
    let now = at("2024-01-01T10:30:10Z");
    let rows = vec![row("catalog", None, false, Some("2024-01-01T07:00:05Z"))];
    let text = format!("[serve]\nmissed_runs = \"skip\"\n{PLUGINS}");
    let schedules = in_memory(&config(&text), rows, now);
    schedules.state().start(now, &mut rng());
    assert!(at(schedules.list()[0].next_fire.as_deref().unwrap()) >= at("2024-01-01T10:45:00Z"));
    assert!(fire_due(&schedules, now + chrono::Duration::minutes(5)).is_empty());
}

#[test]
fn nothing_is_missed_when_the_last_fire_was_recent_never_happened_or_is_paused() {
    let now = at("2024-01-01T10:30:10Z");
    let check = |rows: Vec<StoredSchedule>| {
        let schedules = in_memory(&config(PLUGINS), rows, now);
        schedules.state().start(now, &mut rng());
        fire_due(&schedules, now + chrono::Duration::minutes(5))
    };
    assert!(check(vec![row("catalog", None, false, Some("2024-01-01T10:30:02Z"))]).is_empty());
    assert!(check(Vec::new()).is_empty());
    let mut paused = row("catalog", Some("*/15 * * * *"), true, Some("2024-01-01T07:00:05Z"));
    paused.enabled = false;
    assert!(check(vec![paused]).is_empty());
}

#[test]
fn due_plugins_fire_in_turn_and_get_their_next_fire_time() {
    let now = at("2024-01-01T10:05:00Z");
    let text = PLUGINS.replace("schedule_jitter = \"30s\"\n", "");
    let schedules = in_memory(
        &config(&text),
        vec![row("critical-keys", Some("*/10 * * * *"), true, None)],
        now,
    );
    assert_eq!(schedules.state().next_due(), Some(at("2024-01-01T10:10:00Z")));
    assert!(fire_due(&schedules, at("2024-01-01T10:09:59Z")).is_empty());
    assert_eq!(fire_due(&schedules, at("2024-01-01T10:10:00Z")), ["critical-keys"]);
    assert_eq!(schedules.state().next_due(), Some(at("2024-01-01T10:15:00Z")));
    // Late (the host was suspended): both fire once, then move past now.
    assert_eq!(
        fire_due(&schedules, at("2024-01-01T11:02:00Z")),
        ["catalog", "critical-keys"]
    );
    assert_eq!(schedules.state().next_due(), Some(at("2024-01-01T11:10:00Z")));
}

#[tokio::test]
async fn overrides_and_fire_times_persist_in_a_sqlite_job_store() {
    let dir = tempfile::tempdir().unwrap();
    assert_persists(&format!("sqlite://{}", dir.path().join("jobs.db").display())).await;
}

/// Changes survive a restart over the job store at `url` (an empty one).
async fn assert_persists(url: &str) {
    let config = config(&format!("[jobs]\nurl = \"{url}\"\n{PLUGINS}"));
    let store = JobStore::open(&config).await.unwrap();

    let schedules = Schedules::load(&config, Some(store.clone())).await.unwrap();
    let mut hourly = update("catalog");
    hourly.cron = Some(Some("0 * * * *".into()));
    hourly.jitter = Some(Some("1m".into()));
    assert!(schedules.update(hourly).await.unwrap().persisted);
    let mut every_five = update("critical-keys");
    every_five.cron = Some(Some("*/5 * * * *".into()));
    schedules.update(every_five).await.unwrap();
    let mut pause = update("critical-keys");
    pause.enabled = Some(false);
    schedules.update(pause).await.unwrap();
    store
        .record_schedule_fired("catalog", at("2024-01-01T10:00:00.250Z"))
        .await
        .unwrap();

    // A restart: a new Schedules over the same store.
    let restarted = Schedules::load(&config, Some(store.clone())).await.unwrap().list();
    let catalog = view(&restarted, "catalog");
    assert_eq!(
        (catalog.cron.as_deref(), catalog.jitter.as_deref(), catalog.source),
        (Some("0 * * * *"), Some("1m"), "api")
    );
    assert_eq!(catalog.last_fired.as_deref(), Some("2024-01-01T10:00:00.250Z"));
    assert!(catalog.persisted);
    let critical = view(&restarted, "critical-keys");
    assert_eq!(
        (critical.cron.as_deref(), critical.enabled),
        (Some("*/5 * * * *"), false)
    );
    assert_eq!(critical.next_fire, None);

    // Reset: the config applies again after a restart; the fire time stays.
    let mut reset = update("catalog");
    reset.reset = true;
    schedules.update(reset).await.unwrap();
    let restarted = Schedules::load(&config, Some(store.clone())).await.unwrap().list();
    let catalog = view(&restarted, "catalog");
    assert_eq!(
        (catalog.cron.as_deref(), catalog.source),
        (Some("*/15 * * * *"), "config")
    );
    assert_eq!(catalog.last_fired.as_deref(), Some("2024-01-01T10:00:00.250Z"));

    let rows = store.schedules().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        StoredSchedule {
            plugin: "catalog".into(),
            cron: None,
            jitter: None,
            enabled: true,
            overridden: false,
            last_fired: Some(at("2024-01-01T10:00:00.250Z")),
        }
    );
    assert_eq!(rows[1].jitter, None);
    assert!(rows[1].overridden && !rows[1].enabled);
}

const EVERY_SECOND_LATER: &str = r#"
[[plugins]]
name = "catalog"
path = "catalog.wasm"
key_prefixes = ["catalog."]
schedule = "0 0 1 1 *"
"#;

#[tokio::test]
async fn the_loop_fires_after_an_update_and_stops_on_shutdown() {
    let schedules = Arc::new(Schedules::load(&config(EVERY_SECOND_LATER), None).await.unwrap());
    let (fired, mut fires) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = Cancel::default();
    let looping = tokio::spawn(Arc::clone(&schedules).run(
        move |plugin| {
            let fired = fired.clone();
            async move {
                fired.send(plugin).unwrap();
                Fire::Started
            }
        },
        shutdown.clone(),
    ));
    // Yearly at first: the loop sleeps; the update must wake it.
    let mut every_second = update("catalog");
    every_second.cron = Some(Some("* * * * * *".into()));
    schedules.update(every_second).await.unwrap();

    let plugin = tokio::time::timeout(Duration::from_secs(30), fires.recv())
        .await
        .unwrap();
    assert_eq!(plugin.as_deref(), Some("catalog"));
    assert!(schedules.list()[0].last_fired.is_some());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), looping)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_fire_time_during_a_run_of_the_same_plugin_is_skipped() {
    let text = EVERY_SECOND_LATER.replace("0 0 1 1 *", "* * * * * *");
    let schedules = Arc::new(Schedules::load(&config(&text), None).await.unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let shutdown = Cancel::default();
    let looping = tokio::spawn(Arc::clone(&schedules).run(
        move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            // A run that never ends.
            std::future::pending::<Fire>()
        },
        shutdown.clone(),
    ));
    // Wait until the schedule fired three times (its last_fired moved twice after the first).
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while seen.len() < 3 {
            if let Some(last) = schedules.list()[0].last_fired.clone() {
                if seen.last() != Some(&last) {
                    seen.push(last);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no overlapping run was started");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), looping)
        .await
        .unwrap()
        .unwrap();
}
