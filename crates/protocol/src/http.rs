//! The HTTP surface nodes and routers share: errors in OpenAI's shape with their
//! status, request bodies bounded the same way, and a reply turned into a response
//! (one body with the signed result in the `x-emc-result` header, or a stream with it
//! as a trailer).

use crate::call::{collect, Frame, Served, MAX_REQUEST_BYTES};
use crate::result::SignedResult;
use crate::CallError;
use alloy_primitives::{keccak256, Keccak256, B256};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;

/// The header (or trailer) a signed result travels in: hex of its borsh encoding.
pub const RESULT_HEADER: &str = "x-emc-result";

/// The built-in runtime an OpenAI endpoint is served by: `/v1/embeddings` by MiniLM,
/// `/v1/chat/completions` by SmolLM2 (a node's port and a router's gateway agree).
pub fn kind_for(path: &str) -> &'static str {
    if path == "/v1/embeddings" {
        "builtin:minilm"
    } else {
        "builtin:smollm2"
    }
}

/// An error in OpenAI's shape with the matching status.
pub fn error_response(e: &CallError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": {"message": e.to_string(), "type": "emc_error"}});
    (status, Json(body)).into_response()
}

/// A request's body, refused in OpenAI's shape like every other error of these
/// ports ([`error_response`]): 413 for one over [`MAX_REQUEST_BYTES`], 400 for one
/// that broke off or did not arrive in time (axum alone answers in plain text).
#[derive(Debug)]
pub struct RequestBody(pub Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RequestBody {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RequestBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(error_response(&CallError::TooLarge(format!(
                    "the request body is over {MAX_REQUEST_BYTES} bytes"
                ))))
            }
            Err(e) => Err(error_response(&CallError::BadRequest(format!(
                "reading the request body: {}",
                e.body_text()
            )))),
        }
    }
}

/// The path an app is called with: `/` + what followed `/call/{app}/`, and the query.
pub fn app_path(rest: &str, uri: &axum::http::Uri) -> String {
    match uri.query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    }
}

pub fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
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
        let (body, signed) = collect(served).await;
        return match signed.and_then(|s| check(&s, keccak256(&body)).map(|()| s)) {
            Ok(s) => {
                let mut r = (status, body).into_response();
                r.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
                if let Ok(v) = HeaderValue::from_str(&s.to_header()) {
                    r.headers_mut().insert(RESULT_HEADER, v);
                }
                r
            }
            Err(e) => error_response(&CallError::Unavailable(e)),
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
