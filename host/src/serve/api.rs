//! The HTTP routes of `serve`: `/cache/warming/*`, `/healthz`, `/metrics`,
//! `/openapi.json` and the dashboard. Every route is registered together with
//! its OpenAPI description (`#[utoipa::path]`, see `openapi.rs`); requests and
//! answers are typed structs, serialized here. Errors are JSON `{"error": "…"}`
//! with a status that says whose fault it was, also for what axum and the
//! layers refuse (bad query, unknown path or method, body too large); mutating
//! routes need the bearer token when one is configured.

use super::runs::{
    Activity, BatchView, CostBenefit, FinishedRun, Performance, ProgressCounts, RunRequest, StartError, StatusView,
    Timing,
};
use super::{Event, ResourceUsage, Shared};
use crate::config::KeyGlob;
use crate::jobs::JobRow;
use crate::plan::{parse_priority, KeyFilter};
use crate::report::ErrorCause;
use crate::runtime::{KeySpec, Priority};
use crate::schedule::{ScheduleError, ScheduleUpdate, ScheduleView};
use crate::usage::{
    CoverageView, Effectiveness, HotData, MeasuredBenefit, PostedEvents, Suggestion, MAX_EVENT_KEY_BYTES,
};
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppState = State<Arc<Shared>>;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong, and what to do about it.
    pub error: String,
}

/// An error answer: status + JSON `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
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

/// The OpenAPI document in both forms: which one `/openapi.json` answers
/// follows the token of the config in force (a SIGHUP may add or remove it).
struct Documents {
    /// Without a token: no `security`.
    open: utoipa::openapi::OpenApi,
    /// With a token: the mutating operations declare bearer `security` and 401.
    guarded: utoipa::openapi::OpenApi,
}

/// Every route registered with its description, auth on the mutating ones;
/// and the document, with `security` on those when `bearer`.
fn documented_routes(shared: &Arc<Shared>, bearer: bool) -> (Router<Arc<Shared>>, utoipa::openapi::OpenApi) {
    let mut mutating = OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(warm_key))
        .routes(routes!(warm_pattern))
        .routes(routes!(update_schedule))
        .routes(routes!(ingest_events))
        .route_layer(middleware::from_fn_with_state(shared.clone(), require_token));
    if bearer {
        super::openapi::require_bearer(mutating.get_openapi_mut());
    }
    let (routes, mut doc) = OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(dashboard_page))
        .routes(routes!(dashboard_script))
        .routes(routes!(dashboard_style))
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(status))
        .routes(routes!(progress))
        .routes(routes!(runs))
        .routes(routes!(events))
        .routes(routes!(hot_data))
        .routes(routes!(stats))
        .routes(routes!(schedule))
        .merge(mutating)
        .split_for_parts();
    super::openapi::finish(&mut doc);
    (routes, doc)
}

/// Every route, with body limit, auth on mutating routes, JSON errors and
/// request logs; and the OpenAPI document describing them.
pub fn router(shared: Arc<Shared>) -> Router {
    let serve = shared.warmer().config().serve.clone();
    let max_body = serve.max_body.0 as usize;
    let log_level = match serve.access_log {
        true => tracing::Level::INFO,
        false => tracing::Level::DEBUG,
    };
    let (routes, guarded) = documented_routes(&shared, true);
    let (_, open) = documented_routes(&shared, false);
    let doc = Documents { open, guarded };
    routes
        .fallback(not_found)
        .layer(Extension(Arc::new(doc)))
        // axum's own 2 MiB default would cap a larger max_body.
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(max_body))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(serve.body_timeout))
        .layer(middleware::from_fn_with_state(shared.clone(), json_errors))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(tower_http::trace::DefaultMakeSpan::new().level(log_level))
                .on_response(tower_http::trace::DefaultOnResponse::new().level(log_level)),
        )
        .with_state(shared)
}

/// Turns every error answer that is not JSON yet (axum's rejections of a bad
/// query or body, 405, the body limit's 413, the body timeout) into
/// `{"error": "…"}`, keeping its status and headers such as `Allow`.
async fn json_errors(State(shared): AppState, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejections are one short line; the cap only guards against surprises.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            format!("{method} is not allowed here (allowed: {allow}); see GET /openapi.json")
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the body is over [serve] max_body ({} bytes); send less, or raise max_body",
            shared.warmer().config().serve.max_body.0
        ),
        StatusCode::REQUEST_TIMEOUT => "the body did not arrive within [serve] body_timeout; send it faster".into(),
        _ if text.is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => format!("{text}; see GET /openapi.json"),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let mut answer = ApiError(status, message).into_response();
    answer.headers_mut().extend(parts.headers);
    answer
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

