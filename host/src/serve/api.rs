//! The HTTP routes of `serve`: `/cache/warming/*`, `/healthz`, `/metrics`,
//! `/openapi.json` and the dashboard. Errors are JSON `{"error": "…"}` with a
//! status that says whose fault it was; mutating routes need the bearer token
//! when one is configured.

use super::runs::{RunRequest, StartError};
use super::{Event, Shared};
use crate::plan::{parse_priority, KeyFilter, KeyGlob};
use crate::runtime::{KeySpec, Priority};
use crate::schedule::{ScheduleError, ScheduleUpdate};
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

type AppState = State<Arc<Shared>>;

/// An error answer: status + JSON `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StartError> for ApiError {
    fn from(e: StartError) -> ApiError {
        let status = match e {
            StartError::UnknownPlugin(..) => StatusCode::NOT_FOUND,
            StartError::Busy { .. } => StatusCode::CONFLICT,
            StartError::NothingToRun => StatusCode::BAD_REQUEST,
            StartError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// Every route, with body limit, auth on mutating routes and request logs.
pub fn router(shared: Arc<Shared>) -> Router {
    let serve = shared.warmer().config().serve.clone();
    let max_body = serve.max_body.0 as usize;
    let log_level = match serve.access_log {
        true => tracing::Level::INFO,
        false => tracing::Level::DEBUG,
    };
    let mutating = Router::new()
        .route("/cache/warming/start", post(start))
        .route("/cache/warming/stop", post(stop))
        .route("/cache/warming/warm-key", post(warm_key))
        .route("/cache/warming/warm-pattern", post(warm_pattern))
        .route("/cache/warming/schedule", post(update_schedule))
        .route("/cache/warming/events", post(ingest_events))
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_token));
    Router::new()
        .route("/", get(dashboard_page))
        .route("/dashboard/app.js", get(dashboard_script))
        .route("/dashboard/style.css", get(dashboard_style))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/cache/warming/status", get(status))
        .route("/cache/warming/progress", get(progress))
        .route("/cache/warming/runs", get(runs))
        .route("/cache/warming/events", get(events))
        .route("/cache/warming/hot-data", get(hot_data))
        .route("/cache/warming/stats", get(stats))
        .route("/cache/warming/schedule", get(schedule))
        .merge(mutating)
        .fallback(not_found)
        // axum's own 2 MiB default would cap a larger max_body.
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(serve.body_timeout))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(tower_http::trace::DefaultMakeSpan::new().level(log_level))
                .on_response(tower_http::trace::DefaultOnResponse::new().level(log_level)),
        )
        .with_state(shared)
}

/// Mutating routes need `Authorization: Bearer <token>` when a token is configured.
async fn require_token(State(shared): AppState, request: Request, next: Next) -> Response {
    let warmer = shared.warmer();
    let Some(token) = warmer.config().serve.token.as_deref() else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError(StatusCode::UNAUTHORIZED, "wrong bearer token".into()).into_response(),
        None => ApiError(
            StatusCode::UNAUTHORIZED,
            "this endpoint needs `Authorization: Bearer <token>` (the token of [serve] token or PREHEAT_API_TOKEN)"
                .into(),
        )
        .into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses a JSON body (an empty body is the default value), naming what was wrong.
fn parse_body<T: DeserializeOwned + Default>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        if !ct.starts_with("application/json") {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-type {ct:?} is not JSON; send `Content-Type: application/json`"),
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such endpoint; see GET /openapi.json".into())
}

async fn dashboard_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard/index.html"),
    )
}

async fn dashboard_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard/app.js"),
    )
}

async fn dashboard_style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard/style.css"),
    )
}

async fn healthz(State(shared): AppState) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "active_runs": shared.runs.any_active(),
        "job_store": shared.store.as_ref().map(|s| s.address().to_string()),
    }))
}

async fn metrics(State(shared): AppState) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

async fn openapi() -> Json<Value> {
    Json(super::openapi::document())
}

fn batch_size(shared: &Shared) -> usize {
    shared.warmer().config().run.batch_size.get()
}

async fn status(State(shared): AppState) -> Json<Value> {
    Json(shared.runs.status(batch_size(&shared)))
}

async fn progress(State(shared): AppState) -> Json<Value> {
    let status = shared.runs.status(batch_size(&shared));
    let pick = |k: &str| status.get(k).cloned().unwrap_or(Value::Null);
    Json(json!({
        "status": pick("status"),
        "run_id": pick("run_id"),
        "progress": pick("progress"),
        "current_batch": pick("current_batch"),
        "performance": pick("performance"),
    }))
}

