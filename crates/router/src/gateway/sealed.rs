//! Sealed calls at the gateway (`crate::sealed` has the rules).
//!
//! * `POST /v1/sealed/offer` `{"app": "<app>"}` (with the caller's API key): a call id
//!   and the ranked candidates that take sealed calls, each with its node id, DID,
//!   X25519 key and binding, for the client to check and seal to:
//!   `{"call", "chainId", "app", "expiresIn", "candidates": [{"node", "did", "x25519",
//!   "binding", "price"}]}`.
//! * The call itself is an ordinary `/call/{app}/{path}` with `x-emc-sealed: <call id>`
//!   and the body `{"sealed": [{"node": "0x…", "envelope": "<base64>"}]}`: one envelope
//!   per candidate the client accepts, at most [`MAX_TRIES`], tried in the order
//!   offered. The reply is the chosen node's sealed records (`x-emc-node` names it).

use super::state::Gateway;
use crate::attempt::MAX_TRIES;
use crate::policy::{self, Weights};
use alloy_primitives::{Address, B256};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use emc_protocol::http::error_response;
use emc_protocol::{CallError, NodeId};
use serde_json::{json, Value};
use std::time::Instant;

/// The header that makes a call sealed, naming its offered call id.
pub const HEADER: &str = "x-emc-sealed";

/// `POST /v1/sealed/offer`.
pub async fn offer(State(g): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
    match try_offer(&g, &headers, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error_response(&e),
    }
}

async fn try_offer(g: &Gateway, headers: &HeaderMap, body: &[u8]) -> Result<Value, CallError> {
    #[derive(serde::Deserialize)]
    struct Ask {
        app: String,
    }
    let ask: Ask = serde_json::from_slice(body)
        .map_err(|e| CallError::BadRequest(format!("an offer is asked as {{\"app\": …}}: {e}")))?;
    g.signin.resolve(g.key(headers)?, &ask.app).await?;
    let chain_id = g.chain_id();
    let mut routes = g.table.candidates(&ask.app);
    // Every key in the table was checked as it arrived (`RouterTable::bound_sealing`).
    routes.retain(|r| r.sealing.is_some());
    let view: Vec<policy::Candidate> = routes.iter().map(|r| r.candidate.clone()).collect();
    let order = policy::rank(&ask.app, &view, None, &Weights::default())
        .map_err(crate::attempt::no_route)?;
    let chosen: Vec<_> = order.iter().take(MAX_TRIES).map(|&i| &routes[i]).collect();
    let call = g.offers.offer(
        &ask.app,
        chosen.iter().map(|r| r.node).collect(),
        Instant::now(),
    )?;
    let hex = |b: &[u8]| format!("0x{}", alloy_primitives::hex::encode(b));
    let candidates: Vec<Value> = chosen
        .iter()
        .filter_map(|r| {
            let k = r.sealing.as_ref()?;
            Some(json!({
                "node": r.node.to_string(),
                "did": format!("did:ethr:0x{chain_id:x}:{:#x}", Address::from(k.did)),
                "x25519": hex(&k.x25519),
                "binding": hex(&k.binding),
                "price": r.candidate.price.map(|p| p.to_string()),
            }))
        })
        .collect();
    Ok(json!({
        "call": call.to_string(),
        "chainId": chain_id,
        "app": ask.app,
        "expiresIn": crate::sealed::OFFER_TTL.as_secs(),
        "candidates": candidates,
    }))
}

/// A sealed call's envelopes, per node, in the order to try them.
pub struct Sealed {
    pub call: B256,
    pub envelopes: Vec<(NodeId, Bytes)>,
}

impl Sealed {
    pub fn envelope(&self, node: NodeId) -> Option<&Bytes> {
        self.envelopes
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, b)| b)
    }
}

/// The sealed call a request makes, if it names one: its offer is spent, and only
/// nodes it was offered with are kept.
pub fn request(
    g: &Gateway,
    headers: &HeaderMap,
    app: &str,
    body: &[u8],
) -> Result<Option<Sealed>, CallError> {
    let Some(id) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = |why: String| CallError::BadRequest(format!("sealed call: {why}"));
    let call: B256 = id
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            bad(format!(
                "{HEADER} must be an offered call id (32 bytes, hex)"
            ))
        })?;
    #[derive(serde::Deserialize)]
    struct Body {
        sealed: Vec<Envelope>,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        node: B256,
        envelope: String,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is {{\"sealed\": [{{\"node\", \"envelope\"}}]}}: {e}"
        ))
    })?;
    if b.sealed.is_empty() || b.sealed.len() > MAX_TRIES {
        return Err(bad(format!(
            "1 to {MAX_TRIES} envelopes, not {}",
            b.sealed.len()
        )));
    }
    let offered = g.offers.take(call, app, Instant::now())?;
    let mut envelopes = Vec::with_capacity(b.sealed.len());
    for e in b.sealed {
        let node = NodeId(e.node);
        if !offered.contains(&node) {
            return Err(bad(format!("node {node} was not offered for call {call}")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(e.envelope.as_bytes())
            .map_err(|_| bad(format!("the envelope for {node} is not base64")))?;
        envelopes.push((node, Bytes::from(bytes)));
    }
    // Tried in the order the router offered them.
    envelopes.sort_by_key(|(n, _)| offered.iter().position(|o| o == n));
    Ok(Some(Sealed { call, envelopes }))
}
