//! Pub/sub at the gateway: `GET /pubsub/{channel}` (a WebSocket that publishes what
//! the client sends and delivers what anyone publishes) and `POST /pubsub/{channel}`.

use super::state::Gateway;
use crate::pubsub;
use alloy_primitives::Address;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use emc_protocol::http::{error_response, RequestBody};
use emc_protocol::wire::mesh::Publication;
use std::sync::Arc;
use std::time::Duration;

/// How often a pub/sub WebSocket is pinged, and how long a subscriber may stay silent
/// (no pong, no message) before it is dropped.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENT_MAX: Duration = Duration::from_secs(90);

#[derive(serde::Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

/// `GET /pubsub/{channel}`: a WebSocket that publishes what the client sends and
/// delivers what anyone publishes.
pub async fn subscribe(
    State(g): State<Gateway>,
    Path(channel): Path<String>,
    axum::extract::Query(q): axum::extract::Query<KeyQuery>,
    headers: HeaderMap,
    ws: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let key = match g.key_or(&headers, q.key.as_deref()) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let rx = match g.pubsub.subscribe(&channel) {
        Ok(rx) => rx,
        Err(e) => return error_response(&e),
    };
    ws.max_message_size(pubsub::MAX_MESSAGE)
        .on_upgrade(move |socket| session(g, channel, key.account, rx, socket))
}

async fn session(
    g: Gateway,
    channel: String,
    account: Address,
    mut rx: tokio::sync::broadcast::Receiver<Arc<Publication>>,
    mut socket: axum::extract::ws::WebSocket,
) {
    use axum::extract::ws::Message;
    use tokio::sync::broadcast::error::RecvError;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                // A subscriber that answers no ping is gone (or never reads): drop it.
                if heard.elapsed() > SILENT_MAX || socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            got = rx.recv() => {
                let text = match got {
                    Ok(p) => pubsub::to_json(&p),
                    Err(RecvError::Lagged(n)) => serde_json::json!({"channel": channel, "missed": n}).to_string(),
                    Err(RecvError::Closed) => return,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => {
                heard = tokio::time::Instant::now();
                let data = match msg {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                if let Err(e) = g.pubsub.publish(&channel, account, data) {
                    let text = serde_json::json!({"error": e.to_string()}).to_string();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// `POST /pubsub/{channel}`: publishes the body once.
pub async fn publish(
    State(g): State<Gateway>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    RequestBody(body): RequestBody,
) -> Response {
    let key = match g.key(&headers) {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    match g.pubsub.publish(&channel, key.account, body.to_vec()) {
        Ok(n) => Json(serde_json::json!({"delivered_here": n})).into_response(),
        Err(e) => error_response(&e),
    }
}