/// Body of `POST /cache/warming/start`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// Plugins to run (default: all enabled).
    #[serde(default)]
    plugins: Vec<String>,
    /// Strategy name (default `on-demand`).
    strategy: Option<String>,
    /// Only keys matching this glob.
    pattern: Option<String>,
    /// Only keys with one of these tags.
    #[serde(default)]
    tags: Vec<String>,
    /// Only keys at least this urgent.
    min_priority: Option<String>,
}

/// Longest key pattern accepted, in bytes.
const MAX_PATTERN_BYTES: usize = 1024;
/// Most glob operators (`*`, `?`, `[`, `{`, `,`) in one pattern: each one grows
/// the regex globset compiles it into.
const MAX_PATTERN_OPERATORS: usize = 64;
/// Most names in a request's `plugins` or `tags`.
const MAX_NAMES: usize = 256;
/// Longest plugin name, strategy or run id accepted.
const MAX_NAME_BYTES: usize = 128;
/// Longest tag accepted (the sandbox's bound on the tags of a key spec).
const MAX_TAG_BYTES: usize = 128;
/// Longest key accepted in `warm-key` and access events.
const MAX_KEY_BYTES: usize = 1024;

/// Refuses a pattern globset should never see: too long or too many operators.
fn bounded_pattern(pattern: &str) -> Result<KeyGlob, ApiError> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(bad_request(format!(
            "pattern is {} bytes long; the limit is {MAX_PATTERN_BYTES} bytes: match a shorter prefix, e.g. \"products/*\"",
            pattern.len()
        )));
    }
    let operators = pattern
        .chars()
        .filter(|c| matches!(c, '*' | '?' | '[' | '{' | ','))
        .count();
    if operators > MAX_PATTERN_OPERATORS {
        return Err(bad_request(format!(
            "pattern has {operators} glob operators (*, ?, [, {{, ,); the limit is {MAX_PATTERN_OPERATORS}: use fewer wildcards and alternatives"
        )));
    }
    KeyGlob::new(pattern).map_err(|e| bad_request(format!("{e:#}")))
}

/// Refuses a list of names that is too long or holds a name too long (or empty).
fn bounded_names(field: &str, names: &[String], max_bytes: usize) -> Result<(), ApiError> {
    if names.len() > MAX_NAMES {
        return Err(bad_request(format!(
            "{field} has {} entries; the limit is {MAX_NAMES}",
            names.len()
        )));
    }
    for (i, name) in names.iter().enumerate() {
        bounded_name(&format!("{field}[{i}]"), name, max_bytes)?;
    }
    Ok(())
}

/// Refuses an empty name or one longer than `max_bytes`.
fn bounded_name(field: &str, name: &str, max_bytes: usize) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > max_bytes {
        return Err(bad_request(format!(
            "{field} is {} bytes long; it must be 1 to {max_bytes} bytes",
            name.len()
        )));
    }
    Ok(())
}

fn filter_of(pattern: Option<&str>, tags: Vec<String>, min_priority: Option<&str>) -> Result<KeyFilter, ApiError> {
    bounded_names("tags", &tags, MAX_TAG_BYTES)?;
    Ok(KeyFilter {
        pattern: pattern.map(bounded_pattern).transpose()?,
        tags,
        min_priority: min_priority
            .map(parse_priority)
            .transpose()
            .map_err(|e| bad_request(format!("min_priority: {e:#}")))?,
    })
}

async fn start(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let body: StartBody = parse_body(&headers, &body)?;
    bounded_names("plugins", &body.plugins, MAX_NAME_BYTES)?;
    if let Some(strategy) = &body.strategy {
        bounded_name("strategy", strategy, MAX_NAME_BYTES)?;
    }
    let request = RunRequest {
        plugins: body.plugins,
        strategy: body.strategy.unwrap_or_else(|| "on-demand".into()),
        filter: filter_of(body.pattern.as_deref(), body.tags, body.min_priority.as_deref())?,
        keys: None,
    };
    let (run_id, plugins) = shared.start_run(request)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "plugins": plugins})),
    )
        .into_response())
}

/// Body of `POST /cache/warming/stop`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    /// The run to stop (default: every run).
    run_id: Option<String>,
    /// Answer once the runs have ended (default: at once).
    #[serde(default)]
    wait: bool,
}

