//! The router mesh: routers that name each other (`--peer-router`) exchange summaries
//! of their tables and relay calls to each other's nodes.
//!
//! * Every [`LOAD_EVERY`] a router sends each peer, on a `/emc/router-mesh/1` stream it
//!   keeps open, the summary of the nodes connected to it directly (apps, load, its
//!   RTT to each, E, registered prices). Only direct nodes are summarised, so a path
//!   is at most one router hop long and summaries never loop.
//! * A peer's node becomes a candidate at the distance *RTT to the peer router + the
//!   peer's RTT to the node*, so the policy weighs the hop like any other distance.
//!   A summary is trusted for routing only: what a call pays is what the chain says.
//! * A call to a peer's node opens `/emc/relay/1` to the peer with `RelayTo(node)`;
//!   the peer opens `/emc/compute/1` to its node and pipes bytes both ways. The
//!   node signs its result as always, and the gateway router checks that signature,
//!   so a relay cannot alter a reply unseen.
//! * Publications of the pub/sub channels ([`crate::pubsub`]) ride the same streams.
//! * Mesh and relay streams are accepted only from configured peers; entries of a
//!   peer whose stream ended or went quiet for three periods are dropped.

use crate::follow::keep_pinging;
use crate::pubsub::PubSub;
use crate::table::{peer_of, Remote, RouterTable};
use crate::RouterError;
use emc_p2p::{stream_protocol as protocol, Addr, Command, Control, Peer};
use emc_protocol::node::SealingKey;
use emc_protocol::wire::load::EVERY as LOAD_EVERY;
use emc_protocol::wire::mesh::{MeshMsg, RelayTo, MAX_SUMMARY};
use emc_protocol::wire::{self, call};
use emc_protocol::{CallError, NodeId};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

fn peer_in(addr: &Addr) -> Option<Peer> {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(p)) => Some(p),
        _ => None,
    }
}

/// Joins the mesh: accepts summaries and relays from `peers`, and keeps a summary
/// stream open to each of them.
pub fn start(
    table: Arc<RouterTable>,
    pubsub: Arc<PubSub>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    peers: Vec<Addr>,
    stopped: watch::Receiver<bool>,
) -> Result<(), RouterError> {
    let mut ids = BTreeSet::new();
    for a in &peers {
        ids.insert(peer_in(a).ok_or_else(|| RouterError::Listen {
            what: format!("--peer-router {a}"),
            why: "a peer router's address must end in /p2p/<peer id>".into(),
        })?);
    }
    let ids = Arc::new(ids);
    let mut summaries =
        control
            .accept(protocol(wire::MESH_PROTOCOL))
            .map_err(|e| RouterError::Listen {
                what: wire::MESH_PROTOCOL.into(),
                why: e.to_string(),
            })?;
    let (t, ps, allowed) = (table.clone(), pubsub.clone(), ids.clone());
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = summaries.next().await {
            if !allowed.contains(&peer) {
                tracing::debug!(%peer, "mesh stream from a router not configured as a peer");
                continue;
            }
            let (t, ps) = (t.clone(), ps.clone());
            tokio::spawn(async move {
                let r = follow_peer(&t, &ps, peer, &mut stream).await;
                t.remote.write().retain(|(r, _), _| *r != peer);
                tracing::info!(%peer, reason = ?r.err(), "peer router's summaries ended");
            });
        }
    });
    let mut relays = control
        .accept(protocol(wire::RELAY_PROTOCOL))
        .map_err(|e| RouterError::Listen {
            what: wire::RELAY_PROTOCOL.into(),
            why: e.to_string(),
        })?;
    let (t, c, allowed) = (table.clone(), control.clone(), ids.clone());
    tokio::spawn(async move {
        while let Some((peer, stream)) = relays.next().await {
            if !allowed.contains(&peer) {
                continue;
            }
            let (t, c) = (t.clone(), c.clone());
            tokio::spawn(async move {
                if let Err(e) = relay(&t, c, stream).await {
                    tracing::debug!(%peer, error = %e, "relay");
                }
            });
        }
    });
    for addr in peers {
        let Some(peer) = peer_in(&addr) else { continue };
        tokio::spawn(keep_pinging(
            table.clone(),
            control.clone(),
            peer,
            RouterTable::router_rtt,
        ));
        tokio::spawn(keep_peer(
            table.clone(),
            pubsub.clone(),
            control.clone(),
            commands.clone(),
            addr,
            peer,
            stopped.clone(),
        ));
    }
    Ok(())
}

/// Sends this router's summary to a peer every period, redialing when it breaks.
async fn keep_peer(
    table: Arc<RouterTable>,
    pubsub: Arc<PubSub>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    addr: Addr,
    peer: Peer,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let _ = commands.send(Command::Dial(addr.clone()));
        let attempt = async {
            let mut s = control
                .open_stream(peer, protocol(wire::MESH_PROTOCOL))
                .await
                .map_err(|e| CallError::Unavailable(e.to_string()))?;
            tracing::info!(%peer, "sending summaries to peer router");
            let mut publications = pubsub.add_peer(peer);
            let mut tick = tokio::time::interval(LOAD_EVERY);
            loop {
                let m = tokio::select! {
                    _ = tick.tick() => MeshMsg::Summary(table.summaries()),
                    Some(p) = publications.recv() => MeshMsg::Publish(p),
                };
                wire::write_frame(&mut s, &m).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), CallError>(())
        };
        tokio::select! {
            r = attempt => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "peer router stream ended; redialing");
                }
            }
            _ = stopped.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