/// The dashboard.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "the dashboard page", content_type = "text/html", body = String)))]
async fn dashboard_page() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard/index.html"),
    )
}

/// The dashboard's script.
#[utoipa::path(get, path = "/dashboard/app.js", tag = "dashboard",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
async fn dashboard_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard/app.js"),
    )
}

/// The dashboard's style sheet.
#[utoipa::path(get, path = "/dashboard/style.css", tag = "dashboard",
    responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
async fn dashboard_style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard/style.css"),
    )
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    status: &'static str,
    /// preheat's version.
    version: &'static str,
    /// Seconds since serve started.
    uptime_seconds: u64,
    /// Whether a run is in progress.
    active_runs: bool,
    /// The job store's address; null without one.
    job_store: Option<String>,
}

/// Liveness: version, uptime, whether runs are active.
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "serve is up", body = Health)))]
async fn healthz(State(shared): AppState) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: shared.started.elapsed().as_secs(),
        active_runs: shared.runs.any_active(),
        job_store: shared.history.store().map(|s| s.address().to_string()),
    })
}

/// Prometheus/OpenMetrics text: preheat_runs_total, preheat_keys_total{plugin,outcome},
/// preheat_bytes_written_total, preheat_fuel_consumed_total, preheat_retries_total,
/// preheat_deadline_hits_total, preheat_active_runs, preheat_produce_duration_seconds.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "metrics", content_type = "application/openmetrics-text", body = String)))]
async fn metrics(State(shared): AppState) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
async fn openapi(
    State(shared): AppState,
    Extension(docs): Extension<Arc<Documents>>,
) -> Json<utoipa::openapi::OpenApi> {
    let doc = match shared.warmer().config().serve.token {
        Some(_) => &docs.guarded,
        None => &docs.open,
    };
    Json(doc.clone())
}

fn batch_size(shared: &Shared) -> usize {
    shared.warmer().config().run.batch_size.get()
}

/// Active runs with progress, current batch, performance, recent errors and
/// per-plugin counters (the newest run's fields also at the top); the last finished run.
#[utoipa::path(get, path = "/cache/warming/status", tag = "runs",
    responses((status = 200, description = "status", body = StatusView)))]
async fn status(State(shared): AppState) -> Json<StatusView> {
    Json(shared.runs.status(batch_size(&shared)))
}

/// `GET /cache/warming/progress`: the newest active run's progress (null fields when idle).
#[derive(Debug, Serialize, ToSchema)]
struct ProgressView {
    /// idle, running or stopping.
    status: Activity,
    /// The newest active run; null when idle.
    run_id: Option<String>,
    /// Its keys so far.
    progress: Option<ProgressCounts>,
    /// Its latest batch.
    current_batch: Option<BatchView>,
    /// Its speed.
    performance: Option<Performance>,
}

/// Progress, current batch and performance of the newest active run.
#[utoipa::path(get, path = "/cache/warming/progress", tag = "runs",
    responses((status = 200, description = "progress", body = ProgressView)))]
async fn progress(State(shared): AppState) -> Json<ProgressView> {
    let status = shared.runs.status(batch_size(&shared));
    let current = status.current;
    Json(ProgressView {
        status: status.status,
        run_id: current.as_ref().map(|r| r.run_id.clone()),
        current_batch: current.as_ref().and_then(|r| r.current_batch.clone()),
        performance: current.as_ref().map(|r| r.performance.clone()),
        progress: current.map(|r| r.progress),
    })
}

/// Body of `POST /cache/warming/start` (every field optional; an empty body starts every enabled plugin).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StartBody {
    /// Plugins to run (default: all enabled).
    #[serde(default)]
    #[schema(schema_with = name_list)]
    plugins: Vec<String>,
    /// Strategy name (default, and when null, `on-demand`).
    #[schema(min_length = 1, max_length = 128)]
    strategy: Option<String>,
    /// Only keys matching this glob (at most 1024 bytes and 64 operators `*?[{,`).
    #[schema(max_length = 1024)]
    pattern: Option<String>,
    /// Only keys with one of these tags.
    #[serde(default)]
    #[schema(schema_with = name_list)]
    tags: Vec<String>,
    /// Only keys at least this urgent.
    #[schema(schema_with = priority_name)]
    min_priority: Option<String>,
}

