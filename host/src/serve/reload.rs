//! Config reload on SIGHUP, and with `serve --watch` hot reload of plugins and
//! the config (the same [`crate::watch::Session`] as `preheat watch`), re-running
//! what changed through the service's runs so the dashboard shows it.

use super::runs::RunRequest;
use super::Shared;
use crate::config::Config;
use crate::exec::Warmer;
use crate::watch::{Changes, Session};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

/// Reacts to SIGHUP (and, when `watch`, to file changes) until shutdown.
pub(super) async fn reload_loop(shared: Arc<Shared>, watch: bool) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("cannot listen for SIGHUP (config reload disabled): {e}");
            None
        }
    };
    let mut session = None;
    let mut changes = None;
    if watch {
        match Session::start(&shared.config_path, None).await {
            Ok(s) => {
                shared.install(s.warmer());
                match Changes::new(s.watched_files()) {
                    Ok(c) => {
                        tracing::info!(files = c.len(), "watching the config and plugins for changes");
                        changes = Some(c);
                    }
                    Err(e) => tracing::error!("hot reload disabled: {e:#}"),
                }
                session = Some(s);
                rerun(&shared, Vec::new());
            }
            Err(e) => tracing::error!("hot reload disabled: {e:#}"),
        }
    }
    loop {
        let hup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let change = async {
            match changes.as_mut() {
                Some(c) => c.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = hup => {
                tracing::info!("SIGHUP: reloading the config");
                match session.as_mut() {
                    Some(s) => {
                        let config = BTreeSet::from([crate::watch::absolute(&shared.config_path)]);
                        apply(&shared, s, changes.as_mut(), &config, Instant::now(), false).await;
                    }
                    None => reload_config(&shared),
                }
            }
            Some((changed, since)) = change => {
                if let Some(s) = session.as_mut() {
                    apply(&shared, s, changes.as_mut(), &changed, since, true).await;
                }
            }
            _ = shared.shutdown.cancelled() => return,
        }
    }
}

/// Applies changed files to the watch session; installs the result and re-runs what changed.
async fn apply(
    shared: &Arc<Shared>,
    session: &mut Session,
    changes: Option<&mut Changes>,
    changed: &BTreeSet<std::path::PathBuf>,
    since: Instant,
    run: bool,
) {
    let Some(only) = session.apply(changed, since).await else {
        return;
    };
    shared.install(session.warmer());
    if let Some(changes) = changes {
        if let Err(e) = changes.set_files(session.watched_files()) {
            tracing::error!("{e:#}");
        }
    }
    if run {
        rerun(shared, only.unwrap_or_default());
    }
}

/// Starts a `watch` run of these plugins (all when empty).
fn rerun(shared: &Arc<Shared>, plugins: Vec<String>) {
    let request = RunRequest {
        plugins,
        strategy: "watch".into(),
        ..RunRequest::default()
    };
    if let Err(e) = shared.start_run(request) {
        tracing::warn!("re-run after reload not started: {e}");
    }
}

/// SIGHUP without `--watch`: a valid config replaces the old one; an invalid one is logged and ignored.
fn reload_config(shared: &Shared) {
    match Config::load(&shared.config_path).and_then(Warmer::new) {
        Ok(warmer) => {
            if shared.install(Arc::new(warmer)) {
                tracing::info!(config = %shared.config_path.display(), "config reloaded");
                super::preload(shared);
            }
        }
        Err(e) => tracing::error!("config reload rejected, keeping the previous config: {e:#}"),
    }
}
