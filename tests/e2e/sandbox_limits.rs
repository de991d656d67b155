//! Hostile plugins against the sandbox's limits: calls that block in WASI,
//! components that compile for ever or allocate many memories, log floods and
//! oversized `cache-get` values. Each run ends in time, names the plugin, the
//! call and the limit, and leaves well-behaved plugins alone.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasm_encoder::{
    BlockType, CodeSection, Component, ExportKind, ExportSection, Function, FunctionSection, InstanceSection,
    Instruction, MemArg, MemorySection, MemoryType, Module, ModuleSection, StartSection, TypeSection, ValType,
};

/// What the run may take past its deadline: calls are cut at once; a backend
/// write in flight and recording the outcome finish (docs/SECURITY.md).
const GRACE: Duration = Duration::from_secs(5);

fn block(name: &str, path: &Path, prefix: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = {name:?}\npath = {:?}\nkey_prefixes = [{prefix:?}]\n{extra}\n",
        path.display().to_string()
    )
}

fn critical_keys_block() -> String {
    format!(
        "[[plugins]]\nname = \"critical-keys\"\npath = {:?}\nkey_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n",
        plugin("critical_keys").display().to_string()
    )
}

fn sleeper_block(name: &str, sleep_in: &str, extra: &str) -> String {
    block(
        name,
        &fixture("sleeper"),
        "fx.sleeper.",
        &format!("{extra}\n[plugins.settings]\nsleep_in = {sleep_in:?}"),
    )
}

/// `preheat <args>` timed.
fn timed(ws: &Workspace, args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let run = preheat(ws, args, &[]);
    (run, started.elapsed())
}

#[test]
fn calls_blocked_in_a_wasi_sleep_are_cut_at_their_timeout_and_name_plugin_call_and_limit() {
    let redis = RedisServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "deadline = \"10s\"\n[backend]\nkind = \"redis\"\nurl = \"{}\"\n{}{}{}",
        redis.url(),
        critical_keys_block(),
        sleeper_block("sleepy-produce", "produce", "timeout = \"2s\""),
        sleeper_block("sleepy-enumerate", "enumerate", "timeout = \"2s\""),
    ));
    precompile(&config);
    let (run, took) = timed(&ws, &["run", "--config", config.to_str().unwrap()]);
    assert!(took < Duration::from_secs(10) + GRACE, "run took {took:?}");
    assert_eq!(run.report["status"], "partial", "{}", run.report);
    assert_ne!(run.code(), 0);
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 4);
    assert!(run.plugin("critical-keys")["error"].is_null());

    let produce = run.errors_of("sleepy-produce");
    assert_mentions(
        &produce,
        &[
            "plugin `sleepy-produce`",
            "produce",
            "timed out after 2s",
            "timeout = 2s",
        ],
    );
    assert_eq!(run.count("sleepy-produce", "failed"), 5);
    let enumerate = run.errors_of("sleepy-enumerate");
    assert_mentions(
        &enumerate,
        &[
            "plugin `sleepy-enumerate`",
            "enumerate",
            "timed out after 2s",
            "timeout = 2s",
        ],
    );
    assert_eq!(run.count("sleepy-enumerate", "enumerated"), 0);
}

#[test]
fn deploy_returns_within_its_deadline_whatever_plugins_sleep() {
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "deadline = \"3s\"\n{}{}{}",
        critical_keys_block(),
        sleeper_block("hour-produce", "produce", "timeout = \"2h\""),
        sleeper_block("hour-enumerate", "enumerate", "timeout = \"2h\""),
    ));
    precompile(&config);
    let (deploy, took) = timed(&ws, &["deploy", "--config", config.to_str().unwrap()]);
    assert_eq!(deploy.code(), 0, "deploy never fails the deploy: {}", deploy.stderr());
    assert!(took < Duration::from_secs(3) + GRACE, "deploy took {took:?}");
    assert!(
        took >= Duration::from_secs(3),
        "the sleepers hold the run until the deadline: {took:?}"
    );
    assert_eq!(deploy.report["deadline_hit"], true);
    deploy.assert_balanced();
    assert_eq!(deploy.count("critical-keys", "written"), 4);
    assert_eq!(deploy.count("hour-produce", "abandoned"), 5);
    assert_eq!(deploy.count("hour-enumerate", "enumerated"), 0);
}