/// The schema of a priority field: one of the names, or null (the default).
fn priority_name() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([
            serde_json::json!("critical"),
            serde_json::json!("high"),
            serde_json::json!("normal"),
            serde_json::json!("low"),
            serde_json::Value::Null,
        ]))
        .build()
}

/// The schema of `plugins` and `tags`: at most [`MAX_NAMES`] names of 1 to 128 bytes.
fn name_list() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_NAME_BYTES)),
        )
        .max_items(Some(MAX_NAMES))
        .build()
}

/// Most names in a request's `plugins` or `tags`.
const MAX_NAMES: usize = 256;
/// Longest plugin name, strategy or run id accepted.
const MAX_NAME_BYTES: usize = 128;
/// Longest tag accepted (the sandbox's bound on the tags of a key spec).
const MAX_TAG_BYTES: usize = 128;

/// Compiles a request's pattern (bounded by [`KeyGlob::new`]); a bad one is a 400.
fn bounded_pattern(pattern: &str) -> Result<KeyGlob, ApiError> {
    KeyGlob::new(pattern).map_err(|e| bad_request(format!("pattern: {e:#}")))
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

/// `202` of `start`: the run and its plugins.
#[derive(Debug, Serialize, ToSchema)]
struct Started {
    /// The run's id.
    run_id: String,
    /// The plugins it runs.
    plugins: Vec<String>,
}

/// Start a run (all enabled plugins, or some), optionally filtered by key glob, tags and minimum priority.
#[utoipa::path(post, path = "/cache/warming/start", tag = "runs",
    request_body(content = StartBody, description = "what to run; may be empty"),
    responses(
        (status = 202, description = "the run started", body = Started),
        (status = 400, description = "a field is invalid (pattern, tags, min_priority, strategy)", body = ErrorBody),
        (status = 404, description = "unknown plugin", body = ErrorBody),
        (status = 409, description = "a plugin of the request is already running", body = ErrorBody),
        (status = 503, description = "serve is shutting down", body = ErrorBody),
    ))]
async fn start(
    State(shared): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Started>), ApiError> {
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
    Ok((StatusCode::ACCEPTED, Json(Started { run_id, plugins })))
}

/// Body of `POST /cache/warming/stop`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct StopBody {
    /// The run to stop (default, and when null: every run).
    #[schema(min_length = 1, max_length = 128)]
    run_id: Option<String>,
    /// Answer once the runs have ended (default: at once).
    #[serde(default)]
    wait: bool,
}

/// `202` of `stop`: the runs asked to stop.
#[derive(Debug, Serialize, ToSchema)]
struct Stopping {
    /// Their ids.
    stopping: Vec<String>,
}

/// `200` of `stop` with `wait`: the runs stopped, as they ended.
#[derive(Debug, Serialize, ToSchema)]
struct Stopped {
    /// Their ids.
    stopped: Vec<String>,
    /// How they ended.
    runs: Vec<FinishedRun>,
}

/// Stop a run (or all) gracefully: batches in flight finish, the rest is abandoned and reported.
#[utoipa::path(post, path = "/cache/warming/stop", tag = "runs",
    request_body(content = StopBody, description = "which run; may be empty"),
    responses(
        (status = 202, description = "asked to stop", body = Stopping),
        (status = 200, description = "with wait: stopped", body = Stopped),
        (status = 400, description = "a field is invalid", body = ErrorBody),
        (status = 409, description = "no such run in progress", body = ErrorBody),
    ))]
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
        let runs = stopping.iter().filter_map(|id| shared.runs.finished_run(id)).collect();
        return Ok(Json(Stopped {
            stopped: stopping,
            runs,
        })
        .into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(Stopping { stopping })).into_response())
}

/// A TTL as seconds or a duration string (`"10m"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum Ttl {
    /// Seconds.
    Seconds(u32),
    /// A duration: `"90s"`, `"10m"`, `"1h 30m"`.
    Text(String),
}