async fn stop(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let body: StopBody = parse_body(&headers, &body)?;
    if let Some(id) = &body.run_id {
        bounded_name("run_id", id, MAX_NAME_BYTES)?;
    }
    let stopping = shared.runs.stop(body.run_id.as_deref());
    if stopping.is_empty() {
        let what = match &body.run_id {
            Some(id) => format!("run {id} is not in progress"),
            None => "no run is in progress".into(),
        };
        return Err(ApiError(StatusCode::CONFLICT, what));
    }
    if body.wait {
        for id in &stopping {
            shared.runs.wait(id).await;
        }
        let runs: Vec<Value> = stopping.iter().filter_map(|id| shared.runs.finished_run(id)).collect();
        return Ok(Json(json!({"stopped": stopping, "runs": runs})).into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(json!({"stopping": stopping}))).into_response())
}

/// A TTL as seconds or a duration string (`"10m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Ttl {
    Seconds(u32),
    Text(String),
}

/// Body of `POST /cache/warming/warm-key`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmKeyBody {
    plugin: String,
    key: String,
    ttl: Option<Ttl>,
    priority: Option<String>,
    /// Handed to the plugin's `produce` as the key spec's `arg`.
    arg: Option<String>,
}

async fn warm_key(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let body: WarmKeyBody = parse_body(&headers, &body)?;
    if body.plugin.is_empty() || body.key.is_empty() {
        return Err(bad_request(
            "body needs {\"plugin\": \"<name>\", \"key\": \"<key>\"}; optional ttl (seconds or \"10m\"), priority, arg",
        ));
    }
    bounded_name("plugin", &body.plugin, MAX_NAME_BYTES)?;
    bounded_name("key", &body.key, MAX_KEY_BYTES)?;
    let ttl_seconds = match body.ttl {
        None => None,
        Some(Ttl::Seconds(s)) => Some(s),
        Some(Ttl::Text(t)) => Some(
            humantime::parse_duration(&t)
                .map_err(|e| {
                    bad_request(format!(
                        "ttl {t:?} is not a duration ({e}); use seconds or e.g. \"10m\""
                    ))
                })?
                .as_secs()
                .try_into()
                .map_err(|_| bad_request(format!("ttl {t:?} is too long")))?,
        ),
    };
    let priority = match body.priority.as_deref() {
        None => Priority::High,
        Some(p) => parse_priority(p).map_err(|e| bad_request(format!("priority: {e:#}")))?,
    };
    let spec = KeySpec {
        key: body.key.clone(),
        priority,
        ttl_seconds,
        tags: Vec::new(),
        arg: body.arg,
    };
    let request = RunRequest {
        plugins: vec![body.plugin.clone()],
        strategy: "on-demand".into(),
        filter: KeyFilter::default(),
        keys: Some(vec![(body.plugin.clone(), spec)]),
    };
    let (run_id, _) = shared.start_run(request)?;
    shared.runs.wait(&run_id).await;
    let run = shared.runs.finished_run(&run_id).unwrap_or(Value::Null);
    let totals = &run["totals"];
    let outcome = [
        "written",
        "skipped_fresh",
        "skipped_by_plugin",
        "invalid",
        "failed",
        "abandoned",
    ]
    .into_iter()
    .find(|k| totals[*k].as_u64().unwrap_or(0) > 0)
    .unwrap_or("none");
    let error = run["errors"].get(0).map(|e| e["error"].clone()).unwrap_or(Value::Null);
    let status = match outcome {
        "written" | "skipped_fresh" | "skipped_by_plugin" => StatusCode::OK,
        "invalid" => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::BAD_GATEWAY,
    };
    let answer = json!({"run_id": run_id, "plugin": body.plugin, "key": body.key, "outcome": outcome, "error": error, "run": run});
    Ok((status, Json(answer)).into_response())
}

/// Body of `POST /cache/warming/warm-pattern`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmPatternBody {
    pattern: String,
    #[serde(default)]
    plugins: Vec<String>,
}

async fn warm_pattern(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let body: WarmPatternBody = parse_body(&headers, &body)?;
    bounded_names("plugins", &body.plugins, MAX_NAME_BYTES)?;
    if body.pattern.is_empty() {
        return Err(bad_request(
            "body needs {\"pattern\": \"products/category/*\"}; optional plugins",
        ));
    }
    let request = RunRequest {
        plugins: body.plugins,
        strategy: "selective".into(),
        filter: filter_of(Some(&body.pattern), Vec::new(), None)?,
        keys: None,
    };
    let (run_id, plugins) = shared.start_run(request)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": run_id, "plugins": plugins, "pattern": body.pattern})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn runs(State(shared): AppState, Query(q): Query<Limit>) -> Result<Json<Value>, ApiError> {
    let Some(store) = &shared.store else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no job history: [jobs] enabled = false, or the job store was unreachable at start (see the log)".into(),
        ));
    };
    let rows = store
        .history(q.limit.unwrap_or(50).min(1000))
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("job history: {e:#}")))?;
    Ok(Json(json!({ "runs": rows })))
}

