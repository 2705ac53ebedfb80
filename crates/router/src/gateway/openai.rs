//! The OpenAI surface: `/v1/embeddings`, `/v1/chat/completions` (the request's
//! `model` names the app, which must be of the endpoint's kind) and `/v1/models`.

use super::calls::call;
use super::state::Gateway;
use alloy_primitives::U256;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::Json;
use emc_protocol::http::{error_response, kind_for, RequestBody};
use emc_protocol::{clip, CallError};

/// OpenAI's model list: every app a connected node serves, with its cheapest
/// registered price.
pub async fn models(State(g): State<Gateway>) -> impl IntoResponse {
    let mut by_app: std::collections::BTreeMap<String, (String, Option<U256>, usize)> =
        Default::default();
    for (a, price) in g.table.apps() {
        let e = by_app
            .entry(a.name.clone())
            .or_insert((a.kind.clone(), None, 0));
        e.2 += 1;
        if let Some(p) = price {
            e.1 = Some(e.1.map_or(p, |q: U256| q.min(p)));
        }
    }
    let data: Vec<serde_json::Value> = by_app
        .into_iter()
        .map(|(id, (kind, price, nodes))| {
            serde_json::json!({
                "id": id, "object": "model", "created": 0, "owned_by": "emc",
                "kind": kind, "nodes": nodes, "price": price.map(|p| p.to_string()),
            })
        })
        .collect();
    Json(serde_json::json!({"object": "list", "data": data}))
}

fn bad(m: impl Into<String>) -> Response {
    error_response(&CallError::BadRequest(m.into()))
}

pub async fn openai(
    State(g): State<Gateway>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let path = uri.path().to_string();
    let kind = kind_for(&path);
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    let Some(model) = json.get("model").and_then(|m| m.as_str()) else {
        return bad("name a model (GET /v1/models lists them)");
    };
    match g.table.app_kind(model) {
        None => return error_response(&CallError::no_app(model)),
        Some(k) if k != kind => {
            return bad(format!("{} is a {k} app, not one for {path}", clip(model)))
        }
        Some(_) => {}
    }
    let app = model.to_string();
    call(g, app, path, Method::POST, headers, body).await
}
