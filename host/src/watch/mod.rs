//! Hot reload (`preheat watch`): watches every plugin's `.wasm` and the config
//! file; on a change (debounced) it compiles the new version off the hot path,
//! swaps it in only when it loads, and re-runs what changed. A half-written or
//! broken file never replaces the working version; an invalid config edit keeps
//! the previous config. `serve --watch` uses the same `Session` and `Changes`.
//!
//! `preheat watch` runs are a development loop: they are not recorded in the
//! job history and take no run lock (`preheat status` does not show them);
//! re-runs of `serve --watch` are serve runs, recorded like the others.

use crate::backend::Backend;
use crate::config::Config;
use crate::exec::{RunOptions, Warmer};
use crate::report::render_summary;
use crate::sources::SourceSet;
use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Quiet time after the first event before acting (editors and cargo write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// An absolute path, without touching the file system beyond the current directory.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The state of a watch session: the config and the engine (with its backend).
pub(crate) struct Session {
    config_path: PathBuf,
    warmer: Arc<Warmer>,
}

impl Session {
    /// Loads the config, connects the backend and loads every plugin; `previous`
    /// supplies the last good version of a plugin whose file does not load now.
    pub(crate) async fn start(config_path: &Path, previous: Option<&Session>) -> Result<Session> {
        let warmer = Arc::new(Warmer::new(Config::load(config_path)?)?);
        let backend = warmer.backend().await?;
        let session = Session {
            config_path: absolute(config_path),
            warmer,
        };
        session.preload_all(&backend, previous).await;
        Ok(session)
    }

    /// Loads every plugin now, so a later broken file has a working version to fall back on.
    async fn preload_all(&self, backend: &Backend, previous: Option<&Session>) {
        let sources = SourceSet::connect(&self.warmer.config().sources).await;
        for plugin in self.warmer.config().enabled_plugins() {
            match self.warmer.load_plugin(plugin, backend.clone(), &sources).await {
                Ok(loaded) => self.warmer.install(loaded),
                Err(e) => match previous.and_then(|p| p.warmer.installed(&plugin.name, &plugin.path)) {
                    Some(old) => {
                        tracing::error!(plugin = %plugin.name, "{e:#}; keeping the previous version");
                        self.warmer.install(old);
                    }
                    None => tracing::error!(plugin = %plugin.name, "{e:#}"),
                },
            }
        }
    }

    /// The engine, with the last good version of every plugin installed.
    pub(crate) fn warmer(&self) -> Arc<Warmer> {
        self.warmer.clone()
    }

    /// Files to react to: the config and every enabled plugin's component.
    pub(crate) fn watched_files(&self) -> BTreeSet<PathBuf> {
        let mut files: BTreeSet<PathBuf> = self
            .warmer
            .config()
            .enabled_plugins()
            .map(|p| absolute(&p.path))
            .collect();
        files.insert(self.config_path.clone());
        files
    }

    async fn run(&self, only: Option<Vec<String>>) {
        let options = RunOptions {
            strategy: "watch".into(),
            only,
            ..RunOptions::default()
        };
        let report = self.warmer.execute(options).await;
        eprint!("{}", render_summary(&report));
    }

    /// Applies a batch of changed files; returns what to re-run (`None` = nothing,
    /// `Some(None)` = everything after a config change, `Some(Some(names))` = those plugins).
    pub(crate) async fn apply(&mut self, changed: &BTreeSet<PathBuf>, since: Instant) -> Option<Option<Vec<String>>> {
        if changed.contains(&self.config_path) {
            return match Session::start(&self.config_path, Some(self)).await {
                Ok(session) => {
                    *self = session;
                    tracing::info!(
                        reload_ms = since.elapsed().as_millis() as u64,
                        "config reloaded; re-running every plugin"
                    );
                    Some(None)
                }
                Err(e) => {
                    tracing::error!("config change rejected, keeping the previous config: {e:#}");
                    None
                }
            };
        }
        // Connected when the session started: this does not connect again.
        let backend = match self.warmer.backend().await {
            Ok(backend) => backend,
            Err(e) => {
                tracing::error!("plugins not reloaded: {e:#}");
                return None;
            }
        };
        let sources = SourceSet::connect(&self.warmer.config().sources).await;
        let mut reloaded = Vec::new();
        for plugin in self
            .warmer
            .config()
            .enabled_plugins()
            .filter(|p| changed.contains(&absolute(&p.path)))
        {
            match self.warmer.load_plugin(plugin, backend.clone(), &sources).await {
                Ok(loaded) => {
                    self.warmer.install(loaded);
                    tracing::info!(
                        plugin = %plugin.name,
                        reload_ms = since.elapsed().as_millis() as u64,
                        "plugin reloaded (file event to new version live)"
                    );
                    reloaded.push(plugin.name.clone());
                }
                Err(e) => {
                    tracing::error!(plugin = %plugin.name, "new version rejected, keeping the previous one: {e:#}")
                }
            }
        }
        (!reloaded.is_empty()).then_some(Some(reloaded))
    }
}

/// Debounced changes to a set of files.
pub(crate) struct Changes {
    watcher: notify::RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<PathBuf>,
    files: BTreeSet<PathBuf>,
}

impl Changes {
    /// Starts watching the directories holding `files` (non-recursively).
    pub(crate) fn new(files: BTreeSet<PathBuf>) -> Result<Changes> {
        let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                if !matches!(event.kind, notify::EventKind::Access(_)) {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            }
        })
        .context("starting the file watcher")?;
        let mut changes = Changes {
            watcher,
            rx,
            files: BTreeSet::new(),
        };
        changes.set_files(files)?;
        Ok(changes)
    }

    /// Watches these files from now on.
    pub(crate) fn set_files(&mut self, files: BTreeSet<PathBuf>) -> Result<()> {
        if files == self.files {
            return Ok(());
        }
        let dirs: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
        for dir in dirs {
            self.watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
        }
        self.files = files;
        Ok(())
    }

    /// How many files are watched.
    pub(crate) fn len(&self) -> usize {
        self.files.len()
    }

    /// Waits for the next burst of changes to watched files (debounced); returns
    /// them with the time of the first event. `None` when the watcher stopped.
    pub(crate) async fn next(&mut self) -> Option<(BTreeSet<PathBuf>, Instant)> {
        loop {
            let first = self.rx.recv().await?;
            let since = Instant::now();
            let mut changed = BTreeSet::from([first]);
            while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, self.rx.recv()).await {
                changed.insert(path);
            }
            changed.retain(|p| self.files.contains(p));
            if !changed.is_empty() {
                return Some((changed, since));
            }
        }
    }
}

/// Runs everything once, then reloads and re-runs on every change until Ctrl-C.
pub async fn watch(config_path: &Path) -> Result<()> {
    let mut session = Session::start(config_path, None).await?;
    let mut changes = Changes::new(session.watched_files())?;
    session.run(None).await;
    tracing::info!(
        files = changes.len(),
        "watching the config and plugins for changes (Ctrl-C to stop)"
    );
    loop {
        let (changed, since) = tokio::select! {
            change = changes.next() => match change { Some(c) => c, None => return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        if let Some(only) = session.apply(&changed, since).await {
            changes.set_files(session.watched_files())?;
            session.run(only).await;
        }
    }
}
