//! Connects the p2p layer to the chain and to consensus.
//!
//! * Consensus gossip is decoded (bounded) and its signature and signer checked against
//!   the validator set before it is forwarded to peers or handed to consensus; garbage
//!   or forgeries are rejected, which lowers the sender's gossip score, and reported,
//!   which gets a persistent offender banned.
//! * Transaction gossip goes through `Chain::submit` (the same checks as JSON-RPC);
//!   transactions this node accepts, from RPC or gossip, are published; its own (not
//!   from gossip) again every two seconds while they wait in its pool, since a
//!   publish made before any peer's subscription is known reaches nobody.
//! * State queries: one key at one height, answered with a Merkle proof against that
//!   height's state root, so a light client that trusts only certified headers can
//!   check a balance or a storage slot.
//! * Block sync: on connecting and every two seconds, the node asks a peer for the
//!   blocks after its head. Each block is accepted only if its commit certificate
//!   verifies against the validator set and it re-executes to the same header; then it
//!   is committed with its certificate, and consensus moves on from the new head.

use crate::consensus::Gossip;
use borsh::BorshDeserialize;
use emc_chain::{Chain, ChainEvent, SubmitError};
use emc_consensus::{
    verify_certificate, verify_message, CommitCertificate, Crypto, Ed25519Crypto, Message,
    ValidatorSet,
};
use emc_p2p::{
    Command, Event, MessageAcceptance, SyncRequest, SyncResponse, Topic, MAX_SYNC_BLOCKS,
};
use emc_types::{Block, Height};
use rand::seq::IteratorRandom;
use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

/// Most of this node's own pending transactions it keeps publishing again.
const MAX_OWN_PENDING: usize = 256;
use tokio::sync::{mpsc, watch};

/// Publishes consensus messages on the consensus topic.
pub struct P2pGossip(pub mpsc::UnboundedSender<Command>);

impl Gossip for P2pGossip {
    fn broadcast(&self, msg: &Message) {
        let _ = self
            .0
            .send(Command::Publish(Topic::Consensus, msg.encode()));
    }
}

/// A block as sync carries it.
type SyncedBlock = (Block, Vec<u8>);

