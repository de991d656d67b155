//! The OpenAPI 3.1 description of the API (`GET /openapi.json`), generated
//! from the handlers' `#[utoipa::path]` attributes and the request and answer
//! types. The router registers every route together with its description
//! (utoipa-axum's `routes!`), so a route cannot go undescribed; what the
//! layers around the handlers answer (bad bodies, 413, the bearer token) is
//! added here, and `security` only when a token is configured.

use super::api::ErrorBody;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

/// The document's header and the error schema every operation refers to.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "preheat",
        description = "Cache warming engine scripted with WebAssembly plugins: runs, schedules, metrics and live progress. Errors are JSON {\"error\": \"...\"}."
    ),
    components(schemas(ErrorBody))
)]
struct Base;

/// The document before the routes are added.
pub fn base() -> OpenApi {
    Base::openapi()
}

/// An error answer described by [`ErrorBody`].
fn error(description: &str) -> RefOr<Response> {
    let schema = RefOr::Ref(utoipa::openapi::Ref::from_schema_name(ErrorBody::name()));
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .into()
}

/// Every operation of the document.
fn operations(doc: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// Marks every operation of `doc` as needing the bearer token (the routes of
/// the router behind `require_token`, when a token is configured).
pub fn require_bearer(doc: &mut OpenApi) {
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for op in operations(doc) {
        op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
        op.responses
            .responses
            .insert("401".into(), error("missing or wrong `Authorization: Bearer <token>`"));
    }
}

/// Adds what the layers around the handlers answer: for a body, 400 (not
/// JSON, or not the schema), 408 (too slow), 413 (over `[serve] max_body`) and
/// 415 (not `application/json`). A route without its own 400 gets one too
/// when it takes query parameters.
pub fn finish(doc: &mut OpenApi) {
    for op in operations(doc) {
        let responses = &mut op.responses.responses;
        if op.request_body.is_some() {
            for (code, what) in [
                ("400", "the body is not JSON, or not of the schema"),
                ("408", "the body did not arrive within [serve] body_timeout"),
                ("413", "the body is over [serve] max_body"),
                ("415", "the body is not application/json"),
            ] {
                responses.entry(code.into()).or_insert_with(|| error(what));
            }
        }
        if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            responses
                .entry("400".into())
                .or_insert_with(|| error("a query parameter is invalid"));
        }
    }
}
