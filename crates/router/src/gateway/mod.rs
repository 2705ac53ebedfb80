//! The client gateway: HTTP in front of the router.
//!
//! | endpoint | what |
//! |---|---|
//! | `POST /v1/embeddings`, `POST /v1/chat/completions` | OpenAI's API; `model` names the app; `"stream": true` streams server-sent events |
//! | `GET /v1/models` | every model the network serves through this router (no key needed) |
//! | `ANY /call/{app}/{path...}` | any app: an HTTP app gets the method, path, query and body |
//! | `GET /pubsub/{channel}` (WebSocket), `POST /pubsub/{channel}` | publish/subscribe, see [`crate::pubsub`] |
//! | `GET /nodes`, `GET /mesh` | the routing table: load, RTT, E, prices, outcomes; the peers' nodes |
//! | `GET /v1/market/failures/{bid}` | this router's signed reports of market lease `bid`'s failed calls ([`crate::failures`]; no key needed) |
//! | `POST /v1/jobs`, `GET /v1/jobs[/{id}[/logs, /files[/{path}]]]`, `DELETE /v1/jobs/{id}` | jobs on computing pools, see [`jobs`] |
//! | `GET /v1/siwe/nonce`, `POST /v1/siwe` | Sign-In with Ethereum: a session key for an escrow budget or a socket ([`crate::signin`]) |
//! | `GET /health` | `ok` |
//!
//! Every call needs an API key (`emc_client::keys`) as `Authorization: Bearer`,
//! signed by the paying account or by a session key it signed in ([`crate::signin`]). Per
//! request a caller may send `x-emc-max-price` (wei per unit), `x-emc-max-cost` (wei
//! reserved for the call), `x-emc-weights` (routing weights) and `x-emc-cache: allow`
//! (answer a deterministic call from the cache). A reply carries `x-emc-node`,
//! `x-emc-call`, `x-emc-charge` (wei, one-body replies) and the node's signed result
//! in `x-emc-result` (a trailer for streams, with `TE: trailers`).
//!
//! A call goes to the best node by [`crate::policy`]; if the node cannot be reached,
//! refuses, or fails before its reply is complete (a one-body reply) or before its
//! stream starts, the next one is tried, up to [`crate::attempt::MAX_TRIES`], and only the call
//! that returns a signed result is charged (the rules are [`crate::attempt`]'s). Errors use OpenAI's shape:
//! `{"error": {"message", "type"}}` with 400 (malformed), 401 (no, bad or expired key),
//! 402 (escrow, limit or price cap), 404 (no such app), 409 (replayed request),
//! 413 (too large), 429 (saturated), 503 (every node failed).
//!
//! By surface: [`openai`] (the OpenAI endpoints and the model list), [`calls`] (any
//! app, and the call loop every surface ends in), [`ws`] (pub/sub), [`state`] (what
//! every handler shares: keys, reservations, the cache).

pub mod calls;
pub mod jobs;
pub mod openai;
pub mod sealed;
pub mod siwe;
pub mod state;
pub mod ws;

pub use state::Gateway;

use crate::RouterError;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::Json;
use emc_protocol::call::MAX_REQUEST_BYTES;
use tokio::sync::watch;

/// The gateway's bounds: many clients (a gateway is public), a generous share per
/// address (clients behind one NAT), OpenAI's error shape for refusals.
pub fn limits() -> emc_http::Limits {
    emc_http::Limits {
        max_connections: 4096,
        max_per_ip: 256,
        refusal: emc_http::Refusal::OpenAi,
        ..Default::default()
    }
}

pub async fn serve(
    g: Gateway,
    addr: std::net::SocketAddr,
    limits: emc_http::Limits,
    mut stopped: watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, RouterError> {
    let app = axum::Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/nodes", get(nodes))
        .route("/mesh", get(mesh))
        .route("/v1/market/failures/{bid}", get(failures))
        .route("/v1/models", get(openai::models))
        .route("/v1/siwe/nonce", get(siwe::nonce))
        .route("/v1/siwe", post(siwe::sign_in))
        .route("/v1/sealed/offer", post(sealed::offer))
        .route("/v1/embeddings", post(openai::openai))
        .route("/v1/chat/completions", post(openai::openai))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::stop))
        .route("/v1/jobs/{id}/logs", get(jobs::logs))
        .route("/v1/jobs/{id}/files", get(jobs::files))
        .route("/v1/jobs/{id}/files/{*path}", get(jobs::file))
        .route("/pubsub/{channel}", get(ws::subscribe).post(ws::publish))
        .route("/call/{app}", any(calls::call_root))
        .route("/call/{app}/{*path}", any(calls::call_path))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(g);
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| RouterError::Listen {
            what: format!("the gateway on {addr}"),
            why: e.to_string(),
        })?;
    let bound = l.local_addr().map_err(|e| RouterError::Listen {
        what: format!("the gateway on {addr}"),
        why: e.to_string(),
    })?;
    emc_http::spawn(l, limits, move || app.clone(), async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    Ok(bound)
}

async fn nodes(State(g): State<Gateway>) -> impl IntoResponse {
    Json(g.table.snapshot())
}

async fn mesh(State(g): State<Gateway>) -> impl IntoResponse {
    Json(g.table.remote_snapshot())
}

/// `GET /v1/market/failures/{bid}`: `{"router", "reports": [FailureReport...]}`, each
/// report's fields as the Market's ABI names them.
async fn failures(
    State(g): State<Gateway>,
    axum::extract::Path(bid): axum::extract::Path<String>,
) -> axum::response::Response {
    let Ok(bid) = bid.parse::<alloy_primitives::U256>() else {
        let e = emc_protocol::CallError::BadRequest(format!("{bid:?} is not a bid id"));
        return emc_protocol::http::error_response(&e);
    };
    let reports: Vec<serde_json::Value> = g
        .failures
        .reports(bid)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "bidId": r.bidId.to_string(),
                "node": r.node,
                "at": r.at,
                "kind": r.kind,
                "requestHash": r.requestHash,
                "signature": r.signature,
            })
        })
        .collect();
    Json(serde_json::json!({"router": g.failures.router(), "reports": reports})).into_response()
}
