//! Test support: builds the real plugins, starts real redis-servers, writes
//! configs and runs the real `preheat` binary.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds plugins/ and tests/fixtures/ for wasm32-wasip2 once per test process.
fn build_wasm() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        for manifest in ["plugins/Cargo.toml", "tests/fixtures/Cargo.toml"] {
            let status = Command::new(env!("CARGO"))
                .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
                .arg(repo().join(manifest))
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .expect("running cargo to build the wasm plugins");
            assert!(status.success(), "building {manifest} for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)");
        }
        repo()
    })
}

/// Path of an example plugin from plugins/ (e.g. "critical_keys").
pub fn plugin(name: &str) -> PathBuf {
    build_wasm().join(format!("plugins/target/wasm32-wasip2/release/{name}.wasm"))
}

/// Path of a test fixture from tests/fixtures/ (e.g. "loop_forever").
pub fn fixture(name: &str) -> PathBuf {
    build_wasm().join(format!("tests/fixtures/target/wasm32-wasip2/release/{name}.wasm"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A redis-server of our own on a loopback port, stopped on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// TLS-only: the test's own connections skip verification and present this.
    tls: Option<Option<redis::TlsCertificates>>,
    _dir: tempfile::TempDir,
}

/// A certificate authority of the test's own, made with openssl, and the
/// certificates it signs (P-256 keys, valid for 2 days).
pub struct TestCa {
    /// The CA certificate (PEM), what `tls_ca_file` names to trust it.
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    /// Creates the CA `name` in `dir`: `NAME-ca.pem` and its key.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let (cert, key) = (format!("{name}-ca.pem"), format!("{name}-ca.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=preheat test CA {name}"),
                "-keyout",
                &key,
                "-out",
                &cert,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa {
            cert: dir.join(cert),
            key: dir.join(key),
            dir: dir.to_path_buf(),
        }
    }

    /// Issues `NAME.pem` + `NAME.key` for `alt_names` (e.g. "IP:127.0.0.1,DNS:localhost"),
    /// usable by a server and by a client.
    pub fn issue(&self, name: &str, alt_names: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr, ext) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.join(&ext),
            format!("subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"),
        )
        .unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                self.cert.to_str().unwrap(),
                "-CAkey",
                self.key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &cert,
            ],
        );
        (self.dir.join(cert), self.dir.join(key))
    }
}

/// How a TLS-only [`RedisServer`] is set up.
pub struct ServerTls<'a> {
    /// Its certificate and key.
    pub cert: &'a Path,
    pub key: &'a Path,
    /// The CA it trusts for client certificates.
    pub ca: &'a Path,
    /// When set, clients must present a certificate signed by `ca`
    /// (`--tls-auth-clients yes`); the test's own connections present this one.
    pub client: Option<(&'a Path, &'a Path)>,
}

impl RedisServer {
    /// Starts a server on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    /// Starts a server on `port`, with no persistence, and waits until it answers.
    pub fn start_on(port: u16) -> RedisServer {
        RedisServer::launch(port, None)
    }

    /// Starts a TLS-only server on a free port.
    pub fn start_tls(tls: &ServerTls) -> RedisServer {
        RedisServer::launch(free_port(), Some(tls))
    }