async fn follow_peer(
    table: &RouterTable,
    pubsub: &PubSub,
    peer: Peer,
    stream: &mut libp2p::Stream,
) -> Result<(), CallError> {
    loop {
        let next = tokio::time::timeout(
            LOAD_EVERY * 3,
            wire::read_frame::<_, MeshMsg>(stream, wire::MAX_SMALL_FRAME),
        )
        .await
        .map_err(|_| CallError::Timeout("no summary".into()))??;
        let list = match next {
            Some(MeshMsg::Summary(list)) => list,
            Some(MeshMsg::Publish(p)) => {
                pubsub.from_peer(p, peer);
                continue;
            }
            None => return Ok(()),
        };
        if list.len() > MAX_SUMMARY {
            return Err(CallError::TooLarge(format!(
                "a summary of {} nodes",
                list.len()
            )));
        }
        let now = Instant::now();
        // Keys decoded (each a point decompression) and sealing keys checked (a
        // signature) outside the lock, and kept from the last summary when the node
        // and its sealing key are the same.
        type Decoded = (
            Peer,
            Option<ed25519_consensus::VerificationKey>,
            Option<SealingKey>,
        );
        let known: std::collections::BTreeMap<NodeId, Decoded> = table
            .remote
            .read()
            .iter()
            .filter(|((r, _), _)| *r == peer)
            .map(|((_, n), e)| (*n, (e.peer, e.key, e.summary.sealing.clone())))
            .collect();
        let mut entries = Vec::with_capacity(list.len());
        for mut s in list {
            let known = known.get(&s.node);
            if known.is_none_or(|k| k.2 != s.sealing) {
                s.sealing = table.bound_sealing(s.node, s.sealing.take());
            }
            let (node_peer, key) = match known {
                Some(k) => (k.0, k.1),
                None => match peer_of(&s.node) {
                    Some(p) => (
                        p,
                        ed25519_consensus::VerificationKey::try_from(s.node.0 .0).ok(),
                    ),
                    None => continue,
                },
            };
            entries.push((s, node_peer, key));
        }
        let mut remote = table.remote.write();
        remote.retain(|(r, _), _| *r != peer);
        for (s, node_peer, key) in entries {
            remote.insert(
                (peer, s.node),
                Remote {
                    summary: s,
                    at: now,
                    peer: node_peer,
                    key,
                },
            );
        }
    }
}

/// The relaying side of `/emc/relay/1`.
async fn relay(
    table: &Arc<RouterTable>,
    mut control: Control,
    mut stream: libp2p::Stream,
) -> Result<(), CallError> {
    let RelayTo(node) = wire::expect(&mut stream, wire::MAX_SMALL_FRAME).await?;
    let target = match peer_of(&node).filter(|p| table.is_direct(p)) {
        Some(p) => p,
        None => {
            let e = CallError::Unavailable(format!("node {node} is not connected to this router"));
            return call::refuse(&mut stream, &e).await;
        }
    };
    // Relayed calls share the node's room with this router's own.
    let Some(_running) = table.try_start_direct(target) else {
        let e = CallError::Saturated(format!("node {node} is running as many calls as it takes"));
        return call::refuse(&mut stream, &e).await;
    };
    let open = move || async move {
        control
            .open_stream(target, protocol(wire::CALL_PROTOCOL))
            .await
            .map_err(|e| CallError::Unavailable(format!("node {node}: {e}")))
    };
    let out = match table.open_serially(target, open).await {
        Ok(s) => s,
        Err(e) => return call::refuse(&mut stream, &CallError::Unavailable(e.to_string())).await,
    };
    let (mut ar, mut aw) = stream.split();
    let (mut br, mut bw) = out.split();
    let up = async {
        let r = pipe(&mut ar, &mut bw).await;
        let _ = bw.close().await;
        r
    };
    let down = async {
        let r = pipe(&mut br, &mut aw).await;
        let _ = aw.close().await;
        r
    };
    // The reply ends the exchange; a caller that goes away ends it too.
    tokio::pin!(up, down);
    tokio::select! {
        r = &mut down => { r.map_err(|e| CallError::Unavailable(e.to_string()))?; }
        _ = &mut up => { let _ = down.await; }
    }
    Ok(())
}

/// Copies until the end of `r`, flushing each piece at once (a relay must not hold a
/// reply's bytes back waiting for more).
async fn pipe<R, W>(r: &mut R, w: &mut W) -> std::io::Result<u64>
where
    R: futures::AsyncRead + Unpin,
    W: futures::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(total);
        }
        w.write_all(&buf[..n]).await?;
        w.flush().await?;
        total += n as u64;
    }
}
