//! The sandbox: misbehaving plugins are contained with clear messages, bad
//! keys never land, retries work, incompatible plugins are refused, and the
//! compile cache survives corruption.

use crate::support::*;

fn fixture_block(name: &str, fixture_name: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\nkey_prefixes = [\"fx.{}.\"]\n{extra}\n",
        fixture(fixture_name).display().to_string(),
        fixture_name.replace('_', "-")
    )
}

fn critical_keys_block() -> String {
    format!(
        "[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n",
        plugin("critical_keys").display().to_string()
    )
}

#[test]
fn misbehaving_plugins_fail_alone_with_messages_naming_plugin_call_and_limit() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n{}{}{}{}{}{}",
        redis.url(),
        critical_keys_block(),
        fixture_block(
            "loop-timeout",
            "loop_forever",
            "timeout = \"300ms\"\nfuel_per_call = 1_000_000_000_000"
        ),
        fixture_block(
            "loop-fuel",
            "loop_forever",
            "timeout = \"60s\"\nfuel_per_call = 20_000_000"
        ),
        fixture_block("memory-hog", "memory_hog", "memory_limit = \"16MiB\""),
        fixture_block("panicker", "panicker", ""),
        fixture_block(
            "oversized",
            "oversized",
            "max_value_bytes = \"1MiB\"\n[plugins.settings]\nvalue_size = \"2000000\""
        ),
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(run.code(), 0, "failures make `run` exit non-zero");
    assert_eq!(run.report["status"], "partial");
    run.assert_balanced();

    // The well-behaved plugin is untouched by its neighbours.
    assert_eq!(run.count("critical-keys", "written"), 4);
    assert_eq!(run.count("critical-keys", "failed"), 0);
    assert!(run.plugin("critical-keys")["error"].is_null());
    assert_eq!(redis.get("system.settings").map(|v| v.starts_with('{')), Some(true));

    let expectations: [(&str, &[&str]); 5] = [
        (
            "loop-timeout",
            &["plugin `loop-timeout`", "produce", "timed out after 300ms", "timeout"],
        ),
        (
            "loop-fuel",
            &[
                "plugin `loop-fuel`",
                "produce",
                "ran out of fuel",
                "fuel_per_call = 20000000",
            ],
        ),
        (
            "memory-hog",
            &[
                "plugin `memory-hog`",
                "produce",
                "memory limit exceeded",
                "memory_limit = 16777216",
            ],
        ),
        (
            "panicker",
            &[
                "plugin `panicker`",
                "produce",
                "panicked: fixture panic: produce exploded on purpose (at panicker/src/lib.rs",
                "wasm backtrace:",
                "preheat:plugin/warmer@0.2.0#produce",
            ],
        ),
        (
            "oversized",
            &["value is 2000000 bytes", "over max_value_bytes = 1048576"],
        ),
    ];
    for (name, needles) in expectations {
        assert_eq!(run.count(name, "failed"), 5, "{name}: {}", run.plugin(name));
        assert_eq!(run.count(name, "written"), 0, "{name}");
        let errors = run.errors_of(name);
        for needle in needles {
            assert!(errors.contains(needle), "{name}: expected {needle:?} in:\n{errors}");
        }
    }
    assert_eq!(redis.dbsize(), 4, "nothing from a failing plugin reached redis");
}

