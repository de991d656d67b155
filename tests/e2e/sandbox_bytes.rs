//! What a plugin can make the host hold, store or print is bounded in bytes:
//! key specs (args, tags), what one call copies out of the guest, cursors,
//! and the texts that reach the report, the job store and the log. Each
//! hostile mode of the `spec-bomb` fixture runs beside the real
//! `critical-keys` plugin, which must complete untouched.

use crate::support::*;

/// Peak RSS allowed for a run whose hostile plugin would, unbounded, make
/// the host hold about 2 GB (a generous factor over the ~100 MB it needs).
const PEAK_RSS_BOUND: u64 = 600 << 20;

fn config_with(ws: &Workspace, settings: &str, extra: &str) -> std::path::PathBuf {
    ws.config(&format!(
        "[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n\n[[plugins]]\nname = \"bomb\"\npath = {:?}\nkey_prefixes = [\"fx.spec-bomb.\"]\n{extra}\n[plugins.settings]\n{settings}\n",
        plugin("critical_keys").display().to_string(),
        fixture("spec_bomb").display().to_string(),
    ))
}

fn run_bomb(settings: &str, extra: &str) -> (Run, u64) {
    let ws = Workspace::new();
    let config = config_with(&ws, settings, extra);
    let (run, peak) = preheat_measured(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 4, "{}", run.stderr());
    assert!(run.plugin("critical-keys")["error"].is_null());
    (run, peak)
}

#[test]
fn key_specs_over_their_byte_caps_are_refused_and_never_pile_up_in_the_queue() {
    // 200 pages of 64 keys with distinct 150 kB args: 1.9 GB if queued.
    let (run, peak) = run_bomb("mode = \"big-args\"", "");
    assert_eq!(run.count("bomb", "enumerated"), 200 * 64);
    assert_eq!(run.count("bomb", "invalid"), 200 * 64);
    assert_eq!(run.count("bomb", "written"), 0);
    let errors = run.errors_of("bomb");
    assert!(
        errors.contains("arg is 150000 bytes, over max_arg_bytes = 16384"),
        "{errors}"
    );
    eprintln!("big-args: peak RSS {} MiB", peak >> 20);
    assert!(peak < PEAK_RSS_BOUND, "peak RSS {} MiB", peak >> 20);
    assert_eq!(
        run.report["errors"].as_array().unwrap().len(),
        100,
        "errors[] is capped"
    );

    let (run, _) = run_bomb("mode = \"many-tags\"", "");
    assert_eq!(run.count("bomb", "invalid"), 64);
    assert!(run.errors_of("bomb").contains("10000 tags, over max_tags = 16"));
}

#[test]
fn results_aliasing_one_buffer_cannot_make_the_host_copy_more_than_memory_limit() {
    // 64 fail reasons that are all the same 32 MiB of guest memory: 2 GiB if copied.
    let (run, peak) = run_bomb("mode = \"alias\"", "memory_limit = \"64MiB\"");
    assert_eq!(run.count("bomb", "written"), 0);
    assert_eq!(run.count("bomb", "failed"), 64);
    let errors = run.errors_of("bomb");
    assert_mentions(&errors, &["plugin `bomb`", "produce", "memory_limit = 64.0 MiB"]);
    eprintln!("alias: peak RSS {} MiB", peak >> 20);
    assert!(peak < PEAK_RSS_BOUND, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn a_cursor_cycle_is_stopped_with_a_message() {
    let (run, _) = run_bomb("mode = \"cursor-cycle\"", "");
    assert!(!run.report["deadline_hit"].as_bool().unwrap());
    assert_eq!(run.count("bomb", "enumerated"), 3, "start, a, b");
    let error = run.plugin("bomb")["error"].as_str().unwrap();
    assert!(error.contains("\"a\"") && error.contains("cursor cycle"), "{error}");
}

#[test]
fn invisible_unicode_in_keys_is_refused_unless_allowed() {
    let (run, _) = run_bomb("mode = \"invisible\"", "");
    assert_eq!(run.count("bomb", "written"), 1);
    assert_eq!(run.count("bomb", "invalid"), 3);
    let errors = run.errors_of("bomb");
    for code in ["U+200B", "U+202E", "U+FEFF"] {
        assert!(errors.contains(code), "expected {code} in:\n{errors}");
    }
    // Allowed, they are written; the leading U+FEFF still puts its key outside the prefix.
    let (run, _) = run_bomb("mode = \"invisible\"", "allow_format_characters = true");
    assert_eq!(run.count("bomb", "written"), 3);
    assert!(run.errors_of("bomb").contains("key_prefixes"));
}

#[test]
fn huge_texts_from_a_plugin_are_clipped_in_the_report_the_log_and_the_job_store() {
    let ws = Workspace::new();
    let config = config_with(&ws, "mode = \"huge-errors\"", "");
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 4);
    assert_eq!(run.count("bomb", "invalid"), 1, "the 1 MiB key");
    assert_eq!(run.count("bomb", "failed"), 1, "the key failed with a 1 MiB reason");

    let report = std::fs::read(ws.report_path()).unwrap();
    assert!(report.len() < 64 << 10, "report is {} bytes", report.len());
    for e in run.report["errors"].as_array().unwrap() {
        assert!(e["key"].as_str().unwrap().len() < 400, "{}", e["key"]);
        assert!(e["error"].as_str().unwrap().len() < 2200);
    }
    let plugin_error = run.plugin("bomb")["error"].as_str().unwrap();
    assert!(
        plugin_error.len() < 2200 && plugin_error.contains("[truncated: "),
        "{}",
        plugin_error.len()
    );
    assert!(run.errors_of("bomb").contains("more bytes]"));
    let stderr = run.stderr();
    assert!(stderr.len() < 64 << 10, "log is {} bytes", stderr.len());

    let history = preheat_in(&ws, &["history", "--config", config.to_str().unwrap(), "--json"]);
    assert!(history.status.success());
    assert!(
        history.stdout.len() < 64 << 10,
        "history is {} bytes",
        history.stdout.len()
    );
}
