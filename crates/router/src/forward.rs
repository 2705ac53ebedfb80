//! Forwarding one call to a node, directly or through a peer router, on a kept
//! stream when there is one.

use crate::table::{Route, RouterTable};
use emc_p2p::{stream_protocol as protocol, Control};
use emc_protocol::wire::{self, call, mesh::RelayTo};
use emc_protocol::{Call, CallError, Frame, Served};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A router's call to a node, directly or through a peer router: the reply head and
/// its frames.
pub async fn call_node(
    control: Control,
    table: &Arc<RouterTable>,
    route: &Route,
    call: Call,
) -> Result<Served, CallError> {
    let request_hash = call.request_hash();
    let node = route.node;
    let peer = route.peer;
    let via = route.via;
    let open = || {
        let mut control = control.clone();
        async move {
            match via {
                None => control
                    .open_stream(peer, protocol(wire::CALL_PROTOCOL))
                    .await
                    .map_err(|e| CallError::Unavailable(format!("node {node}: {e}"))),
                Some(router) => {
                    let mut s = control
                        .open_stream(router, protocol(wire::RELAY_PROTOCOL))
                        .await
                        .map_err(|e| CallError::Unavailable(format!("router {router}: {e}")))?;
                    wire::write_frame(&mut s, &RelayTo(node)).await?;
                    Ok(s)
                }
            }
        }
    };
    let dialed = via.unwrap_or(peer);
    let (mut stream, pooled) = match table.idle_stream(via, peer) {
        Some(s) => (s, true),
        None => (table.open_serially(dialed, open).await?, false),
    };
    let head = match call::send_call(&mut stream, &call).await {
        Ok(h) => h,
        // An idle stream the other end has since closed, or a connection lost before
        // the node answered anything (a reply is only ever charged by its signed
        // receipt, so the node doing the work twice costs the caller nothing twice):
        // once more on a fresh stream, over a fresh connection if need be.
        Err(e) if pooled || wire::lost_stream(&e) => {
            tracing::debug!(%node, error = %e, "no answer on that stream; once more on a fresh one");
            stream = table.open_serially(dialed, open).await?;
            call::send_call(&mut stream, &call).await?
        }
        Err(e) => return Err(e),
    };
    let (status, ct, streaming) = head;
    let (tx, rx) = mpsc::channel(32);
    let table = table.clone();
    tokio::spawn(async move {
        loop {
            let (f, clean) = match call::read_reply(&mut stream).await {
                Ok(f) => (f, true),
                Err(e) => (Frame::Failed(e.to_string()), false),
            };
            let end = !matches!(f, Frame::Data(_));
            let delivered = tx.send(f).await.is_ok();
            if !delivered || end {
                // A reply read to its end leaves the stream ready for the next call.
                if delivered && clean {
                    table.keep_stream(via, peer, stream);
                }
                return;
            }
        }
    });
    Ok(Served::relayed(status, ct, streaming, request_hash, rx))
}