/// A plugin that writes interface 0.2's columns by hand can, in `produce`,
/// claim more bytes than it returned, more outcomes than keys, a key twice or
/// an error with a value; in `enumerate`, make many tags cover the same bytes
/// (gigabytes if the host copied each), list more keys than a page may hold,
/// give fewer runs than keys or cut a character. Each answer or page is
/// refused whole with what was wrong, and nothing of it is written.
#[test]
fn forged_columns_are_refused_whole_with_what_was_wrong() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let answers = [
        (
            "overlong",
            "returned 1 bytes of values, but its lengths add up to 5000000",
        ),
        ("extra", "returned 6 results for 5 keys"),
        ("twice", "listed key 0 in `errors` out of order"),
        (
            "valued-error",
            "gave key 0 of the batch an error and also a value of 1 bytes",
        ),
    ];
    let pages = [
        (
            "shared",
            "listed 6553600019 bytes of keys, args and tags in a 65555-byte `text`; each string must have bytes of its own",
        ),
        ("too-many", "listed 100001 keys in one page, over the 100000 a page may hold (MAX_PAGE_KEYS)"),
        ("short-runs", "listed 2 keys (`key-ends`) but runs of 1"),
        (
            "cut-char",
            "listed a string of `key-ends` at bytes 0..20 of a 21-byte `text`: past its end or inside a character",
        ),
    ];
    let block = |setting: &str, value: &str| {
        fixture_block(
            &format!("{setting}-{value}"),
            "forged_columns",
            &format!("[plugins.settings]\n{setting} = \"{value}\""),
        )
    };
    let blocks: String = (answers.iter().map(|(answer, _)| block("answer", answer)))
        .chain(pages.iter().map(|(page, _)| block("page", page)))
        .collect();
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n{blocks}",
        redis.url()
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_ne!(run.code(), 0);
    run.assert_balanced();
    for (answer, needle) in answers {
        // The page of these is honest: five keys listed, each failed.
        let name = format!("answer-{answer}");
        assert_eq!(run.count(&name, "enumerated"), 5, "{name}: {}", run.plugin(&name));
        assert_eq!(run.count(&name, "failed"), 5, "{name}: {}", run.plugin(&name));
        assert_eq!(run.count(&name, "written"), 0, "{name}");
        let errors = run.errors_of(&name);
        assert!(errors.contains(needle), "{name}: expected {needle:?} in:\n{errors}");
    }
    for (page, needle) in pages {
        let name = format!("page-{page}");
        assert_eq!(run.count(&name, "enumerated"), 0, "{name}: {}", run.plugin(&name));
        let errors = run.errors_of(&name);
        assert!(
            errors.contains(&format!("plugin `{name}`: enumerate (first page) {needle}")),
            "{name}: expected {needle:?} in:\n{errors}"
        );
    }
    assert_eq!(redis.dbsize(), 0, "nothing of a forged answer or page reached redis");
}

#[test]
fn invalid_keys_are_never_written_and_are_reported_with_the_reason() {
    let ws = Workspace::new();
    let config = ws.config(&fixture_block("invalid-key", "invalid_key", ""));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("invalid-key", "written"), 3);
    assert_eq!(run.count("invalid-key", "invalid"), 5);
    let errors = run.errors_of("invalid-key");
    for reason in [
        "empty key",
        "whitespace",
        "control character",
        "outside the plugin's key_prefixes",
        "over max_key_bytes = 250",
    ] {
        assert!(errors.contains(reason), "expected {reason:?} in:\n{errors}");
    }
    assert_ne!(run.code(), 0);
}

#[test]
fn retryable_errors_are_retried_with_backoff_until_success_or_out_of_attempts() {
    let ws = Workspace::new();
    // One worker, so the per-instance attempt counter of the fixture sees every attempt.
    let block = |fail_times: u32| {
        format!(
            "concurrency = 1\nretry_base_delay = \"10ms\"\nmax_attempts = 3\n{}",
            fixture_block(
                "flaky",
                "flaky",
                &format!("[plugins.settings]\nfail_times = \"{fail_times}\"")
            )
        )
    };
    let config = ws.config(&block(2));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("flaky", "written"), 5);
    assert_eq!(run.count("flaky", "retried"), 10);

    let config = ws.config(&block(5));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("flaky", "failed"), 5);
    assert!(
        run.errors_of("flaky").contains("gave up after 3 attempts"),
        "{}",
        run.errors_of("flaky")
    );
    assert_eq!(run.report["errors"][0]["attempts"], 3);
}

#[test]
fn a_plugin_built_for_another_interface_version_is_refused_naming_both_versions() {
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "{}{}",
        critical_keys_block(),
        fixture_block("wrong-version", "wrong_version", "")
    ));
    let check = preheat_plain(&["check", "--config", config.to_str().unwrap()]);
    assert_ne!(check.status.code(), Some(0));
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(out.contains("✓ critical-keys"), "{out}");
    assert!(
        out.contains("wrong-version") && out.contains("preheat:plugin@0.9.0") && out.contains("preheat:plugin@0.2.0"),
        "{out}"
    );

    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.count("critical-keys", "written"), 4);
    assert!(run.plugin("wrong-version")["error"].as_str().unwrap().contains("0.9.0"));
}

