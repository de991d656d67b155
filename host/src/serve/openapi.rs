//! The OpenAPI 3.1 description of the API (`GET /openapi.json`). A test checks
//! that every route the router serves is described here.

use serde_json::{json, Value};

/// One operation: summary, whether it needs the token, request body schema, answers.
fn op(summary: &str, mutating: bool, body: Option<Value>, answers: &[(&str, &str)]) -> Value {
    let mut o = json!({ "summary": summary, "responses": {} });
    for (code, what) in answers {
        o["responses"][*code] = json!({ "description": what });
    }
    if mutating {
        o["security"] = json!([{ "bearer": [] }]);
        o["responses"]["401"] = json!({ "description": "missing or wrong bearer token (when a token is configured)" });
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": schema } } });
        o["responses"]["400"] = json!({ "description": "invalid JSON or invalid field, with {\"error\"}" });
        o["responses"]["413"] = json!({ "description": "body over [serve] max_body" });
    }
    o
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "additionalProperties": false, "properties": props, "required": required })
}

/// The document.
pub fn document() -> Value {
    let string = json!({"type": "string"});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let priority = json!({"type": "string", "enum": ["critical", "high", "normal", "low"]});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "preheat",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Cache warming engine scripted with WebAssembly plugins: runs, schedules, metrics and live progress."
        },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "paths": {
            "/": { "get": op("The dashboard (HTML)", false, None, &[("200", "the page")]) },
            "/dashboard/app.js": { "get": op("Dashboard script", false, None, &[("200", "JavaScript")]) },
            "/dashboard/style.css": { "get": op("Dashboard style sheet", false, None, &[("200", "CSS")]) },
            "/healthz": { "get": op("Liveness: version, uptime, whether runs are active", false, None, &[("200", "ok")]) },
            "/metrics": { "get": op("Prometheus/OpenMetrics text: preheat_runs_total, preheat_keys_total{plugin,outcome}, preheat_bytes_written_total, preheat_fuel_consumed_total, preheat_retries_total, preheat_deadline_hits_total, preheat_active_runs, preheat_produce_duration_seconds", false, None, &[("200", "metrics")]) },
            "/openapi.json": { "get": op("This document", false, None, &[("200", "OpenAPI 3.1")]) },
            "/cache/warming/start": { "post": op(
                "Start a run (all enabled plugins, or some), optionally filtered by key glob, tags and minimum priority",
                true,
                Some(obj(json!({"plugins": strings, "strategy": string, "pattern": string, "tags": strings, "min_priority": priority}), &[])),
                &[("202", "{run_id, plugins}"), ("404", "unknown plugin"), ("409", "a plugin of the request is already running")],
            ) },
            "/cache/warming/stop": { "post": op(
                "Stop a run (or all) gracefully: batches in flight finish, the rest is abandoned and reported",
                true,
                Some(obj(json!({"run_id": string, "wait": {"type": "boolean"}}), &[])),
                &[("202", "{stopping: [run ids]}"), ("200", "with wait: {stopped, runs}"), ("409", "no such run in progress")],
            ) },
            "/cache/warming/status": { "get": op("Active runs with progress, current batch, performance, recent errors, per-plugin counters; the last finished run", false, None, &[("200", "status")]) },
            "/cache/warming/progress": { "get": op("Progress, current batch and performance of the current run", false, None, &[("200", "progress")]) },
            "/cache/warming/warm-key": { "post": op(
                "Warm one key now: the plugin's produce builds the value; answers when written",
                true,
                Some(obj(json!({"plugin": string, "key": string, "ttl": {"oneOf": [{"type": "integer"}, {"type": "string"}]}, "priority": priority, "arg": string}), &["plugin", "key"])),
                &[("200", "{outcome, run}"), ("404", "unknown plugin"), ("409", "the plugin is running"), ("422", "the key is invalid for the plugin"), ("502", "the plugin or the backend failed")],
            ) },
            "/cache/warming/warm-pattern": { "post": op(
                "Warm the enumerated keys matching a glob (`*` crosses separators)",
                true,
                Some(obj(json!({"pattern": string, "plugins": strings}), &["pattern"])),
                &[("202", "{run_id, plugins, pattern}"), ("404", "unknown plugin"), ("409", "a plugin is running")],
            ) },
            "/cache/warming/hot-data": { "get": {
                "summary": "The hottest keys of a window (access and miss counts with error bounds, priority, owning plugin), rising and falling keys; an empty list with the reason when there is no traffic",
                "parameters": [{"name": "window", "in": "query", "schema": {"type": "string"}, "description": "one of the tracker's windows, e.g. 1m, 1h, 1day (default 1h)"}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "{window, keys, rising, falling, reason}"}, "400": {"description": "bad window"}},
            } },
            "/cache/warming/schedule": {
                "get": op("Per-plugin cron schedules with next fire times, and suggestions", false, None, &[("200", "{schedules, suggestions}")]),
                "post": op(
                    "Change a plugin's schedule at run time (validated, persisted in the job store)",
                    true,
                    Some(obj(json!({"plugin": string, "cron": {"type": ["string", "null"], "description": "absent keeps, null removes"}, "jitter": {"type": ["string", "null"], "description": "absent keeps, null or \"0s\" removes"}, "enabled": {"type": "boolean"}, "reset": {"type": "boolean", "description": "drop the API override and go back to the config (sent alone)"}}), &["plugin"])),
                    &[("200", "{schedule} (schedule.persisted = false when there is no job store)"), ("404", "unknown plugin"), ("503", "the job store failed")],
                ),
            },
            "/cache/warming/stats": { "get": op("Effectiveness, resource usage, timing and cost-benefit; null where not measured", false, None, &[("200", "stats")]) },
            "/cache/warming/runs": { "get": {
                "summary": "Run history from the job store (rows of whole runs and of each plugin)",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "{runs}"}, "503": {"description": "no job store"}},
            } },
            "/cache/warming/events": {
              "post": op(
                "Access events in: a JSON array (or {\"events\": [...]}) of {key, hit, ts_ms (default now), latency_ms}",
                true,
                Some(json!({"type": "array", "items": obj(json!({"key": string, "hit": {"oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}]}, "ts_ms": {"type": "integer"}, "latency_ms": {"type": "number"}}), &["key", "hit"])})),
                &[("202", "{accepted}"), ("409", "usage tracking is off")],
              ),
              "get": op("Server-Sent Events: hello (status), progress (every 500 ms per active run), run_finished, schedules; at shutdown a last shutdown event, then the stream ends", false, None, &[("200", "text/event-stream")]),
            },
        }
    })
}