#[test]
fn a_backend_write_blocked_by_a_lock_is_given_up_soon_after_the_deadline() {
    let pg = PgServer::start();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "deadline = \"3s\"\n[backend]\nkind = \"sql\"\nurl = \"{}\"\ncreate_table = true\n{}",
        pg.url(),
        critical_keys_block(),
    ));
    let config = config.to_str().unwrap();
    let first = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(first.count("critical-keys", "written"), 4, "{}", first.stderr());
    sql(&pg.url(), &["DELETE FROM cache"]);
    // The application holds the cache table against writers (a long
    // transaction, a migration); reads still go through.
    let mut holder = pg.session("BEGIN; LOCK TABLE cache IN EXCLUSIVE MODE; SELECT pg_sleep(600);");
    wait_for("the lock to be held", Duration::from_secs(20), || {
        !sql(
            &pg.url(),
            &["SELECT 'held' FROM pg_locks WHERE mode = 'ExclusiveLock' AND relation = 'cache'::regclass AND granted"],
        )
        .is_empty()
    });
    let (deploy, took) = timed(&ws, &["deploy", "--config", config]);
    holder.kill().unwrap();
    let _ = holder.wait();
    assert_eq!(deploy.code(), 0, "deploy never fails the deploy: {}", deploy.stderr());
    assert!(took < Duration::from_secs(3) + GRACE, "deploy took {took:?}");
    assert_eq!(deploy.report["deadline_hit"], true, "{}", deploy.report);
    deploy.assert_balanced();
    assert_eq!(deploy.count("critical-keys", "written"), 0);
    assert!(deploy.count("critical-keys", "abandoned") > 0, "{}", deploy.report);
}

#[test]
fn plugin_test_timeout_cuts_a_sleeping_call_in_about_a_second() {
    let sleeper = fixture("sleeper");
    let started = Instant::now();
    let out = preheat_plain(&["plugin", "test", sleeper.to_str().unwrap(), "--timeout", "1s"]);
    let took = started.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(1) + GRACE,
        "plugin test took {took:?}:\n{text}"
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text.contains("timed out after 1s (limit: timeout = 1s per call)"),
        "{text}"
    );
}

