//! Guest stdout/stderr and `log()`: each line goes to the host log tagged with
//! the plugin's name, escaped, capped and rate-limited (see `log_limit`); the
//! last stderr lines are kept so a trap report can show a panic message.

use super::log_limit::{sanitize, PluginLog, MAX_LOG_MESSAGE_BYTES};
use super::Level;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Lines of stderr kept for error reports.
const TAIL_LINES: usize = 16;

/// The output sink of one plugin instance.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    log: Arc<PluginLog>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl GuestOutput {
    /// A sink writing to the plugin's (shared, rate-limited) log.
    pub(crate) fn new(log: Arc<PluginLog>) -> GuestOutput {
        GuestOutput {
            log,
            stderr_tail: Arc::default(),
        }
    }

    /// A message of the `log()` import.
    pub(crate) fn log(&self, level: Level, message: &str) {
        self.log.emit(level, "log", message, 0);
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

    /// One output line; `cut` bytes of it were dropped already (over the cap).
    fn emit(&self, stream: &'static str, line: &str, cut: usize) {
        let line = line.trim_end_matches('\r');
        if stream == "stderr" {
            self.log.emit(Level::Warn, stream, line, cut);
            let mut tail = self.stderr_tail.lock().unwrap();
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(sanitize(line, cut));
        } else {
            self.log.emit(Level::Info, stream, line, cut);
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
            cut: 0,
        })
    }
}

/// Splits written bytes into lines and logs each one; holds at most
/// [`MAX_LOG_MESSAGE_BYTES`] of a line and counts the rest as cut.
struct LineWriter {
    output: GuestOutput,
    name: &'static str,
    pending: Vec<u8>,
    cut: usize,
}

impl LineWriter {
    fn flush_line(&mut self) {
        if !self.pending.is_empty() || self.cut > 0 {
            let line = String::from_utf8_lossy(&self.pending).into_owned();
            self.output.emit(self.name, &line, self.cut);
            self.pending.clear();
            self.cut = 0;
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut rest = buf;
        loop {
            let (part, newline) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], Some(i)),
                None => (rest, None),
            };
            let room = MAX_LOG_MESSAGE_BYTES.saturating_sub(self.pending.len());
            let kept = part.len().min(room);
            self.pending.extend_from_slice(&part[..kept]);
            self.cut += part.len() - kept;
            match newline {
                Some(i) => {
                    self.flush_line();
                    rest = &rest[i + 1..];
                }
                None => break,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_lines_and_long_lines_are_cut_with_the_count() {
        let output = GuestOutput::new(Arc::new(PluginLog::new("p".into())));
        let mut writer = Box::into_pin(output.stream("stderr").async_stream());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut write = |bytes: &[u8]| {
            let written = writer.as_mut().poll_write(&mut cx, bytes);
            assert!(matches!(written, Poll::Ready(Ok(n)) if n == bytes.len()));
        };
        write(b"one\ntwo");
        write(b" more\nforged\rline\x1b\n");
        write(&[b'x'; MAX_LOG_MESSAGE_BYTES + 10]);
        write(b"\n");
        let tail = output.tail();
        let lines: Vec<&str> = tail.lines().collect();
        assert_eq!(lines[..3], ["one", "two more", "forged\\rline\\u{1b}"]);
        assert_eq!(
            lines[3].len(),
            MAX_LOG_MESSAGE_BYTES + "… [truncated: 10 more bytes]".len()
        );
        assert!(
            lines[3].ends_with("… [truncated: 10 more bytes]"),
            "{}",
            &lines[3][MAX_LOG_MESSAGE_BYTES..]
        );
    }
}
