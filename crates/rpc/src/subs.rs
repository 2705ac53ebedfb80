//! `eth_subscribe`: newHeads, logs (with an address/topic filter) and
//! newPendingTransactions, pushed over WebSocket from the chain's event channel.
//!
//! Memory stays bounded whatever subscribers do: a WebSocket holds at most
//! `max_subscriptions` subscriptions (jsonrpsee refuses more), notifications wait in
//! one buffer of `ws_buffer` per connection, and a subscription whose notification
//! finds that buffer full is closed with a reason instead of waiting (a subscriber
//! that does not read loses its subscriptions, not the node its memory). A
//! `newHeads` notification is rendered once per block, however many subscribe.
//!
//! Over plain HTTP there is nothing to push to: `eth_subscribe` there is answered
//! with -32601 and a reason (connect over WebSocket, or poll with `eth_newFilter`).

use crate::{invalid_params, json, Ctx, RpcError};
use alloy_rpc_types_eth::Filter;
use emc_chain::ChainEvent;
use emc_storage::LogFilter;
use jsonrpsee::{
    core::SubscriptionResult, PendingSubscriptionSink, RpcModule, SubscriptionMessage,
};
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

enum Kind {
    Heads,
    Logs(LogFilter),
    Pending,
}

pub(crate) fn register(m: &mut RpcModule<Ctx>) -> Result<(), RpcError> {
    m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        subscribe,
    )
    .map_err(|e| RpcError::Register("eth_subscribe", e.to_string()))?;
    Ok(())
}

async fn subscribe(
    params: jsonrpsee::types::Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: Arc<Ctx>,
    _: jsonrpsee::Extensions,
) -> SubscriptionResult {
    let mut seq = params.sequence();
    let name: String = match seq.next() {
        Ok(n) => n,
        Err(e) => {
            pending.reject(e).await;
            return Ok(());
        }
    };
    let kind = match name.as_str() {
        "newHeads" => Kind::Heads,
        "newPendingTransactions" => Kind::Pending,
        "logs" => {
            let f: Option<Filter> = match seq.optional_next() {
                Ok(f) => f,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let f = f.unwrap_or_default();
            Kind::Logs(LogFilter {
                addresses: f.address.iter().copied().collect(),
                topics: crate::eth::topics_of(&f),
                ..Default::default()
            })
        }
        other => {
            pending
                .reject(invalid_params(format!(
                    "unknown subscription \"{other}\": use newHeads, logs or newPendingTransactions"
                )))
                .await;
            return Ok(());
        }
    };
    let mut rx = ctx.chain.subscribe();
    let mut sink = pending.accept().await?;
    loop {
        let ev = tokio::select! {
            _ = sink.closed() => break,
            ev = rx.recv() => ev,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::debug!(skipped = n, "subscriber lagged");
                continue;
            }
            Err(RecvError::Closed) => break,
        };
        for raw in items(&ctx, &kind, &ev)? {
            use jsonrpsee::core::server::TrySendError;
            match sink.try_send(SubscriptionMessage::from(raw)) {
                Ok(()) => {}
                Err(TrySendError::Closed(_)) => return Ok(()),
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(subscription = ?sink.subscription_id(), "subscriber does not read; subscription closed");
                    return Err(format!(
                        "closed: {} notifications were waiting unread on this connection",
                        ctx.cfg.ws_buffer
                    )
                    .into());
                }
            }
        }
    }
    Ok(())
}

/// The `newHeads` notification of the last block, rendered once (keyed by height:
/// blocks are final, one per height).
#[derive(Default)]
pub(crate) struct Rendered(Mutex<Option<(u64, Box<serde_json::value::RawValue>)>>);

impl Rendered {
    fn get(
        &self,
        header: &emc_types::Header,
    ) -> Result<Box<serde_json::value::RawValue>, serde_json::Error> {
        let height = header.height.0;
        let mut last = self.0.lock();
        if let Some((h, raw)) = last.as_ref() {
            if *h == height {
                return Ok(raw.clone());
            }
        }
        let raw = serde_json::value::to_raw_value(&json::header_json(header))?;
        *last = Some((height, raw.clone()));
        Ok(raw)
    }
}

/// Marks a request that came over plain HTTP (not a WebSocket upgrade), so the
/// subscription methods can say why they cannot work there.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OverHttp;

