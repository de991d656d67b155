//! A memcached pool under failure: a server killed while a run writes to
//! it fails only its own keys, naming it; the other servers get theirs, as
//! php-memcached (the application's client) maps them; nothing hangs.

use crate::support::{fixture, preheat, MemcachedServer, Workspace};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The server of each key as php-memcached (libmemcached's default
/// distribution) maps it over `servers`: key → port.
fn php_memcached_ports(servers: &[String], keys: &[String]) -> BTreeMap<String, u16> {
    let script = r#"
        $m = new Memcached();
        foreach (explode(',', $argv[1]) as $s) { [$h, $p] = explode(':', $s); $m->addServer($h, (int) $p); }
        foreach (array_slice($argv, 2) as $k) { echo $k, ' ', $m->getServerByKey($k)['port'], "\n"; }
    "#;
    let out = Command::new("php")
        .args(["-r", script, &servers.join(",")])
        .args(keys)
        .output()
        .expect("running php (apt-get install php-cli php-memcached)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, p) = l.rsplit_once(' ').unwrap();
            (k.to_string(), p.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_server_killed_mid_run_fails_its_own_keys_naming_it_and_the_others_land() {
    const KEYS: usize = 300;
    let mut servers: Vec<MemcachedServer> = (0..3).map(|_| MemcachedServer::start()).collect();
    let addresses: Vec<String> = servers.iter().map(|s| s.address()).collect();
    let ws = Workspace::new();
    // 30 batches of 10, one at a time, each produced in 100 ms: the run
    // writes for about 3 s, and the server dies 0.8 s in.
    let config = ws.config(&format!(
        "concurrency = 1\nbatch_size = 10\n\
         [backend]\nkind = \"memcached\"\nservers = {addresses:?}\nio_timeout = \"2s\"\n\
         [[plugins]]\nname = \"sleeper\"\npath = {:?}\nkey_prefixes = [\"fx.sleeper.\"]\n\
         [plugins.settings]\nkeys = \"{KEYS}\"\nsleep_ms = \"100\"\n",
        fixture("sleeper").display().to_string()
    ));
    let mut doomed = servers.remove(1);
    let dead = doomed.address();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        doomed.kill();
        doomed
    });
    let run = preheat(&ws, &["run", "--config", config.to_str().unwrap()], &[]);
    let _doomed = killer.join().unwrap();
    // A partial run (`preheat run` exits 1 for it; `deploy` would not fail).
    assert_eq!(run.code(), 1, "{}\n{}", run.report, run.stderr());
    assert_eq!(run.report["status"], "partial", "{}", run.report);
    run.assert_balanced();
    let (written, failed) = (run.count("sleeper", "written"), run.count("sleeper", "failed"));
    assert_eq!(written + failed, KEYS as u64, "{}", run.report);
    assert!(failed > 0, "no key failed: {}", run.report);
    for error in run.report["errors"].as_array().unwrap() {
        let text = error["error"].as_str().unwrap();
        assert!(text.contains(&format!("memcached {dead}")), "{text}");
    }
    // Every key php-memcached looks for on a live server is there.
    let keys: Vec<String> = (1..=KEYS).map(|i| format!("fx.sleeper.{i}")).collect();
    let ports = php_memcached_ports(&addresses, &keys);
    let mut live = 0;
    for server in &servers {
        let mine: Vec<&String> = keys.iter().filter(|k| ports[*k] == server.port).collect();
        for key in &mine {
            assert!(
                server.command(&format!("mg {key}")).starts_with("HD"),
                "{key} is not on {}",
                server.address()
            );
        }
        live += mine.len() as u64;
    }
    // Only the dead server's keys failed (those written before it died count as written).
    assert!(
        failed <= KEYS as u64 - live,
        "{failed} failed, {live} live: {}",
        run.report
    );
}

#[test]
fn laravel_values_on_a_pool_read_back_through_cache_get_and_ttl_and_if_missing_keeps_the_app_s() {
    use crate::support::{plugin, preheat_in};
    let servers: Vec<MemcachedServer> = (0..2).map(|_| MemcachedServer::start()).collect();
    let addresses: Vec<String> = servers.iter().map(|s| s.address()).collect();
    // A key the application cached itself, on whichever server holds it: if-missing leaves it.
    for s in &servers {
        let _ = s.command("ms shop:system.settings 9 T42 F0 ME\r\napp-wrote");
    }
    let ws = Workspace::new();
    let config = ws.config(&format!(
        "[backend]\nkind = \"memcached\"\nservers = {addresses:?}\ndistribution = \"ketama\"\n\
         format = {{ kind = \"laravel\", version = \"8\", cache_prefix = \"shop\" }}\n\
         [[plugins]]\nname = \"critical-keys\"\npath = {:?}\n\
         key_prefixes = [\"system.\", \"products.\", \"navigation.\", \"featured.\", \"user.profile.\"]\n\
         default_ttl = \"10m\"\n[plugins.settings]\nuser_ids = \"1-50\"\npage_size = 16\n",
        plugin("critical_keys").display().to_string()
    ));
    let config = config.to_str().unwrap();
    let run = preheat(&ws, &["run", "--config", config], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.assert_balanced();
    assert_eq!(run.count("critical-keys", "skipped_fresh"), 1, "{}", run.report);
    assert_eq!(
        run.count("critical-keys", "failed"),
        0,
        "{}",
        run.errors_of("critical-keys")
    );
    let cache = |args: &[&str]| {
        let out = preheat_in(&ws, &[&["cache"], args].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let got: serde_json::Value =
        serde_json::from_str(&cache(&["get", "user.profile.7", "--config", config, "--json"])).unwrap();
    assert_eq!(got["key"], "shop:user.profile.7", "{got}");
    assert_eq!(got["value"]["id"], 7, "{got}");
    let ttl = got["ttl_seconds"].as_f64().unwrap();
    assert!((590.0..=600.0).contains(&ttl), "{got}");
    let ttl = cache(&["ttl", "system.settings", "--config", config]);
    assert!(
        ttl.contains("42") || ttl.contains("41") || ttl.contains("40"),
        "the app's TTL is kept: {ttl}"
    );
}
