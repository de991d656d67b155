//! Progress display: a bar on a terminal, a line every few seconds otherwise.

use crate::exec::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a progress line is logged when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Shows progress until the returned handle is stopped.
pub struct ProgressDisplay {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl ProgressDisplay {
    /// Starts displaying `progress`; `quiet` shows nothing.
    pub fn start(progress: Arc<Progress>, quiet: bool) -> ProgressDisplay {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} keys {per_sec} ETA {eta} {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
        let started = Instant::now();
        let task = tokio::spawn({
            let bar = bar.clone();
            async move {
                let mut last_line = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let s = progress.snapshot();
                    if let Some(bar) = &bar {
                        bar.set_length(s.enumerated);
                        bar.set_position(s.finished);
                        bar.set_message(if s.enumeration_done { "" } else { "(listing…)" });
                    } else if !quiet && last_line.elapsed() >= LINE_EVERY {
                        last_line = Instant::now();
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        let rate = s.finished as f64 / secs;
                        let eta = if s.enumeration_done && rate > 0.0 {
                            format!("{:.0}s", (s.enumerated - s.finished) as f64 / rate)
                        } else {
                            "unknown".into()
                        };
                        tracing::info!(
                            "progress: {}/{} keys done, {} written, {rate:.0} keys/s, ETA {eta}",
                            s.finished,
                            s.enumerated,
                            s.written
                        );
                    }
                }
            }
        });
        ProgressDisplay { task, bar }
    }

    /// Stops and clears the display.
    pub fn stop(self) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