/// Body of `POST /cache/warming/warm-key`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WarmKeyBody {
    /// The plugin that builds the key.
    #[schema(min_length = 1, max_length = 128)]
    plugin: String,
    /// The key.
    #[schema(min_length = 1, max_length = 1024)]
    key: String,
    /// Time to live (default: the plugin's).
    ttl: Option<Ttl>,
    /// Priority (default `high`).
    #[schema(schema_with = priority_name)]
    priority: Option<String>,
    /// Handed to the plugin's `produce` as the key spec's `arg`.
    arg: Option<String>,
}

/// What became of a warmed key: the name of the counter it went to, or
/// `none` when it got none (the plugin did not load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum KeyOutcome {
    /// Written to the backend.
    Written,
    /// Left alone: the cached value was fresh.
    SkippedFresh,
    /// The plugin had nothing to warm for it.
    SkippedByPlugin,
    /// It broke the key rules (granted prefixes, length, characters).
    Invalid,
    /// The plugin refused it, or producing or writing it failed (see `cause`).
    Failed,
    /// No outcome.
    None,
}

/// The answer of `warm-key`, whatever became of the key.
#[derive(Debug, Serialize, ToSchema)]
struct WarmKeyAnswer {
    /// The run that warmed it.
    run_id: String,
    /// The plugin.
    plugin: String,
    /// The key.
    key: String,
    /// What became of it.
    outcome: KeyOutcome,
    /// Whose problem it was, when it went wrong: `invalid` and `rejected` are the key's (422), `failed` the plugin's or the backend's (502).
    cause: Option<ErrorCause>,
    /// What went wrong; null when it was warmed.
    error: Option<String>,
    /// The run's document.
    run: Option<FinishedRun>,
}

/// The status of a `warm-key` answer: 200 when the key was warmed (or needed
/// nothing), 422 when the key itself was wrong (it broke the key rules, or the
/// plugin refused it), 502 when the plugin or the backend failed. A key its
/// run abandoned is not an answer but an [`abandoned`] error.
fn warm_key_status(outcome: KeyOutcome, cause: Option<ErrorCause>) -> StatusCode {
    match (outcome, cause) {
        (KeyOutcome::Written | KeyOutcome::SkippedFresh | KeyOutcome::SkippedByPlugin, _) => StatusCode::OK,
        (KeyOutcome::Invalid, _) | (_, Some(ErrorCause::Invalid | ErrorCause::Rejected)) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The error for a key whose run stopped before writing it: 503 when serve is
/// shutting down, else 409 (a stop request or the run's deadline, neither the
/// key's fault nor a failure: sending it again warms it).
fn abandoned(shared: &Shared, run_id: &str, key: &str) -> ApiError {
    if shared.runs.is_closed() {
        return ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("serve is shutting down: run {run_id} stopped before {key:?} was written"),
        );
    }
    ApiError(
        StatusCode::CONFLICT,
        format!("run {run_id} was stopped (a stop request, or its deadline) before {key:?} was written; send it again"),
    )
}

/// Warm one key now: the plugin's produce builds the value; answers when it is written.
#[utoipa::path(post, path = "/cache/warming/warm-key", tag = "runs",
    request_body(content = WarmKeyBody, description = "the key"),
    responses(
        (status = 200, description = "written (or fresh, or skipped by the plugin)", body = WarmKeyAnswer),
        (status = 400, description = "a field is invalid", body = ErrorBody),
        (status = 404, description = "unknown plugin", body = ErrorBody),
        (status = 409, description = "the plugin is running, or the key's run was stopped (a stop request) or hit its deadline before the key was written: send it again", body = ErrorBody),
        (status = 422, description = "the key is wrong: it breaks the key rules, or the plugin refused it", body = WarmKeyAnswer),
        (status = 502, description = "the plugin or the backend failed", body = WarmKeyAnswer),
        (status = 503, description = "serve is shutting down", body = ErrorBody),
    ))]
