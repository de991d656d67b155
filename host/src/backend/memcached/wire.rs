//! The memcached wire side: one server's bounded connection pool, and
//! pipelined exchanges in the meta protocol (memcached 1.6+: `ms`, `mg`,
//! `mn`) plus `stats`. A request is written while its replies are read, so
//! a batch larger than the socket buffers cannot stall either side; every
//! exchange runs under the pool's I/O timeout, and every line and value a
//! server sends is bounded before it is held.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Longest reply line a server may send (meta replies are a code and a few flags).
const MAX_LINE_BYTES: usize = 8 << 10;

/// memcached's default `-I` (item_size_max), assumed until a server says its own.
pub const DEFAULT_ITEM_SIZE_MAX: u64 = 1 << 20;

/// One reply of the meta protocol (or a line of `stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A two-letter code (`HD`, `NS`, `EX`, `NF`, `EN`, `MN`) and its flags.
    Status { code: String, flags: Vec<String> },
    /// `VA <size> <flags>*` and the value.
    Value { flags: Vec<String>, data: Vec<u8> },
    /// `ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`: the server's words.
    Error(String),
}

impl Reply {
    /// The value of flag `f` (`t123` → `Some("123")`) in a status or value reply.
    pub fn flag(&self, f: char) -> Option<&str> {
        let flags = match self {
            Reply::Status { flags, .. } | Reply::Value { flags, .. } => flags,
            Reply::Error(_) => return None,
        };
        flags.iter().find_map(|t| t.strip_prefix(f))
    }
}

/// An open connection: its halves, so a request is written while replies are read.
struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

/// One memcached server: its address, a bounded pool of connections, and
/// the largest item it stores.
pub struct Server {
    address: String,
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
    connect_timeout: Duration,
    io_timeout: Duration,
    item_size_max: AtomicU64,
}

/// What an exchange with one server failed on.
#[derive(Debug)]
pub struct WireError {
    /// What happened, naming the server.
    pub message: String,
    /// It failed on a connection taken from the pool, which may have gone
    /// stale while idle (a server restart): a fresh one may succeed.
    pub on_reused: bool,
}

impl Server {
    /// A server with at most `max_connections` open connections.
    pub fn new(address: String, max_connections: usize, connect_timeout: Duration, io_timeout: Duration) -> Server {
        Server {
            address,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_connections),
            connect_timeout,
            io_timeout,
            item_size_max: AtomicU64::new(DEFAULT_ITEM_SIZE_MAX),
        }
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The server's `item_size_max` (learned on each new connection).
    pub fn item_size_max(&self) -> u64 {
        self.item_size_max.load(Ordering::Relaxed)
    }

    /// Sends `request` (`replies` commands) and reads one reply per command,
    /// in order, on a pooled connection, all within the I/O timeout. A value
    /// longer than `max_value` bytes fails the exchange.
    pub async fn exchange(&self, request: &[u8], replies: usize, max_value: u64) -> Result<Vec<Reply>, WireError> {
        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        let reused = self.idle.lock().expect("pool lock").pop();
        let on_reused = reused.is_some();
        let fail = |message: String| WireError { message, on_reused };
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.open().await.map_err(fail)?,
        };
        let exchanged = tokio::time::timeout(self.io_timeout, async {
            let Conn { reader, writer } = &mut conn;
            let write = async {
                writer.write_all(request).await?;
                writer.flush().await
            };
            let read = async {
                let mut out = Vec::with_capacity(replies);
                for _ in 0..replies {
                    out.push(read_reply(reader, max_value).await?);
                }
                Ok::<_, io::Error>(out)
            };
            tokio::try_join!(write, read).map(|((), out)| out)
        })
        .await;
        match exchanged {
            Ok(Ok(out)) => {
                // A server that refused a command line may not be in step
                // with the next one: such a connection is not reused.
                if !out.iter().any(|r| matches!(r, Reply::Error(e) if !e.starts_with("SERVER_ERROR"))) {
                    self.idle.lock().expect("pool lock").push(conn);
                }
                Ok(out)
            }
            Ok(Err(e)) => Err(fail(format!("memcached {}: {e}", self.address))),
            Err(_) => Err(fail(format!(
                "memcached {}: no complete answer within io_timeout = {:?} (the server is down, overloaded, or the batch is too large for the timeout)",
                self.address, self.io_timeout
            ))),
        }
    }

    /// `stats` (or `stats settings`): name → value.
    pub async fn stats(&self, which: &str) -> Result<Vec<(String, String)>, WireError> {
        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        let reused = self.idle.lock().expect("pool lock").pop();
        let mut conn = match reused {
            Some(conn) => conn,
            None => self.open().await.map_err(|message| WireError {
                message,
                on_reused: false,
            })?,
        };
        let read = tokio::time::timeout(self.io_timeout, stats_on(&mut conn, which)).await;
        match read {
            Ok(Ok(stats)) => {
                self.idle.lock().expect("pool lock").push(conn);
                Ok(stats)
            }
            Ok(Err(e)) => Err(WireError {
                message: format!("memcached {} stats: {e}", self.address),
                on_reused: false,
            }),
            Err(_) => Err(WireError {
                message: format!(
                    "memcached {} stats: no answer within io_timeout = {:?}",
                    self.address, self.io_timeout
                ),
                on_reused: false,
            }),
        }
    }

    /// Connects, checks that the server speaks the meta protocol (`mn` → `MN`),
    /// and learns its `item_size_max`.
    async fn open(&self) -> Result<Conn, String> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| {
                format!(
                    "memcached {}: no connection within connect_timeout = {:?}",
                    self.address, self.connect_timeout
                )
            })?
            .map_err(|e| {
                format!(
                    "memcached {}: cannot connect: {e} (is the server running and [backend] servers right?)",
                    self.address
                )
            })?;
        stream.set_nodelay(true).ok();
        let (reader, writer) = stream.into_split();
        let mut conn = Conn {
            reader: BufReader::with_capacity(64 << 10, reader),
            writer,
        };
        let hello = tokio::time::timeout(self.io_timeout, async {
            conn.writer.write_all(b"mn\r\n").await?;
            let mn = read_reply(&mut conn.reader, 0).await?;
            if !matches!(&mn, Reply::Status { code, .. } if code == "MN") {
                return Err(io::Error::other(format!(
                    "answered {mn:?} to `mn`: memcached 1.6 or later is needed (the meta protocol)"
                )));
            }
            stats_on(&mut conn, "settings").await
        })
        .await
        .map_err(|_| {
            format!(
                "memcached {}: no answer within io_timeout = {:?}",
                self.address, self.io_timeout
            )
        })?
        .map_err(|e| format!("memcached {}: {e}", self.address))?;
        if let Some(max) = hello
            .iter()
            .find(|(k, _)| k == "item_size_max")
            .and_then(|(_, v)| v.parse().ok())
        {
            self.item_size_max.store(max, Ordering::Relaxed);
        }
        Ok(conn)
    }
}

