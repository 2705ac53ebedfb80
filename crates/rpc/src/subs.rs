//! `eth_subscribe`: newHeads, logs (with an address/topic filter) and
//! newPendingTransactions, pushed over WebSocket from the chain's event channel.
//!
//! A subscriber that falls more than the channel's capacity behind skips what it
//! missed rather than holding the node's memory; the subscription stays open.

use crate::{invalid_params, json, Ctx, RpcError};
use alloy_rpc_types_eth::Filter;
use emc_chain::ChainEvent;
use emc_storage::LogFilter;
use jsonrpsee::{
    core::SubscriptionResult, PendingSubscriptionSink, RpcModule, SubscriptionMessage,
};
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
    let sink = pending.accept().await?;
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
        for item in items(&kind, &ev) {
            let raw = serde_json::value::to_raw_value(&item)?;
            if sink.send(SubscriptionMessage::from(raw)).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

fn items(kind: &Kind, ev: &ChainEvent) -> Vec<Value> {
    match (kind, ev) {
        (Kind::Heads, ChainEvent::NewBlock { header, .. }) => vec![json::header_json(header)],
        (Kind::Pending, ChainEvent::PendingTx(h)) => vec![serde_json::json!(h)],
        (Kind::Logs(f), ChainEvent::NewBlock { header, receipts }) => {
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