/// Server-Sent Events: `hello` (status) on connect, then `progress`, `run_finished`,
/// `schedules`; at shutdown a last `shutdown` event, then the stream ends.
async fn events(State(shared): AppState) -> impl IntoResponse {
    let hello = axum::response::sse::Event::default()
        .event("hello")
        .json_data(shared.runs.status(batch_size(&shared)))
        .expect("status serializes");
    // The shutdown event is the last one: the stream ends after sending it.
    let updates = futures_util::stream::unfold(Some(shared.events.subscribe()), |rx| async move {
        let mut rx = rx?;
        let (name, data, rx) = loop {
            match rx.recv().await {
                Ok(Event::Progress(v)) => break ("progress", v, Some(rx)),
                Ok(Event::RunFinished(v)) => break ("run_finished", v, Some(rx)),
                Ok(Event::Schedules(v)) => break ("schedules", v, Some(rx)),
                Ok(Event::Shutdown(v)) => break ("shutdown", v, None),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        Some((axum::response::sse::Event::default().event(name).json_data(data), rx))
    })
    .filter_map(|event| async move { event.ok() });
    let stream = futures_util::stream::once(async { hello })
        .chain(updates)
        .map(Ok::<_, std::convert::Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// One access event as posted: `ts_ms` defaults to now.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn {
    key: String,
    hit: Value,
    ts_ms: Option<u64>,
    latency_ms: Option<f64>,
}

/// `POST /cache/warming/events`: a JSON array of events, or `{"events": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EventsBody {
    List(Vec<EventIn>),
    Wrapped { events: Vec<EventIn> },
}

impl Default for EventsBody {
    fn default() -> Self {
        EventsBody::List(Vec::new())
    }
}

async fn ingest_events(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let Some(usage) = &shared.usage else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "usage tracking is off ([usage] enabled = false)".into(),
        ));
    };
    let body: EventsBody = parse_body(&headers, &body).map_err(|ApiError(code, msg)| {
        ApiError(code, format!("{msg}; expected [{{\"key\": \"…\", \"hit\": true|false|1|0, \"ts_ms\": 1700000000000, \"latency_ms\": 12.5}}, …] or {{\"events\": [...]}}"))
    })?;
    let (EventsBody::List(events) | EventsBody::Wrapped { events }) = body;
    let now = crate::usage::now_ms();
    let mut accepted = Vec::with_capacity(events.len());
    for (i, e) in events.into_iter().enumerate() {
        let hit = match &e.hit {
            Value::Bool(b) => *b,
            Value::Number(n) if n.as_u64() == Some(1) => true,
            Value::Number(n) if n.as_u64() == Some(0) => false,
            other => {
                return Err(bad_request(format!(
                    "events[{i}].hit must be true, false, 1 or 0, got {other}"
                )))
            }
        };
        bounded_name(&format!("events[{i}].key"), &e.key, MAX_KEY_BYTES)?;
        let event = preheat_usage::AccessEvent {
            ts_ms: e.ts_ms.unwrap_or(now),
            key: e.key,
            hit,
            latency_ms: e.latency_ms,
        };
        usage
            .check(&event)
            .map_err(|why| bad_request(format!("events[{i}]: {why}")))?;
        accepted.push(event);
    }
    usage.ingest(&accepted);
    Ok((StatusCode::ACCEPTED, Json(json!({"accepted": accepted.len()}))).into_response())
}

#[derive(Debug, Deserialize)]
struct HotQuery {
    window: Option<String>,
    limit: Option<usize>,
}

async fn hot_data(State(shared): AppState, Query(q): Query<HotQuery>) -> Result<Json<Value>, ApiError> {
    let Some(usage) = &shared.usage else {
        return Ok(Json(
            json!({"window": null, "keys": [], "reason": "usage tracking is off ([usage] enabled = false)"}),
        ));
    };
    let window = match q.window.as_deref() {
        None => Duration::from_secs(3600),
        Some(w) => humantime::parse_duration(w).map_err(|e| bad_request(format!("window {w:?}: {e} (e.g. \"1h\")")))?,
    };
    usage.tick();
    Ok(Json(usage.hot_data(window, q.limit.unwrap_or(50).min(1000))))
}

