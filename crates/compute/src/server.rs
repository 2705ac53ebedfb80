//! The computing node's own HTTP port: the apps it serves, its load, and calls, for the
//! operator, for a router on the same host, and for benchmarks of the node's overhead.
//!
//! * `GET /apps`, `GET /load`, `GET /health`
//! * `POST /v1/embeddings`, `POST /v1/chat/completions`: OpenAI's shapes; the request's
//!   `model` names an app, or else the first built-in model of the right kind serves.
//! * `ANY /call/{app}/{path...}`: any app, the body passed through.
//!
//! A one-body reply carries the node's signed result in the `x-emc-result` header (hex
//! of its borsh encoding). A streamed reply is passed on as it comes, and the signed
//! result follows as the HTTP trailer `x-emc-result` (sent to clients that say
//! `TE: trailers`, as HTTP asks).

use crate::agent::Agent;
use crate::runtime::{Call, MAX_REQUEST_BYTES};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use emc_protocol::http::{app_path, content_type, error_response, to_response, RequestBody};
use emc_protocol::CallError;
use std::sync::Arc;

pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/apps", get(apps))
        .route("/load", get(load))
        .route("/v1/embeddings", post(openai))
        .route("/v1/chat/completions", post(openai))
        .route("/call/{app}", any(call_root))
        .route("/call/{app}/{*path}", any(call_path))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(agent)
}

/// Serves on `listener` within `limits` until `shutdown` resolves.
pub fn serve(
    listener: tokio::net::TcpListener,
    agent: Arc<Agent>,
    limits: emc_http::Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Arc<emc_http::Stats> {
    let app = router(agent);
    emc_http::spawn(listener, limits, move || app.clone(), shutdown)
}

async fn apps(State(agent): State<Arc<Agent>>) -> impl IntoResponse {
    Json(serde_json::json!({"node": agent.id(), "apps": agent.apps()}))
}

async fn load(State(agent): State<Arc<Agent>>) -> impl IntoResponse {
    Json(agent.load())
}

/// The bounds of a computing node's own port: its operator, a router on the same
/// host and benchmarks use it, so fewer connections than a public gateway.
pub fn limits() -> emc_http::Limits {
    emc_http::Limits {
        max_connections: 512,
        max_per_ip: 128,
        refusal: emc_http::Refusal::OpenAi,
        ..Default::default()
    }
}

async fn openai(
    State(agent): State<Arc<Agent>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let path = uri.path().to_string();
    let kind = crate::models::kind_for(&path);
    let model = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("model").and_then(|m| m.as_str()).map(str::to_string));
    let apps = agent.apps();
    let app = apps
        .iter()
        .find(|a| Some(&a.name) == model.as_ref() && a.kind == kind)
        .or_else(|| apps.iter().find(|a| a.kind == kind));
    let Some(app) = app else {
        return error_response(&CallError::no_app(model.as_deref().unwrap_or(kind)));
    };
    let call = Call {
        id: alloy_primitives::B256::ZERO,
        app: app.name.clone(),
        method: method.to_string(),
        path,
        content_type: content_type(&headers),
        body,
        max_units: crate::runtime::UNLIMITED,
    };
    respond(&agent, call, &headers).await
}

async fn call_root(
    State(agent): State<Arc<Agent>>,
    Path(app): Path<String>,
    method: Method,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    call_app(agent, app, "/".into(), method, headers, body).await
}

async fn call_path(
    State(agent): State<Arc<Agent>>,
    Path((app, path)): Path<(String, String)>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    call_app(agent, app, app_path(&path, &uri), method, headers, body).await
}

async fn call_app(
    agent: Arc<Agent>,
    app: String,
    path: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let call = Call {
        id: alloy_primitives::B256::ZERO,
        app,
        method: method.to_string(),
        path,
        content_type: content_type(&headers),
        body,
        max_units: crate::runtime::UNLIMITED,
    };
    respond(&agent, call, &headers).await
}

async fn respond(agent: &Arc<Agent>, call: Call, req_headers: &HeaderMap) -> Response {
    match agent.call(call).await {
        Ok(served) => to_response(served, req_headers, Box::new(|_, _| Ok(()))).await,
        Err(e) => error_response(&e),
    }
}