/// The HTTP layer that marks plain HTTP requests with [`OverHttp`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct MarkHttp;

impl<S> tower::Layer<S> for MarkHttp {
    type Service = MarkHttpService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MarkHttpService(inner)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct MarkHttpService<S>(S);

impl<S, B> tower::Service<http::Request<B>> for MarkHttpService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if !req.headers().contains_key(http::header::UPGRADE) {
            req.extensions_mut().insert(OverHttp);
        }
        self.0.call(req)
    }
}

/// The JSON-RPC layer that makes subscription errors say what to do: a subscription
/// method over plain HTTP is answered with where to go instead (jsonrpsee alone says
/// only "Internal error"), and a subscription past the bound names the bound.
#[derive(Clone, Debug)]
pub(crate) struct SubscriptionErrors<S> {
    pub inner: S,
    pub max: u32,
}

impl<S> jsonrpsee::server::middleware::rpc::RpcServiceT for SubscriptionErrors<S>
where
    S: jsonrpsee::server::middleware::rpc::RpcServiceT<MethodResponse = jsonrpsee::MethodResponse>
        + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        req: jsonrpsee::types::Request<'a>,
    ) -> impl std::future::Future<Output = Self::MethodResponse> + Send + 'a {
        let over_http = req.extensions().get::<OverHttp>().is_some();
        let method = req.method_name().to_string();
        let id = req.id().into_owned();
        let (inner, max) = (self.inner.clone(), self.max);
        async move {
            let err = |code: i32, msg: String| {
                jsonrpsee::MethodResponse::error(
                    id.clone(),
                    jsonrpsee::types::ErrorObjectOwned::owned(code, msg, None::<()>),
                )
            };
            if over_http && (method == "eth_subscribe" || method == "eth_unsubscribe") {
                return err(-32601, format!("{method} needs a WebSocket: connect with ws:// to this same port; over HTTP, poll with eth_newFilter and eth_getFilterChanges"));
            }
            let rp = inner.call(req).await;
            if rp.as_error_code() == Some(jsonrpsee::types::error::TOO_MANY_SUBSCRIPTIONS_CODE) {
                return err(
                    jsonrpsee::types::error::TOO_MANY_SUBSCRIPTIONS_CODE,
                    format!("too many subscriptions on this WebSocket: at most {max}; end one with eth_unsubscribe, or open another connection"),
                );
            }
            rp
        }
    }

    fn batch<'a>(
        &self,
        batch: jsonrpsee::core::middleware::Batch<'a>,
    ) -> impl std::future::Future<Output = Self::BatchResponse> + Send + 'a {
        self.inner.batch(batch)
    }

    fn notification<'a>(
        &self,
        n: jsonrpsee::core::middleware::Notification<'a>,
    ) -> impl std::future::Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

type Raw = Box<serde_json::value::RawValue>;

/// The notifications `ev` makes for a subscription of `kind`.
fn items(ctx: &Ctx, kind: &Kind, ev: &ChainEvent) -> Result<Vec<Raw>, serde_json::Error> {
    match (kind, ev) {
        (Kind::Heads, ChainEvent::NewBlock { header, .. }) => Ok(vec![ctx.heads.get(header)?]),
        (Kind::Pending, ChainEvent::PendingTx(h)) => Ok(vec![serde_json::value::to_raw_value(h)?]),
        (Kind::Logs(f), ChainEvent::NewBlock { .. }) => logs(f, ev)
            .iter()
            .map(serde_json::value::to_raw_value)
            .collect(),
        _ => Ok(Vec::new()),
    }
}

fn logs(f: &LogFilter, ev: &ChainEvent) -> Vec<Value> {
    match ev {
        ChainEvent::NewBlock { header, receipts } => {
            let hash = header.hash();
            let mut out = Vec::new();
            let mut index = 0u32;
            for rc in receipts.iter() {
                for log in &rc.logs {
                    if f.matches(log) {
                        out.push(json::log_json(
                            log,
                            header.height.0,
                            hash,
                            rc.tx_index,
                            rc.tx_hash,
                            index,
                        ));
                    }
                    index += 1;
                }
            }
            out
        }
        _ => Vec::new(),
    }
}