async fn warm_key(State(shared): AppState, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let body: WarmKeyBody = parse_body(&headers, &body)?;
    if body.plugin.is_empty() || body.key.is_empty() {
        return Err(bad_request(
            "body needs {\"plugin\": \"<name>\", \"key\": \"<key>\"}; optional ttl (seconds or \"10m\"), priority, arg",
        ));
    }
    bounded_name("plugin", &body.plugin, MAX_NAME_BYTES)?;
    bounded_name("key", &body.key, MAX_EVENT_KEY_BYTES)?;
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
    let run = shared.runs.finished_run(&run_id);
    // Not finished (the run was stopped or hit its deadline): a 409, never an outcome.
    if run.as_ref().is_some_and(|r| r.totals.abandoned > 0) {
        return Err(abandoned(&shared, &run_id, &body.key));
    }
    let outcome = run.as_ref().map_or(KeyOutcome::None, |r| {
        let t = &r.totals;
        [
            (t.written, KeyOutcome::Written),
            (t.skipped_fresh, KeyOutcome::SkippedFresh),
            (t.skipped_by_plugin, KeyOutcome::SkippedByPlugin),
            (t.invalid, KeyOutcome::Invalid),
            (t.failed, KeyOutcome::Failed),
        ]
        .into_iter()
        .find(|(n, _)| *n > 0)
        .map_or(KeyOutcome::None, |(_, o)| o)
    });
    let first_error = run.as_ref().and_then(|r| r.errors.first());
    let (cause, error) = (first_error.map(|e| e.cause), first_error.map(|e| e.error.clone()));
    // A plugin or a run that failed as a whole (it did not load, the backend is down) has no key error.
    let error = error.or_else(|| {
        let r = run.as_ref()?;
        r.plugins
            .iter()
            .find_map(|p| p.error.clone())
            .or_else(|| r.error.clone())
    });
    let answer = WarmKeyAnswer {
        run_id,
        plugin: body.plugin,
        key: body.key,
        outcome,
        cause,
        error,
        run,
    };
    Ok((warm_key_status(outcome, cause), Json(answer)).into_response())
}

/// Body of `POST /cache/warming/warm-pattern`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct WarmPatternBody {
    /// A glob over the enumerated keys (`*` crosses separators; at most 1024 bytes and 64 operators `*?[{,`).
    #[schema(min_length = 1, max_length = 1024)]
    pattern: String,
    /// Plugins to run (default: all enabled).
    #[serde(default)]
    #[schema(schema_with = name_list)]
    plugins: Vec<String>,
}

/// `202` of `warm-pattern`.
#[derive(Debug, Serialize, ToSchema)]
struct PatternStarted {
    /// The run's id.
    run_id: String,
    /// The plugins it runs.
    plugins: Vec<String>,
    /// The glob.
    pattern: String,
}

/// Warm the enumerated keys matching a glob.
#[utoipa::path(post, path = "/cache/warming/warm-pattern", tag = "runs",
    request_body(content = WarmPatternBody, description = "the glob"),
    responses(
        (status = 202, description = "the run started", body = PatternStarted),
        (status = 400, description = "the pattern is missing, too long, too complex or not a glob", body = ErrorBody),
        (status = 404, description = "unknown plugin", body = ErrorBody),
        (status = 409, description = "a plugin is running", body = ErrorBody),
        (status = 503, description = "serve is shutting down", body = ErrorBody),
    ))]
async fn warm_pattern(
    State(shared): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<PatternStarted>), ApiError> {
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
        Json(PatternStarted {
            run_id,
            plugins,
            pattern: body.pattern,
        }),
    ))
}

/// Query of `GET /cache/warming/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// Most runs (default 50, at most 1000).
    limit: Option<usize>,
}

/// `GET /cache/warming/runs`.
#[derive(Debug, Serialize, ToSchema)]
struct History {
    /// Rows of whole runs (`job_type` = `run`), newest first.
    runs: Vec<JobRow>,
}

/// Run history from the job store.
#[utoipa::path(get, path = "/cache/warming/runs", tag = "runs", params(Limit),
    responses(
        (status = 200, description = "the latest runs", body = History),
        (status = 400, description = "limit is not a number", body = ErrorBody),
        (status = 503, description = "no job store, or it failed", body = ErrorBody),
    ))]
async fn runs(State(shared): AppState, Query(q): Query<Limit>) -> Result<Json<History>, ApiError> {
    let Some(store) = shared.history.store() else {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no job history: [jobs] enabled = false, or the job store was unreachable at start (see the log)".into(),
        ));
    };
    let rows = store
        .history(q.limit.unwrap_or(50).min(1000))
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("job history: {e:#}")))?;
    Ok(Json(History { runs: rows }))
}

