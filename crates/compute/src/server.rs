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

use crate::agent::{Agent, Frame, Served};
use crate::runtime::{Call, MAX_REQUEST_BYTES};
use crate::{ComputeError, SignedResult};
use alloy_primitives::{keccak256, Keccak256, B256};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use std::sync::Arc;

pub const RESULT_HEADER: &str = "x-emc-result";

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

/// A request's body, refused in OpenAI's shape like every other error of these
/// ports ([`error_response`]): 413 for one over [`MAX_REQUEST_BYTES`], 400 for one
/// that broke off or did not arrive in time (axum alone answers in plain text).
pub struct RequestBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RequestBody {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RequestBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(error_response(&ComputeError::TooLarge(format!(
                    "the request body is over {MAX_REQUEST_BYTES} bytes"
                ))))
            }
            Err(e) => Err(error_response(&ComputeError::BadRequest(format!(
                "reading the request body: {}",
                e.body_text()
            )))),
        }
    }
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

/// An error in OpenAI's shape with the matching status.
pub fn error_response(e: &ComputeError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": {"message": e.to_string(), "type": "emc_error"}});
    (status, Json(body)).into_response()
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
        return error_response(&ComputeError::no_app(model.as_deref().unwrap_or(kind)));
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

/// The path an app is called with: `/` + what followed `/call/{app}/`, and the query.
pub fn app_path(rest: &str, uri: &axum::http::Uri) -> String {
    match uri.query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    }
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

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn respond(agent: &Arc<Agent>, call: Call, req_headers: &HeaderMap) -> Response {
    match agent.call(call).await {
        Ok(served) => to_response(served, req_headers, Box::new(|_, _| Ok(()))).await,
        Err(e) => error_response(&e),
    }
}

/// What a relay does with a reply's signed result and the keccak256 of the bytes it
/// relayed (a router checks the node's signature and result hash, and records the
/// receipt); an error fails the reply.
pub type Check = Box<dyn FnOnce(&SignedResult, B256) -> Result<(), String> + Send>;

/// A reply as HTTP: a one-body reply is collected, its signed result passed to
/// `check` and sent in the `x-emc-result` header; a stream is passed on as it comes,
/// hashed on the way, its signed result checked at the end and sent as a trailer when
/// the client sent `TE: trailers` (a stream whose check fails ends in an error).
pub async fn to_response(served: Served, req_headers: &HeaderMap, check: Check) -> Response {
    let status = StatusCode::from_u16(served.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let ct = HeaderValue::from_str(&served.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    if !served.streaming {
        let (body, signed) = crate::agent::collect(served).await;
        return match signed.and_then(|s| check(&s, keccak256(&body)).map(|()| s)) {
            Ok(s) => {
                let mut r = (status, body).into_response();
                r.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
                if let Ok(v) = HeaderValue::from_str(&s.to_header()) {
                    r.headers_mut().insert(RESULT_HEADER, v);
                }
                r
            }
            Err(e) => error_response(&ComputeError::Unavailable(e)),
        };
    }
    let wants_trailers = req_headers
        .get(axum::http::header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("trailers"));
    let mut r = Response::new(stream_body(served, wants_trailers, check));
    *r.status_mut() = status;
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    if wants_trailers {
        r.headers_mut().insert(
            axum::http::header::TRAILER,
            HeaderValue::from_static(RESULT_HEADER),
        );
    }
    r
}

fn stream_body(served: Served, trailers: bool, check: Check) -> Body {
    use http_body::Frame as HFrame;
    // The whole `Served` rides along, so the call counts as running until the last
    // frame is handed to the connection.
    let state = Some((served, Keccak256::new(), check));
    let frames = futures::stream::unfold(state, move |state| async move {
        let (mut served, mut hasher, check) = state?;
        match served.frames.recv().await {
            Some(Frame::Data(b)) => {
                hasher.update(&b);
                Some((Ok(HFrame::data(b)), Some((served, hasher, check))))
            }
            Some(Frame::Done(s)) => {
                if let Err(e) = check(&s, hasher.finalize()) {
                    return Some((Err(std::io::Error::other(e)), None));
                }
                if !trailers {
                    return None;
                }
                let mut h = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&s.to_header()) {
                    h.insert(RESULT_HEADER, v);
                }
                Some((Ok(HFrame::trailers(h)), None))
            }
            None => None,
            Some(Frame::Failed(e)) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    Body::new(http_body_util::StreamBody::new(frames))
}