pub async fn run(
    chain: Arc<Chain>,
    mut p2p: emc_p2p::P2p,
    consensus: mpsc::Sender<Message>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<crate::metrics::Metrics>,
    net: Arc<emc_rpc::NetInfo>,
) {
    let commands = p2p.commands.clone();
    let verifier = Ed25519Crypto::verify_only();
    let mut sets = SetCache::default();
    let mut peers: HashSet<emc_p2p::Peer> = HashSet::new();
    let mut syncing = false;
    // Hashes of transactions that came in by gossip (bounded), not to publish again.
    let mut from_gossip: HashSet<alloy_primitives::B256> = HashSet::new();
    // Transactions this node published itself, published again every tick while they
    // wait in its pool: a publish made before any peer's subscription was known
    // reaches nobody, and the transaction would wait forever (gossip drops a repeat
    // of one that did go out as a duplicate).
    let mut own: VecDeque<alloy_primitives::B256> = VecDeque::new();
    let mut chain_events = chain.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {
                if !syncing {
                    syncing = request_sync(&chain, &peers, &commands);
                }
                own.retain(|h| match chain.pool_tx(h) {
                    Some(tx) => {
                        let _ = commands.send(Command::Publish(Topic::Transactions, tx.raw.to_vec()));
                        true
                    }
                    None => false,
                });
            }
            ev = chain_events.recv() => match ev {
                Ok(ChainEvent::PendingTx(hash)) => {
                    // Gossip already carries what arrived by gossip; publish only the rest.
                    if from_gossip.remove(&hash) {
                        continue;
                    }
                    if let Some(tx) = chain.pool_tx(&hash) {
                        let _ = commands.send(Command::Publish(Topic::Transactions, tx.raw.to_vec()));
                        if own.len() == MAX_OWN_PENDING {
                            own.pop_front();
                        }
                        own.push_back(hash);
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            ev = p2p.events.recv() => {
                let Some(ev) = ev else { return };
                match ev {
                    Event::Gossip { topic: Topic::Consensus, from, id, data } => {
                        let verdict = consensus_gossip(&chain, &mut sets, &verifier, &data);
                        // A rejection counts against the sender's gossip score.
                        let _ = commands.send(Command::Validate(id, from, verdict.0));
                        if let Some(m) = verdict.1 {
                            let _ = consensus.try_send(m);
                        }
                    }
                    Event::Gossip { topic: Topic::Transactions, from, id, data } => {
                        if from_gossip.len() > 100_000 {
                            from_gossip.clear();
                        }
                        from_gossip.insert(alloy_primitives::keccak256(&data));
                        let c = chain.clone();
                        let verdict = match tokio::task::spawn_blocking(move || c.submit(&data)).await {
                            Ok(Ok(_)) => MessageAcceptance::Accept,
                            Ok(Err(SubmitError::Decode(_))) => MessageAcceptance::Reject,
                            _ => MessageAcceptance::Ignore,
                        };
                        let _ = commands.send(Command::Validate(id, from, verdict));
                    }
                    Event::SyncRequest { request, channel, .. } => {
                        let c = chain.clone();
                        let response = tokio::task::spawn_blocking(move || serve_sync(&c, request)).await.unwrap_or_default();
                        let _ = commands.send(Command::Respond(channel, response));
                    }
                    Event::SyncResponse { peer, response } => {
                        let c = chain.clone();
                        let n = response.blocks.len();
                        let applied = tokio::task::spawn_blocking(move || apply_sync(&c, response)).await;
                        syncing = false;
                        match applied {
                            Ok(Ok(k)) if k > 0 => {
                                metrics.sync_blocks.inc_by(k as u64);
                                tracing::info!(%peer, blocks = k, head = %chain.head().height, "synced");
                                if n as u32 == MAX_SYNC_BLOCKS {
                                    syncing = request_sync(&chain, &peers, &commands);
                                }
                            }
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, error = %e, "peer sent blocks that do not verify");
                                let _ = commands.send(Command::Penalize(peer));
                            }
                            Err(_) => {}
                        }
                    }
                    Event::SyncFailed { .. } => syncing = false,
                    Event::StateRequest { request, channel, .. } => {
                        let c = chain.clone();
                        let response = tokio::task::spawn_blocking(move || serve_state(&c, request)).await.unwrap_or_default();
                        let _ = commands.send(Command::RespondState(channel, response));
                    }
                    // This node asks for no state; a light client does.
                    Event::StateResponse { .. } | Event::StateFailed { .. } => {}
                    Event::Connected(p) => {
                        peers.insert(p);
                        metrics.peers.set(peers.len() as i64);
                        net.set_peers(peers.len());
                        if !syncing {
                            syncing = request_sync(&chain, &peers, &commands);
                        }
                    }
                    Event::Disconnected(p) => {
                        peers.remove(&p);
                        metrics.peers.set(peers.len() as i64);
                        net.set_peers(peers.len());
                    }
                    Event::Banned(_) => {
                        metrics.peers_banned.inc();
                    }
                }
            }
        }
    }
}

/// Decodes and checks one consensus message against the set that seals its height;
/// past-height ones are dropped quietly. A message for a later height than the next
/// is checked against the next height's set: if it fails, the set may have changed
/// at an epoch boundary this node has not reached, so it is ignored, not blamed.
fn consensus_gossip(
    chain: &Chain,
    sets: &mut SetCache,
    verifier: &dyn Crypto,
    data: &[u8],
) -> (MessageAcceptance, Option<Message>) {
    let Ok(m) = Message::decode(data) else {
        return (MessageAcceptance::Reject, None);
    };
    let head = chain.head().height;
    if m.height() <= head {
        return (MessageAcceptance::Ignore, None);
    }
    let Some(set) = sets.get(chain, head) else {
        return (MessageAcceptance::Ignore, None);
    };
    if !verify_message(verifier, chain.chain_id(), set, &m) {
        let verdict = if m.height() == head.next() {
            MessageAcceptance::Reject
        } else {
            MessageAcceptance::Ignore
        };
        return (verdict, None);
    }
    (MessageAcceptance::Accept, Some(m))
}

/// The sealing set of the next height, read from state once per head.
#[derive(Default)]
struct SetCache(Option<(Height, ValidatorSet)>);

