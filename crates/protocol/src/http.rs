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

type BodyFrame = Result<http_body::Frame<Bytes>, std::io::Error>;

/// A stream's body: [`pump`] reads the reply in a task of its own and hands its
/// frames on, so the reply is read to its end (and checked) whether or not the
/// client still reads it.
fn stream_body(served: Served, trailers: bool, check: Check) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<BodyFrame>(STREAM_BUFFER);
    tokio::spawn(pump(served, trailers, check, tx));
    let frames =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    Body::new(http_body_util::StreamBody::new(frames))
}

/// Frames a stream's body buffers ahead of a slow client (past them the reply waits).
const STREAM_BUFFER: usize = 16;

/// Reads a streamed reply to its end, hashing it, and passes each frame to the
/// client while it is there. The signed result is checked when the reply ends even
/// when the client hung up first: a relay charges a call its node finished, so a
/// client cannot read a stream to its last token, hang up before the result, and
/// pay nothing. The whole `Served` stays here until the reply is handed on, so the
/// call counts as running until then.
async fn pump(
    mut served: Served,
    trailers: bool,
    check: Check,
    tx: tokio::sync::mpsc::Sender<BodyFrame>,
) {
    use http_body::Frame as HFrame;
    let mut hasher = Keccak256::new();
    let mut client = Some(tx);
    let last = loop {
        match served.frames.recv().await {
            Some(Frame::Data(b)) => {
                hasher.update(&b);
                if let Some(tx) = &client {
                    if tx.send(Ok(HFrame::data(b))).await.is_err() {
                        client = None;
                    }
                }
            }
            Some(Frame::Done(s)) => match check(&s, hasher.finalize()) {
                Err(e) => break Some(Err(std::io::Error::other(e))),
                Ok(()) if trailers => {
                    let mut h = HeaderMap::new();
                    if let Ok(v) = HeaderValue::from_str(&s.to_header()) {
                        h.insert(RESULT_HEADER, v);
                    }
                    break Some(Ok(HFrame::trailers(h)));
                }
                Ok(()) => break None,
            },
            Some(Frame::Failed(e)) => break Some(Err(std::io::Error::other(e))),
            None => break None,
        }
    };
    if let (Some(tx), Some(frame)) = (client, last) {
        let _ = tx.send(frame).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Metering, ResultClaim};
    use crate::{NodeId, Unit};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn signed() -> SignedResult {
        let k = ed25519_consensus::SigningKey::from([3; 32]);
        let claim = ResultClaim {
            request_hash: B256::repeat_byte(1),
            call: B256::repeat_byte(2),
            result_hash: keccak256(b"ab"),
            node: NodeId(B256::from(k.verification_key().to_bytes())),
            metering: Metering {
                unit: Unit::Tokens,
                units: 2,
                bytes: 2,
                wall_us: 1,
            },
            max_units: 10,
            extensions: vec![],
        };
        SignedResult::sign(&k, claim)
    }

    /// A stream and a flag raised when its result was checked with the hash of what
    /// the node sent.
    fn streamed(trailers: bool) -> (Body, tokio::sync::mpsc::Sender<Frame>, Arc<AtomicBool>) {
        let (tx, frames) = tokio::sync::mpsc::channel(4);
        let served = Served::relayed(200, "text/event-stream".into(), true, B256::ZERO, frames);
        let checked = Arc::new(AtomicBool::new(false));
        let flag = checked.clone();
        let check: Check = Box::new(move |_, hash| {
            assert_eq!(
                hash,
                keccak256(b"ab"),
                "the hash of every byte the node sent"
            );
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        (stream_body(served, trailers, check), tx, checked)
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_before_the_result_is_still_charged() {
        let (mut body, node, checked) = streamed(true);
        node.send(Frame::Data(Bytes::from_static(b"a")))
            .await
            .expect("send");
        let first = body.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data"), Bytes::from_static(b"a"));
        drop(body); // the client read the first token and hung up
        node.send(Frame::Data(Bytes::from_static(b"b")))
            .await
            .expect("the reply is still read");
        node.send(Frame::Done(signed())).await.expect("send");
        for _ in 0..100 {
            if checked.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the result of a reply the client left was never checked");
    }

    #[tokio::test]
    async fn a_client_that_reads_to_the_end_gets_the_result_as_a_trailer() {
        let (body, node, checked) = streamed(true);
        for f in [
            Frame::Data(Bytes::from_static(b"a")),
            Frame::Data(Bytes::from_static(b"b")),
            Frame::Done(signed()),
        ] {
            node.send(f).await.expect("send");
        }
        let all = body.collect().await.expect("body");
        let trailer = all.trailers().and_then(|t| t.get(RESULT_HEADER)).cloned();
        assert_eq!(all.to_bytes(), Bytes::from_static(b"ab"));
        assert_eq!(
            trailer.and_then(|v| v.to_str().ok().map(str::to_string)),
            Some(signed().to_header())
        );
        assert!(checked.load(Ordering::SeqCst));
    }
}