/// `base` (a component) with `module` appended as a new top-level core
/// module, instantiated `instances` times when the component is.
fn with_extra_module(base: &[u8], module: &Module, instances: u32) -> Vec<u8> {
    let mut modules = 0u32;
    let mut depth = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(base) {
        match payload.expect("the base component parses") {
            wasmparser::Payload::ModuleSection { .. } => {
                if depth == 0 {
                    modules += 1;
                }
                depth += 1;
            }
            wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let mut extra = Component::new();
    extra.section(&ModuleSection(module));
    if instances > 0 {
        let mut section = InstanceSection::new();
        for _ in 0..instances {
            section.instantiate(modules, Vec::<(&str, wasm_encoder::ModuleArg)>::new());
        }
        extra.section(&section);
    }
    let extra = extra.finish();
    let mut out = base.to_vec();
    out.extend_from_slice(&extra[8..]);
    out
}

/// A core module with one 64 MiB memory that its start function writes to,
/// page by page, so that each instance really costs 64 MiB of host memory.
fn sixty_four_mib_module() -> Module {
    const SIZE: i32 = 64 << 20;
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: (SIZE / 65536) as u64,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut touch = Function::new([(1, ValType::I32)]);
    let store = MemArg {
        offset: 0,
        align: 0,
        memory_index: 0,
    };
    for i in [
        Instruction::Loop(BlockType::Empty),
        Instruction::LocalGet(0),
        Instruction::I32Const(1),
        Instruction::I32Store8(store),
        Instruction::LocalGet(0),
        Instruction::I32Const(4096),
        Instruction::I32Add,
        Instruction::LocalTee(0),
        Instruction::I32Const(SIZE),
        Instruction::I32LtU,
        Instruction::BrIf(0),
        Instruction::End,
        Instruction::End,
    ] {
        touch.instruction(&i);
    }
    let mut code = CodeSection::new();
    code.function(&touch);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&StartSection { function_index: 0 })
        .section(&code);
    module
}

/// A core module of `functions` large functions: valid, but slow to compile.
fn slow_to_compile_module(functions: u32, adds_per_function: u32) -> Module {
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut declared = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    for f in 0..functions {
        declared.function(0);
        exports.export(&format!("f{f}"), ExportKind::Func, f);
        let mut body = Function::new([(1, ValType::I32)]);
        body.instruction(&Instruction::LocalGet(0));
        for k in 0..adds_per_function {
            // Data-dependent arithmetic with side results, so nothing folds away.
            body.instruction(&Instruction::I32Const(k as i32 ^ 0x5bd1));
            body.instruction(&Instruction::I32Xor);
            body.instruction(&Instruction::LocalTee(1));
            body.instruction(&Instruction::LocalGet(1));
            body.instruction(&Instruction::I32Const((k % 31) as i32));
            body.instruction(&Instruction::I32Rotl);
            body.instruction(&Instruction::I32Add);
        }
        body.instruction(&Instruction::End);
        code.function(&body);
    }
    let mut module = Module::new();
    module
        .section(&types)
        .section(&declared)
        .section(&exports)
        .section(&code);
    module
}

/// Writes a hostile component into the workspace.
fn hostile(ws: &Workspace, name: &str, bytes: &[u8]) -> PathBuf {
    let path = ws.dir.path().join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn memory_limit_bounds_all_memories_of_an_instance_together() {
    let ws = Workspace::new();
    let base = std::fs::read(fixture("sleeper")).unwrap();
    // 32 core instances of 64 MiB each: 2 GiB if only each memory were capped.
    let hog = hostile(
        &ws,
        "many-memories",
        &with_extra_module(&base, &sixty_four_mib_module(), 32),
    );
    let config = ws.config(&format!(
        "{}{}",
        critical_keys_block(),
        block("many-memories", &hog, "fx.sleeper.", "memory_limit = \"64MiB\""),
    ));
    let (run, peak) = preheat_measured(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 4);
    let errors = run.errors_of("many-memories");
    assert_mentions(
        &errors,
        &[
            "plugin `many-memories`",
            "instantiation",
            "memory limit exceeded",
            "memory_limit = 67108864 bytes (64.0 MiB) for the whole instance",
        ],
    );
    // Bound: well under the 2 GiB the component asks for; the host itself needs ~100 MiB.
    assert!(peak < 400 << 20, "peak RSS {} MiB", peak >> 20);

    let inspect = preheat_plain(&["plugin", "inspect", hog.to_str().unwrap(), "--memory-limit", "64MiB"]);
    let out = String::from_utf8_lossy(&inspect.stdout);
    assert_ne!(inspect.status.code(), Some(0), "{out}");
    assert!(
        out.contains("problem:") && out.contains("memory limit exceeded"),
        "{out}"
    );
    assert!(!out.contains("ok: loads and starts"), "{out}");
}

#[test]
fn core_instance_counts_are_capped_and_inspect_names_the_cap() {
    let ws = Workspace::new();
    let base = std::fs::read(fixture("sleeper")).unwrap();
    let many = hostile(&ws, "many-instances", &with_extra_module(&base, &Module::new(), 100));
    let inspect = preheat_plain(&["plugin", "inspect", many.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&inspect.stdout);
    assert_ne!(inspect.status.code(), Some(0), "{out}");
    assert_mentions(
        &out,
        &[
            "instantiation",
            "instance limit exceeded",
            "cap of 100 core instances",
            "MAX_CORE_INSTANCES",
        ],
    );
    // The unmodified fixture is far below every cap.
    let fine = preheat_plain(&["plugin", "inspect", fixture("sleeper").to_str().unwrap()]);
    assert_eq!(fine.status.code(), Some(0), "{}", String::from_utf8_lossy(&fine.stdout));
}

#[test]
fn compiling_counts_against_compile_timeout_and_the_deadline() {
    let ws = Workspace::new();
    let base = std::fs::read(fixture("sleeper")).unwrap();
    // A custom section with a nonce: never in the shared compile cache, however
    // often the suite ran before, so every run below really compiles it.
    let mut bytes = with_extra_module(&base, &slow_to_compile_module(400, 4000), 0);
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let name = b"preheat-test-nonce";
    let section_len = 1 + name.len() + nonce.len();
    assert!(section_len < 128, "one-byte LEB128 lengths");
    bytes.extend([0u8, section_len as u8, name.len() as u8]);
    bytes.extend(name);
    bytes.extend(nonce.as_bytes());
    let slow = hostile(&ws, "slow-compile", &bytes);
    let plugins = format!(
        "{}{}",
        critical_keys_block(),
        block("slow-compile", &slow, "fx.sleeper.", "")
    );
    // critical-keys itself must not be what runs out of time.
    precompile(&ws.config(&critical_keys_block()));

    // Over compile_timeout: the plugin is not run, the message names the limit.
    let config = ws.config(&format!("compile_timeout = \"1s\"\n{plugins}"));
    let (run, took) = timed(&ws, &["run", "--config", config.to_str().unwrap()]);
    assert_ne!(run.report["status"], "completed", "{}", run.report);
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 4);
    let error = run.errors_of("slow-compile");
    assert!(
        error.contains("plugin `slow-compile`") && error.contains("compile_timeout = 1s"),
        "{error}"
    );
    assert!(
        took < Duration::from_secs(1) + GRACE + Duration::from_secs(2),
        "run took {took:?}"
    );

    // Over the deadline (compile_timeout is larger): deploy ends in time and says why.
    let config = ws.config(&format!("deadline = \"2s\"\n{plugins}"));
    let (deploy, took) = timed(&ws, &["deploy", "--config", config.to_str().unwrap()]);
    assert_eq!(deploy.code(), 0, "{}", deploy.stderr());
    assert!(took < Duration::from_secs(2) + GRACE, "deploy took {took:?}");
    assert_ne!(deploy.report["status"], "completed", "{}", deploy.report);
    let error = deploy.errors_of("slow-compile");
    assert!(error.contains("deadline = 2s"), "{error}");
}

#[test]
fn a_log_flood_is_escaped_capped_and_rate_limited_with_the_drops_reported() {
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "deadline = \"10s\"\n{}{}",
        critical_keys_block(),
        block(
            "log-flood",
            &fixture("log_flood"),
            "fx.log-flood.",
            "timeout = \"2s\"\n[plugins.settings]\nmessage_bytes = \"65536\""
        ),
    ));
    let (run, took) = timed(&ws, &["run", "--config", config.to_str().unwrap()]);
    assert!(took < Duration::from_secs(10) + GRACE, "{took:?}");
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "written"), 4);
    let log = run.stderr();
    // Bound: a burst of 200 lines, then 50 lines/s, of at most 4 KiB each
    // (plus the tags), for a call of 2 s: about 1.3 MB; the flood sent gigabytes.
    assert!(log.len() < 3_000_000, "captured log is {} bytes", log.len());
    let flood_lines: Vec<&str> = log.lines().filter(|l| l.contains("FLOOD")).collect();
    assert!(flood_lines.len() >= 100, "the burst got through: {}", flood_lines.len());
    for line in log.lines() {
        if line.contains("FLOOD") || line.contains("FORGED") {
            assert!(line.contains("log-flood"), "untagged plugin line: {line:.200}");
        }
        assert!(!line.trim_start().starts_with("FORGED"), "forged line: {line:.200}");
    }
    assert!(log.contains("FORGED ERROR"), "the forging text is kept, escaped");
    assert!(log.contains("[truncated: "), "huge messages are cut with a marker");
    assert!(log.contains("log lines dropped"), "drops are reported");
    assert!(log.contains("LOG_LINES_PER_SECOND"), "the summary names the limit");
}