/// `stats <which>` on `conn`: the `STAT name value` lines up to `END`, at most 1,000.
async fn stats_on(conn: &mut Conn, which: &str) -> io::Result<Vec<(String, String)>> {
    let command = if which.is_empty() {
        "stats\r\n".to_string()
    } else {
        format!("stats {which}\r\n")
    };
    conn.writer.write_all(command.as_bytes()).await?;
    let mut stats = Vec::new();
    loop {
        let line = read_line(&mut conn.reader).await?;
        if line == "END" {
            return Ok(stats);
        }
        let Some(stat) = line.strip_prefix("STAT ") else {
            return Err(io::Error::other(format!(
                "answered {line:?} to `{}`",
                command.trim_end()
            )));
        };
        if stats.len() == 1000 {
            return Err(io::Error::other("sent over 1000 stats lines"));
        }
        let (name, value) = stat.split_once(' ').unwrap_or((stat, ""));
        stats.push((name.to_string(), value.to_string()));
    }
}

/// One line without its CRLF, at most [`MAX_LINE_BYTES`], as text.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>) -> io::Result<String> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if line.len() > MAX_LINE_BYTES {
            return Err(io::Error::other(format!(
                "sent a reply line over {MAX_LINE_BYTES} bytes"
            )));
        }
        if done {
            line.truncate(line.len() - 1);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return String::from_utf8(line).map_err(|_| io::Error::other("sent a reply line that is not text"));
        }
    }
}

/// One meta reply; a `VA` value over `max_value` bytes is refused unread.
async fn read_reply(reader: &mut BufReader<OwnedReadHalf>, max_value: u64) -> io::Result<Reply> {
    let line = read_line(reader).await?;
    if line == "ERROR" || line.starts_with("CLIENT_ERROR") || line.starts_with("SERVER_ERROR") {
        return Ok(Reply::Error(line));
    }
    let mut tokens = line.split(' ');
    let code = tokens.next().unwrap_or_default().to_string();
    if code == "VA" {
        let size: u64 = tokens
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("sent {line:?}: a VA without its size")))?;
        if size > max_value {
            return Err(io::Error::other(format!(
                "sent a {size}-byte value, over the {max_value} bytes asked for"
            )));
        }
        let mut data = vec![0; size as usize + 2];
        reader.read_exact(&mut data).await?;
        if !data.ends_with(b"\r\n") {
            return Err(io::Error::other("sent a value not ended by CRLF"));
        }
        data.truncate(size as usize);
        return Ok(Reply::Value {
            flags: tokens.map(str::to_string).collect(),
            data,
        });
    }
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(io::Error::other(format!(
            "sent {:?}, not a meta reply",
            crate::report::clip(&line, 80)
        )));
    }
    Ok(Reply::Status {
        code,
        flags: tokens.map(str::to_string).collect(),
    })
}
