//! Following a connected node: its load stream and its round trips.

use crate::table::{peer_of, NodeEntry, RouterTable};
use alloy_primitives::Address;
use emc_p2p::{stream_protocol as protocol, Control, Peer};
use emc_protocol::wire::{self, load};
use emc_protocol::CallError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Pings `peer` every period and hands each round trip to `record`.
pub async fn keep_pinging(
    table: Arc<RouterTable>,
    mut control: Control,
    peer: Peer,
    record: fn(&RouterTable, &Peer, Duration),
) {
    let mut seq = 0u64;
    loop {
        if let Ok(mut s) = control
            .open_stream(peer, protocol(wire::PING_PROTOCOL))
            .await
        {
            loop {
                seq += 1;
                match tokio::time::timeout(load::EVERY * 2, wire::ping::ping(&mut s, seq)).await {
                    Ok(Ok(d)) => record(&table, &peer, d),
                    _ => break,
                }
                tokio::time::sleep(load::EVERY).await;
            }
        }
        tokio::time::sleep(load::EVERY).await;
    }
}

/// Reads a node's hello and then its load reports into the table, until the stream
/// ends or goes quiet.
pub async fn follow_node(
    table: &RouterTable,
    peer: Peer,
    stream: &mut libp2p::Stream,
) -> Result<(), CallError> {
    let load::Hello {
        node,
        apps,
        load,
        sealing,
    } = load::read_hello(stream).await?;
    if peer_of(&node) != Some(peer) {
        return Err(CallError::BadSignature(format!(
            "peer {peer} announced node id {node}, not its own key"
        )));
    }
    tracing::info!(%peer, %node, apps = apps.len(), "computing node connected");
    table.nodes.write().insert(
        peer,
        NodeEntry {
            node,
            peer: peer.to_string(),
            apps,
            load,
            rtt: Default::default(),
            inflight: 0,
            ok: 0,
            failed: 0,
            owner: Address::ZERO,
            registered: BTreeMap::new(),
            e: 0,
            stake: alloy_primitives::U256::ZERO,
            key: ed25519_consensus::VerificationKey::try_from(node.0 .0).ok(),
            sealing: table.bound_sealing(node, sealing),
        },
    );
    loop {
        let next = tokio::time::timeout(load::EVERY * 3, load::read_load(stream))
            .await
            .map_err(|_| CallError::Timeout("no load report".into()))??;
        match next {
            Some(l) => {
                if let Some(e) = table.nodes.write().get_mut(&peer) {
                    e.load = l;
                }
            }
            None => return Ok(()),
        }
    }
}