impl SetCache {
    fn get(&mut self, chain: &Chain, head: Height) -> Option<&ValidatorSet> {
        if self.0.as_ref().is_none_or(|(h, _)| *h != head) {
            self.0 = sealing_set(chain, head).map(|s| (head, s));
        }
        self.0.as_ref().map(|(_, s)| s)
    }
}

/// The set that seals the block after `height`.
pub(crate) fn sealing_set(chain: &Chain, height: Height) -> Option<ValidatorSet> {
    let members = chain.validator_set_at(height).ok()?;
    emc_chain::consensus_set(&members).ok()
}

fn request_sync(
    chain: &Chain,
    peers: &HashSet<emc_p2p::Peer>,
    commands: &mpsc::UnboundedSender<Command>,
) -> bool {
    let Some(peer) = peers.iter().choose(&mut rand::thread_rng()) else {
        return false;
    };
    let request = SyncRequest {
        from: chain.head().height.0 + 1,
        count: MAX_SYNC_BLOCKS,
    };
    commands
        .send(Command::RequestBlocks {
            peer: *peer,
            request,
        })
        .is_ok()
}

/// One state key at one height with its proof against that height's state root.
fn serve_state(chain: &Chain, req: emc_p2p::StateRequest) -> emc_p2p::StateResponse {
    let Ok(key) = emc_storage::StateKey::try_from_slice(&req.key) else {
        return Default::default();
    };
    let Ok(snapshot) = chain.state_at(Height(req.height)) else {
        return Default::default();
    };
    match snapshot.prove(&key) {
        Ok((value, proof)) => emc_p2p::StateResponse {
            found: true,
            value: value.map(serde_bytes::ByteBuf::from),
            proof: serde_bytes::ByteBuf::from(proof),
        },
        Err(_) => Default::default(),
    }
}

fn serve_sync(chain: &Chain, req: SyncRequest) -> SyncResponse {
    let mut out = SyncResponse::default();
    let head = chain.head().height.0;
    for h in req.from
        ..req
            .from
            .saturating_add(req.count.min(MAX_SYNC_BLOCKS) as u64)
    {
        if h == 0 || h > head {
            break;
        }
        let (Ok(Some((block, _))), Ok(Some(cert))) = (
            chain.store().block(Height(h)),
            chain.store().certificate(Height(h)),
        ) else {
            break;
        };
        let item: SyncedBlock = (block, cert);
        out.blocks.push(serde_bytes::ByteBuf::from(
            borsh::to_vec(&item).expect("borsh into a Vec never fails"),
        ));
    }
    out
}

/// Verifies and commits synced blocks in order; returns how many were new.
fn apply_sync(chain: &Chain, resp: SyncResponse) -> Result<usize, String> {
    let verifier = Ed25519Crypto::verify_only();
    let mut applied = 0;
    for raw in resp.blocks {
        let (block, cert_bytes) =
            SyncedBlock::try_from_slice(&raw).map_err(|e| format!("undecodable block: {e}"))?;
        let height = block.header.height;
        if height <= chain.head().height {
            continue; // consensus got there first
        }
        let cert = CommitCertificate::try_from_slice(&cert_bytes)
            .map_err(|e| format!("undecodable certificate: {e}"))?;
        // The head is this block's parent here, so its state names the sealing set.
        let set = sealing_set(chain, chain.head().height)
            .ok_or_else(|| format!("block {height}: no validator set at the head"))?;
        verify_certificate(
            &verifier,
            chain.chain_id(),
            &set,
            height,
            block.hash(),
            &cert,
        )
        .map_err(|e| format!("block {height}: {e}"))?;
        let encoded = borsh::to_vec(&block).expect("borsh into a Vec never fails");
        let built = match chain.import(&encoded) {
            Ok(b) => b,
            // Consensus committed this height meanwhile.
            Err(_) if chain.head().height >= height => continue,
            Err(e) => return Err(format!("block {height}: {e}")),
        };
        match chain.commit(built, Some(&cert_bytes)) {
            Ok(_) => applied += 1,
            Err(_) if chain.head().height >= height => continue,
            Err(e) => return Err(format!("block {height}: {e}")),
        }
    }
    Ok(applied)
}