/// A plugin built against the frozen interface 0.1 runs beside a 0.2 plugin
/// in one run: its key specs cross the boundary both ways with their
/// priority, tags, arg and TTL, its host calls work, and a refused query
/// reaches it as the message alone (0.1 has no error kinds).
#[test]
fn a_plugin_built_for_interface_0_1_runs_beside_a_0_2_plugin() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let app = format!("sqlite://{}", ws.dir.path().join("app.db").display());
    sql(
        &app,
        &["CREATE TABLE t (name TEXT)", "INSERT INTO t VALUES ('from sqlite')"],
    );
    let block = |db: u32, statement: &str| {
        format!(
            "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[sources.app]\nurl = \"{app}\"\n{}{}[plugins.settings]\nkeys = \"4\"\nsource = \"app\"\nsql = {statement:?}\n",
            redis.url().replace("/0", &format!("/{db}")),
            critical_keys_block(),
            fixture_block("legacy", "legacy_v01", "sources = [\"app\"]"),
        )
    };
    let config = ws.config(&block(0, "SELECT name FROM t"));
    let inspect = preheat_plain(&["plugin", "inspect", fixture("legacy_v01").to_str().unwrap()]);
    assert_eq!(
        inspect.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let shown = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        shown.contains("interface: preheat:plugin@0.1.0") && shown.contains("note: 0.1.0 is frozen"),
        "{shown}"
    );

    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("legacy", "written"), 4);
    assert_eq!(run.count("critical-keys", "written"), 4);
    for i in 1..=4 {
        assert_eq!(
            redis.get(&format!("fx.legacy-v01.{i}")).as_deref(),
            Some(
                format!(
                    "v0.1 key=fx.legacy-v01.{i} arg={i} tags=legacy,tag{i} ctx=proactive cached=none sql=from sqlite"
                )
                .as_str()
            )
        );
        // Odd keys had a ttl in their spec, and the entry overrode it with 30 s.
        let ttl = redis.pttl(&format!("fx.legacy-v01.{i}"));
        if i % 2 == 1 {
            assert!((1..=30_000).contains(&ttl), "key {i}: {ttl}");
        } else {
            assert!(ttl > 30_000, "key {i}: {ttl}");
        }
    }
    assert!(redis.get("system.settings").is_some(), "the 0.2 plugin wrote too");

    let refused = ws.config(&block(1, "DELETE FROM t"));
    let run = preheat(&ws, &["run", "--config", refused.to_str().unwrap()], &[]);
    assert_eq!(run.count("legacy", "written"), 4);
    let mut db1 = redis.conn();
    redis::cmd("SELECT").arg(1).query::<()>(&mut db1).unwrap();
    let value: String = redis::cmd("GET").arg("fx.legacy-v01.1").query(&mut db1).unwrap();
    assert!(value.contains("sql=error: query on source `app` refused:"), "{value}");
}

#[test]
fn the_compile_cache_is_reused_and_a_corrupt_entry_is_replaced() {
    let ws = Workspace::new();
    let cache = ws.dir.path().join("cache");
    let config = ws.config_with_cache(&critical_keys_block(), &cache);
    let config = config.to_str().unwrap();
    let first = String::from_utf8_lossy(&preheat_plain(&["check", "--config", config]).stdout).into_owned();
    assert!(first.contains("compiled now"), "{first}");
    let second = String::from_utf8_lossy(&preheat_plain(&["check", "--config", config]).stdout).into_owned();
    assert!(second.contains("compiled from cache"), "{second}");

    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    std::fs::write(&entries[0], b"not a compiled component").unwrap();
    let third = preheat_plain(&["check", "--config", config]);
    assert_eq!(
        third.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert!(String::from_utf8_lossy(&third.stdout).contains("compiled now"));
    assert_ne!(
        std::fs::read(&entries[0]).unwrap(),
        b"not a compiled component",
        "the corrupt entry is replaced"
    );
    let fourth = String::from_utf8_lossy(&preheat_plain(&["check", "--config", config]).stdout).into_owned();
    assert!(fourth.contains("compiled from cache"), "{fourth}");
}

#[test]
fn duplicate_keys_in_one_run_are_warmed_once() {
    let ws = Workspace::new();
    let config = ws.config(&fixture_block(
        "flaky",
        "flaky",
        "[plugins.settings]\nfail_times = \"0\"\nrepeat = \"3\"",
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("flaky", "enumerated"), 5);
    assert_eq!(run.count("flaky", "duplicates"), 10);
    assert_eq!(run.count("flaky", "written"), 5);
}