/// Server-Sent Events: `hello` (status) on connect, then `progress` (every
/// 500 ms per active run), `run_finished`, `schedules`; at shutdown a last
/// `shutdown` event, then the stream ends.
#[utoipa::path(get, path = "/cache/warming/events", tag = "runs",
    responses(
        (status = 200, description = "an event stream", content_type = "text/event-stream", body = String),
        (status = 503, description = "[serve] max_event_streams streams are open", body = ErrorBody),
    ))]
async fn events(State(shared): AppState) -> Result<Response, ApiError> {
    // Held by the stream until the client goes away.
    let room = shared.event_streams.clone().try_acquire_owned().map_err(|_| {
        let max = shared.warmer().config().serve.max_event_streams;
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{max} event streams are open, the most [serve] max_event_streams allows; close one, poll GET /cache/warming/status instead, or raise max_event_streams"),
        )
    })?;
    let hello = axum::response::sse::Event::default()
        .event("hello")
        .json_data(shared.runs.status(batch_size(&shared)));
    // The shutdown event is the last one: the stream ends after sending it.
    let updates = futures_util::stream::unfold(Some(shared.events.subscribe()), |rx| async move {
        let mut rx = rx?;
        let event = axum::response::sse::Event::default();
        let (event, rx) = loop {
            match rx.recv().await {
                Ok(Event::Progress(v)) => break (event.event("progress").json_data(v), Some(rx)),
                Ok(Event::RunFinished(v)) => break (event.event("run_finished").json_data(v), Some(rx)),
                Ok(Event::Schedules(v)) => break (event.event("schedules").json_data(v), Some(rx)),
                Ok(Event::Shutdown(v)) => break (event.event("shutdown").json_data(v), None),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        };
        Some((event, rx))
    });
    let stream = futures_util::stream::once(async { hello })
        .chain(updates)
        .filter_map(|event| async move { event.ok() })
        .map(move |event| {
            let _room = &room;
            Ok::<_, std::convert::Infallible>(event)
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// `202` of `events`.
#[derive(Debug, Serialize, ToSchema)]
struct Accepted {
    /// Events taken in.
    accepted: usize,
}

/// Access events in: a JSON array (or `{"events": [...]}`) of `{key, hit, ts_ms, latency_ms}`.
#[utoipa::path(post, path = "/cache/warming/events", tag = "usage",
    request_body(content = PostedEvents, description = "the events"),
    responses(
        (status = 202, description = "taken in", body = Accepted),
        (status = 400, description = "an event is invalid (key, hit, a time outside the windows, a latency that is not finite or over an hour)", body = ErrorBody),
        (status = 409, description = "usage tracking is off", body = ErrorBody),
    ))]
async fn ingest_events(
    State(shared): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let Some(usage) = &shared.usage else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "usage tracking is off ([usage] enabled = false)".into(),
        ));
    };
    let body: PostedEvents = parse_body(&headers, &body).map_err(|ApiError(code, msg)| {
        ApiError(code, format!("{msg}; expected [{{\"key\": \"…\", \"hit\": true|false|1|0, \"ts_ms\": 1700000000000, \"latency_ms\": 12.5}}, …] or {{\"events\": [...]}}"))
    })?;
    let accepted = body.into_events(crate::usage::now_ms()).map_err(bad_request)?;
    for (i, event) in accepted.iter().enumerate() {
        usage
            .check(event)
            .map_err(|why| bad_request(format!("events[{i}]: {why}")))?;
    }
    usage.ingest(&accepted);
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            accepted: accepted.len(),
        }),
    ))
}

/// Query of `GET /cache/warming/hot-data`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HotQuery {
    /// One of the tracker's windows, e.g. `1m`, `1h`, `1day` (default 1h).
    window: Option<String>,
    /// Most keys (default 50, at most 1000).
    limit: Option<usize>,
}

/// The hottest keys of a window (access and miss counts with error bounds,
/// priority, owning plugin), rising and falling keys; an empty list with the
/// reason when there is no traffic.
#[utoipa::path(get, path = "/cache/warming/hot-data", tag = "usage", params(HotQuery),
    responses(
        (status = 200, description = "hot keys", body = HotData),
        (status = 400, description = "window is not a duration, or limit not a number", body = ErrorBody),
    ))]
