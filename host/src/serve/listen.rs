//! The accept loop of `serve`: HTTP/1 connections under a connection cap, a
//! header-read timeout per request, and a bounded graceful shutdown.
//!
//! axum's own `serve` exposes none of these, so connections are served with
//! hyper's `http1::Builder` directly. A client trickling its headers is cut
//! after `[serve] header_timeout`; past `max_connections` new connections wait
//! in the listen backlog (taken in arrival order) instead of using up file
//! descriptors, so `/healthz` is answered once the slow ones are cut.

use crate::config::ServeConfig;
use crate::support::Cancel;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Pause after a failed `accept` (e.g. out of file descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` until `shutdown`, then lets requests in flight finish until
/// `deadline` and drops whatever connections are still open.
pub(super) async fn serve_http(
    listener: TcpListener,
    app: Router,
    config: &ServeConfig,
    shutdown: Cancel,
    deadline: impl FnOnce() -> Instant,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections.get()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}; retrying (raise the open-files limit or lower [serve] max_connections)");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!("connection ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    let deadline = deadline();
    let open = config.max_connections.get() - permits.available_permits();
    let left = deadline.saturating_duration_since(Instant::now());
    tracing::info!(connections = open, wait = ?left, "closing connections once their requests finish");
    if tokio::time::timeout(left, graceful.shutdown()).await.is_err() {
        let open = config.max_connections.get() - permits.available_permits();
        tracing::warn!(
            connections = open,
            "[serve] shutdown_timeout reached: closing connections whose requests did not finish"
        );
    }
}