async fn stats(State(shared): AppState) -> Json<Value> {
    let mut cost_benefit = shared.runs.cost_benefit();
    let effectiveness = match &shared.usage {
        None => {
            json!({"hit_rate_before": null, "hit_rate_after": null, "improvement": null, "reason": "usage tracking is off"})
        }
        Some(usage) => {
            let coverage = coverage(&shared, usage).await;
            let (effectiveness, measured) = usage.effectiveness(coverage);
            if let (Some(cb), Some(m)) = (cost_benefit.as_object_mut(), measured.as_object()) {
                cb.extend(m.clone());
            }
            effectiveness
        }
    };
    Json(json!({
        "effectiveness": effectiveness,
        "resource_usage": super::resource_usage(&shared),
        "timing": shared.runs.timing(),
        "cost_benefit": cost_benefit,
    }))
}

/// How much of the hour's 50 hottest keys the backend holds now (null without traffic or backend).
async fn coverage(shared: &Shared, usage: &crate::usage::Usage) -> Option<Value> {
    let hot = usage
        .hot(Duration::from_secs(3600), 50)
        .ok()
        .filter(|h| !h.entries.is_empty())?;
    let backend = shared.backend().await.ok()?;
    let mut present = std::collections::HashSet::new();
    for e in &hot.entries {
        if let Ok(Some(_)) = backend.get(&e.key).await {
            present.insert(e.key.clone());
        }
    }
    let c = preheat_usage::effect::coverage(hot.entries.iter().map(|e| e.key.as_str()), |k| present.contains(k));
    Some(
        json!({"hot_keys": c.hot, "cached": c.cached, "fraction": c.fraction, "missing": c.missing.iter().take(10).collect::<Vec<_>>()}),
    )
}

async fn schedule(State(shared): AppState) -> Json<Value> {
    let lead = shared.warmer().config().usage.predictive.lead_time;
    let suggestions = shared
        .usage
        .as_ref()
        .map(|u| u.schedule_suggestions(lead))
        .unwrap_or_default();
    Json(json!({"schedules": shared.schedules.list(), "suggestions": suggestions}))
}

async fn update_schedule(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "body needs {\"plugin\": \"<name>\"} and any of \"cron\": \"*/15 * * * *\" (null removes), \"jitter\": \"30s\", \"enabled\": true, or \"reset\": true alone",
        ));
    }
    let update: ScheduleUpdate = parse_body_required(&headers, &body)?;
    match shared.schedules.update(update).await {
        Ok(view) => {
            shared.publish(Event::Schedules(json!({"schedules": shared.schedules.list()})));
            Ok(Json(json!({ "schedule": view })).into_response())
        }
        Err(e @ ScheduleError::UnknownPlugin(_)) => Err(ApiError(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ ScheduleError::Invalid(_)) => Err(bad_request(e.to_string())),
        Err(e @ ScheduleError::Store(_)) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// [`parse_body`] for bodies without a default.
fn parse_body_required<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    parse_body::<Option<T>>(headers, body)?.ok_or_else(|| bad_request("the body must be a JSON object, not null"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_past_the_limits_are_refused_and_the_worst_within_them_compile() {
        let long = "a".repeat(300 * 1024);
        assert!(bounded_pattern(&long).unwrap_err().1.contains("limit is 1024 bytes"));
        assert!(bounded_pattern(&"*".repeat(65)).unwrap_err().1.contains("limit is 64"));
        // A hostile author's best within the bounds: every operator a negated
        // class, an alternation, or a wildcard, padded to 1 KiB.
        for unit in ["[^a]", "{a,b}", "*?", "[!\u{10FFFF}-\u{10FFFF}]"] {
            let mut pattern = String::new();
            while pattern.len() + unit.len() <= MAX_PATTERN_BYTES
                && pattern
                    .chars()
                    .filter(|c| matches!(c, '*' | '?' | '[' | '{' | ','))
                    .count()
                    + 2
                    <= MAX_PATTERN_OPERATORS
            {
                pattern.push_str(unit);
            }
            pattern.push_str(&"x".repeat(MAX_PATTERN_BYTES - pattern.len()));
            let glob = bounded_pattern(&pattern).unwrap_or_else(|e| panic!("{unit}: {}", e.1));
            assert!(!glob.is_match("short"));
        }
    }
}
