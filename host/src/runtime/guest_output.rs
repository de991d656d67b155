//! Guest stdout/stderr: each line goes to the host log tagged with the plugin's
//! name; the last stderr lines are kept so a trap report can show a panic message.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Lines of stderr kept for error reports.
const TAIL_LINES: usize = 16;
/// A line longer than this is cut (a guest must not grow host memory unbounded).
const MAX_LINE: usize = 8 * 1024;

/// The output sink of one plugin instance.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    plugin: Arc<str>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl GuestOutput {
    pub(crate) fn new(plugin: Arc<str>) -> GuestOutput {
        GuestOutput {
            plugin,
            stderr_tail: Arc::default(),
        }
    }

    /// A WASI output stream for `name` ("stdout" or "stderr").
    pub(crate) fn stream(&self, name: &'static str) -> GuestStream {
        GuestStream {
            output: self.clone(),
            name,
        }
    }

    /// Forgets stderr lines from earlier calls.
    pub(crate) fn clear_tail(&self) {
        self.stderr_tail.lock().unwrap().clear();
    }

    /// The stderr lines written since the last [`GuestOutput::clear_tail`], joined.
    pub(crate) fn tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap();
        tail.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    fn emit(&self, stream: &'static str, line: &str) {
        let line = line.trim_end_matches('\r');
        if stream == "stderr" {
            tracing::warn!(plugin = %self.plugin, stream, "{line}");
            let mut tail = self.stderr_tail.lock().unwrap();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.to_string());
        } else {
            tracing::info!(plugin = %self.plugin, stream, "{line}");
        }
    }
}

/// One of a guest's output streams.
pub(crate) struct GuestStream {
    output: GuestOutput,
    name: &'static str,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            output: self.output.clone(),
            name: self.name,
            pending: Vec::new(),
        })
    }
}

/// Splits written bytes into lines and logs each one.
struct LineWriter {
    output: GuestOutput,
    name: &'static str,
    pending: Vec<u8>,
}

impl LineWriter {
    fn flush_line(&mut self) {
        if !self.pending.is_empty() {
            let line = String::from_utf8_lossy(&self.pending).into_owned();
            self.output.emit(self.name, &line);
            self.pending.clear();
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        for &b in buf {
            if b == b'\n' {
                self.flush_line();
            } else if self.pending.len() < MAX_LINE {
                self.pending.push(b);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flush_line();
        Poll::Ready(Ok(()))
    }
}