async fn hot_data(State(shared): AppState, Query(q): Query<HotQuery>) -> Result<Json<HotData>, ApiError> {
    let Some(usage) = &shared.usage else {
        return Ok(Json(HotData::empty(
            None,
            "usage tracking is off ([usage] enabled = false)",
        )));
    };
    let window = match q.window.as_deref() {
        None => Duration::from_secs(3600),
        Some(w) => humantime::parse_duration(w).map_err(|e| bad_request(format!("window {w:?}: {e} (e.g. \"1h\")")))?,
    };
    usage.tick();
    Ok(Json(usage.hot_data(window, q.limit.unwrap_or(50).min(1000))))
}

/// `GET /cache/warming/stats`.
#[derive(Debug, Serialize, ToSchema)]
struct Stats {
    /// Hit rates around runs.
    effectiveness: Effectiveness,
    /// This process's memory and the runs' budget.
    resource_usage: ResourceUsage,
    /// Run and call times.
    timing: Timing,
    /// What runs cost and saved.
    cost_benefit: CostBenefit,
}

/// Effectiveness, resource usage, timing and cost-benefit; null where not measured.
#[utoipa::path(get, path = "/cache/warming/stats", tag = "usage",
    responses((status = 200, description = "figures", body = Stats)))]
async fn stats(State(shared): AppState) -> Json<Stats> {
    let (effectiveness, measured) = match &shared.usage {
        None => (
            Effectiveness {
                reason: Some("usage tracking is off".into()),
                ..Effectiveness::default()
            },
            MeasuredBenefit::default(),
        ),
        Some(usage) => usage.effectiveness(coverage(&shared, usage).await),
    };
    Json(Stats {
        effectiveness,
        resource_usage: super::resource_usage(&shared),
        timing: shared.runs.timing(),
        cost_benefit: shared.runs.cost_benefit(measured),
    })
}

/// How much of the hour's 50 hottest keys the backend holds now (none without traffic or backend).
async fn coverage(shared: &Shared, usage: &crate::usage::Usage) -> Option<CoverageView> {
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
    Some(CoverageView {
        hot_keys: c.hot,
        cached: c.cached,
        fraction: c.fraction,
        missing: c.missing.into_iter().take(10).collect(),
    })
}

/// `GET /cache/warming/schedule`.
#[derive(Debug, Serialize, ToSchema)]
struct ScheduleList {
    /// Every plugin's schedule.
    schedules: Vec<ScheduleView>,
    /// Cron times just before each plugin's traffic peaks (from usage events).
    suggestions: Vec<Suggestion>,
}

/// Per-plugin cron schedules with next fire times, and suggestions.
#[utoipa::path(get, path = "/cache/warming/schedule", tag = "schedules",
    responses((status = 200, description = "schedules", body = ScheduleList)))]
async fn schedule(State(shared): AppState) -> Json<ScheduleList> {
    let lead = shared.warmer().config().usage.predictive.lead_time;
    let suggestions = shared
        .usage
        .as_ref()
        .map(|u| u.schedule_suggestions(lead))
        .unwrap_or_default();
    Json(ScheduleList {
        schedules: shared.schedules.list(),
        suggestions,
    })
}

/// `200` of `POST schedule`.
#[derive(Debug, Serialize, ToSchema)]
struct ScheduleChanged {
    /// The plugin's schedule now (`persisted` = false when there is no job store).
    schedule: ScheduleView,
}

/// Change a plugin's schedule at run time (validated, persisted in the job store).
#[utoipa::path(post, path = "/cache/warming/schedule", tag = "schedules",
    request_body(content = ScheduleUpdate, description = "the change"),
    responses(
        (status = 200, description = "changed", body = ScheduleChanged),
        (status = 400, description = "a bad cron expression, jitter or combination", body = ErrorBody),
        (status = 404, description = "unknown plugin", body = ErrorBody),
        (status = 503, description = "the job store failed", body = ErrorBody),
    ))]
async fn update_schedule(
    State(shared): AppState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ScheduleChanged>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "body needs {\"plugin\": \"<name>\"} and any of \"cron\": \"*/15 * * * *\" (null removes), \"jitter\": \"30s\", \"enabled\": true, or \"reset\": true alone",
        ));
    }
    let update: ScheduleUpdate = parse_body_required(&headers, &body)?;
    match shared.schedules.update(update).await {
        Ok(schedule) => {
            shared.publish_schedules();
            Ok(Json(ScheduleChanged { schedule }))
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