#[test]
fn cache_get_refuses_values_over_max_value_bytes_without_reading_them() {
    let redis = RedisServer::start();
    let big = "b".repeat(2 << 20);
    redis::cmd("SET")
        .arg("fx.cache-peek.1")
        .arg(&big)
        .query::<()>(&mut redis.conn())
        .unwrap();
    redis::cmd("SET")
        .arg("fx.cache-peek.2")
        .arg("small")
        .query::<()>(&mut redis.conn())
        .unwrap();
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n{}",
        redis.url(),
        block(
            "cache-peek",
            &fixture("cache_peek"),
            "fx.cache-peek.",
            "max_value_bytes = \"1MiB\"\nwrite_policy = \"always\"\n[plugins.settings]\nkeys = \"3\""
        )
    ));
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    run.assert_balanced();
    assert_eq!(run.count("cache-peek", "failed"), 1);
    assert_eq!(run.count("cache-peek", "written"), 2);
    let errors = run.errors_of("cache-peek");
    assert_mentions(
        &errors,
        &[
            "limit: cache-get \"fx.cache-peek.1\"",
            "2097152 bytes",
            "over max_value_bytes = 1048576",
        ],
    );
    assert_eq!(
        redis.get("fx.cache-peek.1").map(|v| v.len()),
        Some(2 << 20),
        "left alone"
    );
    assert_eq!(redis.get("fx.cache-peek.2").as_deref(), Some("5 bytes"));
    assert_eq!(redis.get("fx.cache-peek.3").as_deref(), Some("0 bytes"));
}
