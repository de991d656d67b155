//! Hot reload (`preheat watch`): watches every plugin's `.wasm` and the config
//! file; on a change (debounced) it compiles the new version off the hot path,
//! swaps it in only when it loads, and re-runs what changed. A half-written or
//! broken file never replaces the working version; an invalid config edit keeps
//! the previous config.

use crate::backend::Backend;
use crate::config::Config;
use crate::exec::{RunOptions, Warmer};
use crate::report::render_summary;
use crate::sources::SourceSet;
use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Quiet time after the first event before acting (editors and cargo write in bursts).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// An absolute path, without touching the file system beyond the current directory.
fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The state of a watch session: the config, the engine and its backend.
struct Session {
    config_path: PathBuf,
    warmer: Warmer,
    backend: Backend,
}

impl Session {
    /// Loads the config, connects the backend and loads every plugin; `previous`
    /// supplies the last good version of a plugin whose file does not load now.
    async fn start(config_path: &Path, previous: Option<&Session>) -> Result<Session> {
        let config = Config::load(config_path)?;
        let backend = Backend::connect(&config.backend).await?;
        let warmer = Warmer::new(config)?;
        let session = Session {
            config_path: absolute(config_path),
            warmer,
            backend,
        };
        session.preload_all(previous).await;
        Ok(session)
    }

    /// Loads every plugin now, so a later broken file has a working version to fall back on.
    async fn preload_all(&self, previous: Option<&Session>) {
        let sources = SourceSet::connect(&self.warmer.config().sources).await;
        for plugin in self.warmer.config().enabled_plugins() {
            match self.warmer.load_plugin(plugin, self.backend.clone(), &sources).await {
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

    /// Files to react to: the config and every enabled plugin's component.
    fn watched_files(&self) -> BTreeSet<PathBuf> {
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
        let report = self.warmer.run_with_backend(self.backend.clone(), options).await;
        eprint!("{}", render_summary(&report));
    }

    /// Applies a batch of changed files; returns what to re-run (`None` = nothing).
    async fn apply(&mut self, changed: &BTreeSet<PathBuf>, since: Instant) -> Option<Option<Vec<String>>> {
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
        let sources = SourceSet::connect(&self.warmer.config().sources).await;
        let mut reloaded = Vec::new();
        for plugin in self
            .warmer
            .config()
            .enabled_plugins()
            .filter(|p| changed.contains(&absolute(&p.path)))
        {
            match self.warmer.load_plugin(plugin, self.backend.clone(), &sources).await {
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

/// Watches the directories holding `files` (non-recursively).
fn watch_dirs(watcher: &mut impl Watcher, files: &BTreeSet<PathBuf>) -> Result<()> {
    let dirs: BTreeSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    for dir in dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    Ok(())
}

/// Runs everything once, then reloads and re-runs on every change until Ctrl-C.
pub async fn watch(config_path: &Path) -> Result<()> {
    let mut session = Session::start(config_path, None).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        }
    })
    .context("starting the file watcher")?;
    let mut files = session.watched_files();
    watch_dirs(&mut watcher, &files)?;
    session.run(None).await;
    tracing::info!(
        files = files.len(),
        "watching the config and plugins for changes (Ctrl-C to stop)"
    );
    loop {
        let first = tokio::select! {
            path = rx.recv() => match path { Some(p) => p, None => return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let since = Instant::now();
        let mut changed = BTreeSet::from([first]);
        while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
            changed.insert(path);
        }
        changed.retain(|p| files.contains(p));
        if changed.is_empty() {
            continue;
        }
        if let Some(only) = session.apply(&changed, since).await {
            let now_watched = session.watched_files();
            if now_watched != files {
                files = now_watched;
                watch_dirs(&mut watcher, &files)?;
            }
            session.run(only).await;
        }
    }
}
