//! Row 11: preheat writing to one memcached server against a raw client
//! pipelining the same adds, in keys per second and in client CPU time per
//! key (`getrusage(RUSAGE_SELF)` user + system: the benchmark process's
//! threads, not the server's).

use super::{key, native, process_cpu_ns, raw_writes};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Connections (each with one pipeline in flight) and keys per pipeline of
/// the raw client: preheat's defaults (`concurrency = 8`, `batch_size = 256`).
const RAW_CONNECTIONS: usize = 8;

/// A memcached of our own on a free loopback port (UDP off, 1 GiB of memory
/// so nothing is evicted); killed on drop.
pub struct MemcachedServer {
    child: Child,
    pub port: u16,
}

impl MemcachedServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> Result<MemcachedServer, String> {
        use std::os::unix::fs::MetadataExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut cmd = Command::new("memcached");
        cmd.args(["-l", "127.0.0.1", "-U", "0", "-m", "1024", "-p", &port.to_string()]);
        if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0 {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting memcached (apt-get install memcached): {e}"))?;
        let server = MemcachedServer { child, port };
        let started = Instant::now();
        while server.command("version").is_err() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err(format!("memcached on port {port} did not come up"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One command line; the first reply line.
    fn command(&self, line: &str) -> Result<String, String> {
        use std::io::{BufRead, Write};
        let mut stream = std::net::TcpStream::connect(self.address()).map_err(|e| e.to_string())?;
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut reply)
            .map_err(|e| e.to_string())?;
        Ok(reply)
    }

    /// Drops every item, so each measurement adds into an empty server.
    pub fn flush(&self) {
        self.command("flush_all").expect("flush_all on the benchmark memcached");
    }
}

impl Drop for MemcachedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys per second and client CPU ns per key of one run.
pub struct Figures {
    pub keys_per_s: f64,
    pub cpu_ns_per_key: f64,
}

/// Pipelined meta adds (`ms <key> <size> T3600 ME`), one pipeline of 256 in
/// flight on each of 8 connections, values built as the synthetic plugin's.
pub async fn raw_client(server: &MemcachedServer, keys: u64, value_size: usize) -> Result<Figures, String> {
    let mut connections = Vec::new();
    for _ in 0..RAW_CONNECTIONS {
        let stream = tokio::net::TcpStream::connect(server.address())
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (reader, writer) = stream.into_split();
        connections.push((BufReader::new(reader), writer, String::new(), Vec::new()));
    }
    let (cpu, started) = (process_cpu_ns(), Instant::now());
    raw_writes(
        connections,
        keys,
        move |(mut reader, mut writer, mut line, mut request), range| async move {
            request.clear();
            for i in range.clone() {
                let value = native::value(i, value_size);
                request.extend_from_slice(format!("ms {} {} T3600 ME\r\n", key(i), value.len()).as_bytes());
                request.extend_from_slice(&value);
                request.extend_from_slice(b"\r\n");
            }
            writer.write_all(&request).await.map_err(|e| e.to_string())?;
            let mut written = 0;
            for _ in range {
                line.clear();
                reader.read_line(&mut line).await.map_err(|e| e.to_string())?;
                written += u64::from(line == "HD\r\n");
            }
            Ok(((reader, writer, line, request), written))
        },
    )
    .await?;
    let (secs, cpu) = (started.elapsed().as_secs_f64(), process_cpu_ns() - cpu);
    Ok(Figures {
        keys_per_s: keys as f64 / secs,
        cpu_ns_per_key: cpu as f64 / keys as f64,
    })
}