    fn launch(port: u16, tls: Option<&ServerTls>) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path());
        let client_side = tls.map(|tls| {
            let auth = if tls.client.is_some() { "yes" } else { "no" };
            cmd.args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-auth-clients",
                auth,
            ])
            .arg("--tls-cert-file")
            .arg(tls.cert)
            .arg("--tls-key-file")
            .arg(tls.key)
            .arg("--tls-ca-cert-file")
            .arg(tls.ca);
            let _ = rustls::crypto::ring::default_provider().install_default();
            tls.client.map(|(cert, key)| redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: std::fs::read(cert).unwrap(),
                    client_key: std::fs::read(key).unwrap(),
                }),
                root_cert: None,
            })
        });
        if tls.is_none() {
            cmd.args(["--port", &port.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (install it: apt-get install redis-server)");
        let server = RedisServer {
            child: Some(child),
            port,
            tls: client_side,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(mut c) = server.try_conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return server;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "redis-server on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's URL (`rediss://` for TLS, verifying the certificate).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let client = match &self.tls {
            None => redis::Client::open(self.url())?,
            Some(None) => redis::Client::open(format!("{}#insecure", self.url()))?,
            Some(Some(certs)) => redis::Client::build_with_tls(format!("{}#insecure", self.url()), certs.clone())?,
        };
        client.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// A connection for assertions.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connecting to the test redis")
    }

    /// `GET key` as a string.
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET").arg(key).query(&mut self.conn()).unwrap()
    }

    /// `PTTL key` in ms (-1 no expiry, -2 absent).
    pub fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL").arg(key).query(&mut self.conn()).unwrap()
    }

    /// `DBSIZE`.
    pub fn dbsize(&self) -> u64 {
        redis::cmd("DBSIZE").query(&mut self.conn()).unwrap()
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A memcached of our own on a loopback port (UDP off), killed on drop; its
/// log (`-v`) is `memcached.log` in its directory.
pub struct MemcachedServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl MemcachedServer {
    /// Starts a server on a free port with memcached's defaults.
    pub fn start() -> MemcachedServer {
        MemcachedServer::start_with(&[])
    }

    /// Starts a server on a free port with extra `args` (e.g. `["-I", "2m"]`)
    /// and waits until it answers.
    pub fn start_with(args: &[&str]) -> MemcachedServer {
        use std::os::unix::fs::MetadataExt;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("memcached.log")).unwrap();
        let mut cmd = Command::new("memcached");
        cmd.args(["-l", "127.0.0.1", "-U", "0", "-v", "-p", &port.to_string()])
            .args(args);
        // memcached refuses to run as root unless told which user to be.
        if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0 {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting memcached (install it: apt-get install memcached)");
        let mut server = MemcachedServer {
            child: Some(child),
            port,
            dir,
        };
        let started = Instant::now();
        while !server.command("version").starts_with("VERSION") {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("memcached on port {port} exited ({status}): {}", server.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "memcached on port {port} did not come up: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `127.0.0.1:port`, as a client lists the server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends one text-protocol command line and returns the first reply
    /// line (empty when the server is not answering).
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(self.address()) else {
            return String::new();
        };
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        if stream.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut reply = String::new();
        let _ = BufReader::new(stream).read_line(&mut reply);
        reply.trim_end().to_string()
    }

    /// The number of items it holds (`stats` `curr_items`).
    pub fn items(&self) -> u64 {
        use std::io::{BufRead, BufReader, Write};
        let mut stream = std::net::TcpStream::connect(self.address()).unwrap();
        stream.write_all(b"stats\r\n").unwrap();
        for line in BufReader::new(stream).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("STAT curr_items ") {
                return n.trim().parse().unwrap();
            }
            assert_ne!(line, "END", "memcached stats without curr_items");
        }
        panic!("memcached closed the stats connection");
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("memcached.log")).unwrap_or_default()
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory with a config file and a report path.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A new scratch directory.
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `preheat.toml` with a compile cache shared by all tests; the text
    /// starts inside `[run]`.
    pub fn config(&self, toml: &str) -> PathBuf {
        self.config_with_cache(toml, &repo().join("target/e2e-component-cache"))
    }

    /// Writes `preheat.toml` with the compile cache in `cache`.
    pub fn config_with_cache(&self, toml: &str, cache: &Path) -> PathBuf {
        self.config_file("preheat.toml", toml, cache)
    }

    /// [`Workspace::config`] written to the file `name`, beside `preheat.toml`.
    pub fn config_named(&self, name: &str, toml: &str) -> PathBuf {
        self.config_file(name, toml, &repo().join("target/e2e-component-cache"))
    }

    fn config_file(&self, name: &str, toml: &str, cache: &Path) -> PathBuf {
        let text = format!(
            "[run]\ncache_dir = {:?}\n{}",
            cache.display().to_string(),
            toml.trim_start()
        );
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Path of the JSON report.
    pub fn report_path(&self) -> PathBuf {
        self.dir.path().join("report.json")
    }
}

/// The outcome of one `preheat` invocation.
pub struct Run {
    pub output: Output,
    pub report: Value,
}

impl Run {
    /// Exit code.
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// stderr as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The report entry of one plugin.
    pub fn plugin(&self, name: &str) -> &Value {
        self.report["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no plugin {name} in report: {}", self.report))
    }

    /// A counter of one plugin.
    pub fn count(&self, plugin: &str, counter: &str) -> u64 {
        self.plugin(plugin)[counter]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {counter} for {plugin}"))
    }

    /// Asserts the accounting invariant for every plugin and in total.
    pub fn assert_balanced(&self) {
        let mut parts = vec![&self.report["totals"]];
        parts.extend(self.report["plugins"].as_array().unwrap());
        for p in parts {
            let n = |k: &str| p[k].as_u64().unwrap();
            let outcomes = n("written")
                + n("skipped_fresh")
                + n("skipped_by_plugin")
                + n("invalid")
                + n("failed")
                + n("abandoned");
            assert_eq!(n("enumerated"), outcomes, "accounting invariant broken in {p}");
        }
    }

    /// The report's errors mentioning a plugin, joined.
    pub fn errors_of(&self, plugin: &str) -> String {
        let mut text = String::new();
        for e in self.report["errors"].as_array().unwrap() {
            if e["plugin"] == plugin {
                text.push_str(e["error"].as_str().unwrap());
                text.push('\n');
            }
        }
        if let Some(e) = self.plugin(plugin)["error"].as_str() {
            text.push_str(e);
        }
        text
    }
}

/// Runs `preheat <args>` with a report file, and parses the report.
pub fn preheat(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Run {
    let (mut cmd, report) = preheat_command(ws, args, env);
    let output = cmd.output().expect("running preheat");
    read_report(output, &report)
}

/// [`preheat`], also measuring the process's peak resident memory in bytes:
/// its `VmHWM` (a high-water mark, so any sample taken after the peak shows
/// it), read from /proc every 5 ms until it exits. (`wait4`'s `ru_maxrss`
/// would count the test process's own memory, shared until the child's exec.)
pub fn preheat_measured(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> (Run, u64) {
    let (mut cmd, report) = preheat_command(ws, args, env);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running preheat");
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(peak_kib > 0, "VmHWM of the preheat process was sampled");
    let output = Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    (read_report(output, &report), peak_kib * 1024)
}

/// The `preheat` command with a fresh report path, isolated from the caller's environment.
fn preheat_command(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> (Command, PathBuf) {
    let report = ws.report_path();
    (preheat_command_to(ws, args, env, &report), report)
}

/// Starts `preheat <args>` in the background, its report written to `report`
/// (read it with [`read_report`] once it exits).
pub fn spawn_preheat(ws: &Workspace, args: &[&str], env: &[(&str, &str)], report: &Path) -> std::process::Child {
    preheat_command_to(ws, args, env, report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting preheat")
}

/// [`preheat_command`] writing its report to `report`.
fn preheat_command_to(ws: &Workspace, args: &[&str], env: &[(&str, &str)], report: &Path) -> Command {
    let _ = std::fs::remove_file(report);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_preheat"));
    cmd.args(args)
        .arg("--report")
        .arg(report)
        .env_remove("PREHEAT_REDIS_URL")
        .env_remove("PREHEAT_SKIP")
        .env_remove("PREHEAT_DATABASE_URL")
        .env_remove("PREHEAT_SHARD")
        .env_remove("PREHEAT_RUN_GROUP")
        .env_remove("JOB_COMPLETION_INDEX")
        // Each workspace keeps its own job history.
        .env("XDG_STATE_HOME", ws.dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The run whose output is `output`, with the report it wrote to `report`.
pub fn read_report(output: Output, report: &Path) -> Run {
    let report = std::fs::read(report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report written; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    Run { output, report }
}

/// Runs `preheat <args>` without a report, with the workspace's job history.
pub fn preheat_in(ws: &Workspace, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(args)
        .env_remove("PREHEAT_REDIS_URL")
        .env_remove("PREHEAT_DATABASE_URL")
        .env("XDG_STATE_HOME", ws.dir.path())
        .output()
        .expect("running preheat")
}

/// Fills the compile cache with every plugin of `config` (`preheat check`), so
/// a test that times a run, whose deadline counts loading, does not time the compiler.
pub fn precompile(config: &Path) {
    let out = preheat_plain(&["check", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "preheat check (to fill the compile cache) failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `preheat <args>` without a report.
pub fn preheat_plain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_preheat"))
        .args(args)
        .env_remove("PREHEAT_REDIS_URL")
        .output()
        .expect("running preheat")
}

/// A PostgreSQL server of our own: initdb into a temp dir, a free loopback
/// port, trust auth; run as the `postgres` user when we are root. Stopped on drop.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    running: bool,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

impl PgServer {
    /// Creates a cluster and starts it on a free port.
    pub fn start() -> PgServer {
        let dir = tempfile::Builder::new().prefix("preheat-pg").tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let server = PgServer {
            dir,
            bin: pg_bin(),
            port: free_port(),
            running: false,
        };
        let data = server.dir.path().join("data");
        server.pg(&[
            "initdb",
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        let mut server = server;
        server.start_again();
        server.pg(&[
            "createdb",
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "postgres",
            "app",
        ]);
        server
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn start_again(&mut self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("log");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-t",
            "30",
            "start",
        ]);
        self.running = true;
    }

    /// Stops the server at once (connections are cut).
    pub fn stop(&mut self) {
        if self.running {
            let data = self.dir.path().join("data");
            self.pg(&["pg_ctl", "-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
            self.running = false;
        }
    }

    /// Runs a PostgreSQL program from the server's bin directory (as `postgres` when root).
    fn pg(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = cmd
            .args(&args[1..])
            .current_dir(self.dir.path())
            .output()
            .expect("running a PostgreSQL program");
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `statements` in a `psql` session of its own that stays open
    /// (whatever locks it takes held) until the returned child is killed.
    pub fn session(&self, statements: &str) -> std::process::Child {
        Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(), "-c", statements])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting psql")
    }

    /// URL of the `app` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/app", self.port)
    }

    /// URL of the `app` database as `reader`, a login role that may only read:
    /// SELECT on every table of `public`, now and created later (what a
    /// source must use; the superuser of [`PgServer::url`] is refused).
    pub fn reader_url(&self) -> String {
        sql(
            &self.url(),
            &[
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN CREATE ROLE reader LOGIN; END IF; END $$",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO reader",
            ],
        );
        format!("postgres://reader@127.0.0.1:{}/app", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let data = self.dir.path().join("data");
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.pg(&["pg_ctl", "-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            }));
        }
    }
}

/// Runs SQL statements against a database URL (sqlite:// or postgres://) with sqlx.
pub fn sql(url: &str, statements: &[&str]) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let options = preheat::db::DbOptions {
            read_only: false,
            create_if_missing: true,
            max_connections: 1,
            connect_timeout: Duration::from_secs(5),
        };
        let db = preheat::db::Db::connect(url, options).await.unwrap();
        let mut last = Vec::new();
        for s in statements {
            last = db.fetch_text(s, vec![]).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        last
    })
}

/// A config serving the `synthetic` plugin into `redis` behind `token`:
/// `keys` keys of 64 bytes, at most `rate` keys/s (0 = unlimited), with
/// `serve_lines` added to `[serve]` and `plugin_lines` to the plugin.
pub fn synthetic_serve_config(
    ws: &Workspace,
    redis: &RedisServer,
    token: &str,
    (keys, rate): (u64, u64),
    serve_lines: &str,
    plugin_lines: &str,
) -> PathBuf {
    ws.config(&format!(
        "[backend]\nkind = \"redis\"\nurl = \"{}\"\n[serve]\ntoken = \"{token}\"\n{serve_lines}\n[[plugins]]\nname = \"synthetic\"\npath = {:?}\nkey_prefixes = [\"synthetic:\"]\nrate_limit = {rate}\n{plugin_lines}\n[plugins.settings]\nkeys = \"{keys}\"\nvalue_size = \"64\"\n",
        redis.url(),
        plugin("synthetic").display().to_string(),
    ))
}

/// A Python venv under `target/<name>` holding the pinned `packages` (from
/// PyPI), made when `pinned` says the one there does not hold them. Returns
/// the venv's directory.
pub fn python_venv(name: &str, packages: &[&str], pinned: impl Fn(&Path) -> bool) -> PathBuf {
    let venv = repo().join("target").join(name);
    if pinned(&venv) {
        return venv;
    }
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .output()
        .expect("running python3 -m venv (install python3-venv: scripts/setup.sh)");
    assert!(
        made.status.success(),
        "python3 -m venv: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages)
        .output()
        .expect("running pip");
    assert!(
        pip.status.success(),
        "pip install {packages:?}: {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    assert!(pinned(&venv), "{packages:?} are not usable from {}", venv.display());
    venv
}

/// Asserts that `text` contains every one of `needles`, naming the first missing one.
#[track_caller]
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

/// A `preheat serve` child process on a free loopback port, killed on drop
/// (also when the test panics).
pub struct ServeProcess {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Bearer token sent with POSTs, when set.
    pub token: Option<String>,
}

impl ServeProcess {
    /// [`ServeProcess::start`], sending `token` with every mutating request.
    pub fn start_with_token(ws: &Workspace, config: &Path, extra: &[&str], token: &str) -> ServeProcess {
        let mut serve = ServeProcess::start(ws, config, extra);
        serve.token = Some(token.into());
        serve
    }

    /// Starts `preheat serve --config CONFIG [extra args]` and waits until `/healthz` answers.
    pub fn start(ws: &Workspace, config: &Path, extra: &[&str]) -> ServeProcess {
        let port = free_port();
        let log = ws.dir.path().join(format!("serve-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_preheat"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env_remove("PREHEAT_REDIS_URL")
            .env_remove("PREHEAT_DATABASE_URL")
            .env_remove("PREHEAT_API_TOKEN")
            .env("XDG_STATE_HOME", ws.dir.path())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting preheat serve");
        let mut serve = ServeProcess {
            child,
            log,
            base: format!("http://127.0.0.1:{port}"),
            token: None,
        };
        serve.wait_healthy();
        serve
    }

    /// Everything serve logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into()
    }

    fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<(u16, Value), String> {
        let mut response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
    }

    /// GET `path`: status and JSON body (a string when not JSON).
    pub fn get(&self, path: &str) -> (u16, Value) {
        Self::answer(Self::agent().get(format!("{}{path}", self.base)).call())
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    /// GET `path` as text.
    pub fn get_text(&self, path: &str) -> (u16, String) {
        let (status, body) = self.get(path);
        match body {
            Value::String(s) => (status, s),
            other => (status, other.to_string()),
        }
    }

    /// POST a raw body (JSON content type) with the bearer token when set.
    pub fn post_raw(&self, path: &str, body: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = Self::agent()
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        Self::answer(request.send(body)).unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log()))
    }

    /// POST JSON with the configured token.
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string(), self.token.as_deref())
    }

    /// Waits until no run is active and returns the status document.
    pub fn wait_idle(&self) -> Value {
        let mut status = Value::Null;
        wait_for("serve to be idle", Duration::from_secs(60), || {
            status = self.get("/cache/warming/status").1;
            status["status"] == "idle"
        });
        status
    }

    fn wait_healthy(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = Self::answer(Self::agent().get(format!("{}/healthz", self.base)).call()) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("preheat serve exited ({status}) before it was healthy:\n{}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "preheat serve did not answer GET /healthz within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`TERM`, `HUP`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut code = None;
        wait_for("serve to exit", Duration::from_secs(60), || {
            code = self.child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The Redis Cluster the tests start, shared with the benchmark suite (which
// bench_smoke.rs loads into this crate too: the file is a module twice here).
#[path = "cluster_nodes.rs"]
#[allow(clippy::duplicate_mod)]
mod cluster_nodes;
pub use cluster_nodes::{wait_for, ClusterNode, RedisCluster};
