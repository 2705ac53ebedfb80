//! The Sign-In with Ethereum surface: `GET /v1/siwe/nonce` and `POST /v1/siwe`
//! ([`crate::signin`] has the rules).

use super::state::Gateway;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use emc_protocol::http::{error_response, RequestBody};
use emc_protocol::CallError;

/// `{"nonce"}`: one sign-in's nonce.
pub async fn nonce(State(g): State<Gateway>) -> Response {
    match g.signin.nonce() {
        Ok(n) => Json(serde_json::json!({ "nonce": n })).into_response(),
        Err(e) => error_response(&e),
    }
}

#[derive(serde::Deserialize)]
struct SignIn {
    message: String,
    /// Hex, `0x`-prefixed: 65 bytes from an EOA, anything its wallet accepts from a
    /// contract (EIP-1271).
    signature: String,
}

/// `POST /v1/siwe` `{"message", "signature"}`: 201 and the session, or the reason.
pub async fn sign_in(
    State(g): State<Gateway>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let bad = |m: String| error_response(&CallError::BadRequest(m));
    let s: SignIn = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return bad(format!("send {{\"message\", \"signature\"}}: {e}")),
    };
    let Ok(signature) = alloy_primitives::hex::decode(s.signature.trim()) else {
        return bad("the signature is not hex".into());
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    match g.signin.open(host, &s.message, &signature).await {
        Ok(o) => (StatusCode::CREATED, Json(o)).into_response(),
        Err(e) => error_response(&e),
    }
}
