//! EMC networking on rust-libp2p.
//!
//! * Transport: TCP with noise (authenticated encryption, the peer id is the key) and
//!   yamux multiplexing.
//! * Discovery: identify tells each side the other's listen addresses; kademlia keeps a
//!   routing table seeded from the bootnodes and walks it every few seconds; the node
//!   dials what it learns until it has enough peers.
//! * Gossip: gossipsub topics for consensus messages and transactions. Messages are held
//!   until the node has validated them ([`Command::Validate`]): only valid ones are
//!   forwarded; invalid ones lower the sender's gossipsub score, and a peer the node
//!   reports too often ([`Command::Penalize`]) is disconnected and refused from then on.
//!   Message ids are the sha256 of the content, so a transaction or vote relayed by
//!   many peers is delivered once.
//! * Sync: request-response `/emc/sync/1`, blocks by height range, each with its commit
//!   certificate (opaque bytes to this crate; the node verifies them).
//! * State queries: request-response `/emc/state/1`, one state key at one height, with
//!   a Merkle proof against that height's state root, for light clients.
//!
//! Every size from the network is bounded before it is allocated: gossip messages by
//! `max_transmit_size`, sync requests and responses by the codec's limits, the number
//! of blocks per response by [`MAX_SYNC_BLOCKS`].
//!
//! This crate knows nothing of blocks or consensus: it moves bytes and reports events;
//! `emc-node` decides what is valid.

use futures::StreamExt;
use libp2p::{
    gossipsub, identify, identity, kad,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
    Multiaddr, PeerId, StreamProtocol, Swarm,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};
use tokio::sync::mpsc;

pub use libp2p::{
    gossipsub::MessageAcceptance, request_response::ResponseChannel, Multiaddr as Addr,
    PeerId as Peer,
};

/// At most this many blocks per sync response.
pub const MAX_SYNC_BLOCKS: u32 = 128;
/// Largest gossip message: a consensus proposal with its block.
pub const MAX_GOSSIP_BYTES: usize = 9 * 1024 * 1024;
const MAX_SYNC_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// Reports before a peer is banned.
const BAN_AFTER: u32 = 20;
const TARGET_PEERS: usize = 25;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    Consensus,
    Transactions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRequest {
    pub from: u64,
    pub count: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncResponse {
    /// Encoded (block, certificate) pairs, from `from` upwards, without gaps.
    pub blocks: Vec<serde_bytes::ByteBuf>,
}

/// Ask a peer for one piece of state at a height, with its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRequest {
    pub height: u64,
    /// The node's encoding of the state key (small: at most [`MAX_STATE_KEY`] bytes).
    pub key: serde_bytes::ByteBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateResponse {
    /// False when the peer does not have that height.
    pub found: bool,
    pub value: Option<serde_bytes::ByteBuf>,
    /// A proof against the state root of that height (opaque to this crate).
    pub proof: serde_bytes::ByteBuf,
}

pub const MAX_STATE_KEY: usize = 128;

#[derive(Debug)]
pub enum Event {
    Gossip {
        topic: Topic,
        from: PeerId,
        id: gossipsub::MessageId,
        data: Vec<u8>,
    },
    SyncRequest {
        peer: PeerId,
        request: SyncRequest,
        channel: ResponseChannel<SyncResponse>,
    },
    SyncResponse {
        peer: PeerId,
        response: SyncResponse,
    },
    SyncFailed {
        peer: PeerId,
    },
    StateRequest {
        peer: PeerId,
        request: StateRequest,
        channel: ResponseChannel<StateResponse>,
    },
    StateResponse {
        peer: PeerId,
        response: StateResponse,
    },
    Connected(PeerId),
    Disconnected(PeerId),
}

pub enum Command {
    Publish(Topic, Vec<u8>),
    Validate(gossipsub::MessageId, PeerId, MessageAcceptance),
    RequestBlocks {
        peer: PeerId,
        request: SyncRequest,
    },
    Respond(ResponseChannel<SyncResponse>, SyncResponse),
    RequestState {
        peer: PeerId,
        request: StateRequest,
    },
    RespondState(ResponseChannel<StateResponse>, StateResponse),
    /// The node caught this peer sending something invalid.
    Penalize(PeerId),
    Dial(Multiaddr),
}

#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    #[error("p2p: {0}")]
    Setup(String),
}

#[derive(Clone, Debug)]
pub struct P2pConfig {
    /// The node's network identity comes from this seed (ed25519).
    pub key_seed: [u8; 32],
    pub listen: Multiaddr,
    pub bootnodes: Vec<Multiaddr>,
    /// Separates networks: topics and the sync protocol name carry it.
    pub chain_id: u64,
    /// Largest gossip message sent or accepted ([`MAX_GOSSIP_BYTES`] unless set).
    pub max_message_bytes: Option<usize>,
}

/// The peer id a key seed gives, so a devnet can name its bootnodes in advance.
pub fn peer_id_of(seed: [u8; 32]) -> PeerId {
    keypair(seed).public().to_peer_id()
}

fn keypair(seed: [u8; 32]) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(seed).expect("32 bytes is a valid ed25519 seed")
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    state: request_response::cbor::Behaviour<StateRequest, StateResponse>,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// A running network: send [`Command`]s, receive [`Event`]s.
pub struct P2p {
    pub peer_id: PeerId,
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::Receiver<Event>,
    /// The addresses the node listens on, once bound.
    pub listening: tokio::sync::watch::Receiver<Vec<Multiaddr>>,
}

pub fn start(cfg: P2pConfig) -> Result<P2p, P2pError> {
    let key = keypair(cfg.key_seed);
    let peer_id = key.public().to_peer_id();
    let consensus_topic = gossipsub::IdentTopic::new(format!("emc/{}/consensus/1", cfg.chain_id));
    let tx_topic = gossipsub::IdentTopic::new(format!("emc/{}/tx/1", cfg.chain_id));
    let sync_protocol = StreamProtocol::try_from_owned(format!("/emc/{}/sync/1", cfg.chain_id))
        .map_err(|e| P2pError::Setup(e.to_string()))?;
    let state_protocol = StreamProtocol::try_from_owned(format!("/emc/{}/state/1", cfg.chain_id))
        .map_err(|e| P2pError::Setup(e.to_string()))?;
    let err = |e: &dyn std::fmt::Debug| P2pError::Setup(format!("{e:?}"));
    let max_message = cfg.max_message_bytes.unwrap_or(MAX_GOSSIP_BYTES);

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| err(&e))?
        .with_behaviour(|key| {
            let gcfg = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(max_message)
                .message_id_fn(|m: &gossipsub::Message| {
                    gossipsub::MessageId::from(Sha256::digest(&m.data).to_vec())
                })
                .heartbeat_interval(Duration::from_millis(700))
                .build()
                .map_err(|e| e.to_string())?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gcfg,
            )?;
            gossipsub
                .with_peer_score(
                    gossipsub::PeerScoreParams::default(),
                    gossipsub::PeerScoreThresholds::default(),
                )
                .map_err(|e| e.to_string())?;
            let sync = request_response::cbor::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(1024)
                    .set_response_size_maximum(MAX_SYNC_RESPONSE_BYTES),
                [(sync_protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
            );
            let state = request_response::cbor::Behaviour::with_codec(
                request_response::cbor::codec::Codec::default()
                    .set_request_size_maximum(512)
                    .set_response_size_maximum(64 * 1024),
                [(state_protocol, ProtocolSupport::Full)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
            );
            let identify =
                identify::Behaviour::new(identify::Config::new("/emc/1".into(), key.public()));
            let mut kad_cfg = kad::Config::new(StreamProtocol::new("/emc/kad/1"));
            kad_cfg.set_query_timeout(Duration::from_secs(10));
            let kad = kad::Behaviour::with_config(
                key.public().to_peer_id(),
                kad::store::MemoryStore::new(key.public().to_peer_id()),
                kad_cfg,
            );
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Behaviour {
                gossipsub,
                sync,
                state,
                identify,
                kad,
            })
        })
        .map_err(|e| err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();

    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&consensus_topic)
        .map_err(|e| err(&e))?;
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&tx_topic)
        .map_err(|e| err(&e))?;
    swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
    swarm.listen_on(cfg.listen.clone()).map_err(|e| err(&e))?;
    for addr in &cfg.bootnodes {
        if let Some(libp2p::multiaddr::Protocol::P2p(p)) = addr.iter().last() {
            swarm.behaviour_mut().kad.add_address(&p, addr.clone());
        }
        let _ = swarm.dial(addr.clone());
    }

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let (listen_tx, listen_rx) = tokio::sync::watch::channel(Vec::new());
    let topics = Topics {
        consensus: consensus_topic,
        tx: tx_topic,
    };
    tokio::spawn(run(swarm, topics, cmd_rx, ev_tx, listen_tx));
    Ok(P2p {
        peer_id,
        commands: cmd_tx,
        events: ev_rx,
        listening: listen_rx,
    })
}

struct Topics {
    consensus: gossipsub::IdentTopic,
    tx: gossipsub::IdentTopic,
}

impl Topics {
    fn of(&self, hash: &gossipsub::TopicHash) -> Option<Topic> {
        if *hash == self.consensus.hash() {
            Some(Topic::Consensus)
        } else if *hash == self.tx.hash() {
            Some(Topic::Transactions)
        } else {
            None
        }
    }
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    topics: Topics,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Event>,
    listening: tokio::sync::watch::Sender<Vec<Multiaddr>>,
) {
    let mut walk = tokio::time::interval(Duration::from_secs(5));
    let mut strikes: HashMap<PeerId, u32> = HashMap::new();
    let mut banned: HashSet<PeerId> = HashSet::new();
    loop {
        tokio::select! {
            _ = walk.tick() => {
                if swarm.connected_peers().count() < TARGET_PEERS {
                    swarm.behaviour_mut().kad.get_closest_peers(PeerId::random());
                }
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return };
                command(&mut swarm, &topics, cmd, &mut strikes, &mut banned);
            }
            ev = swarm.select_next_some() => {
                if !swarm_event(&mut swarm, &topics, ev, &events, &banned, &listening).await {
                    return;
                }
            }
        }
    }
}

fn command(
    swarm: &mut Swarm<Behaviour>,
    topics: &Topics,
    cmd: Command,
    strikes: &mut HashMap<PeerId, u32>,
    banned: &mut HashSet<PeerId>,
) {
    let b = swarm.behaviour_mut();
    match cmd {
        Command::Publish(t, data) => {
            let topic = match t {
                Topic::Consensus => topics.consensus.clone(),
                Topic::Transactions => topics.tx.clone(),
            };
            // Duplicate (already seen) and no-peers are expected; nothing to do.
            let _ = b.gossipsub.publish(topic, data);
        }
        Command::Validate(id, peer, acceptance) => {
            b.gossipsub
                .report_message_validation_result(&id, &peer, acceptance);
        }
        Command::RequestBlocks { peer, request } => {
            b.sync.send_request(&peer, request);
        }
        Command::Respond(channel, response) => {
            let _ = b.sync.send_response(channel, response);
        }
        Command::RequestState { peer, request } => {
            b.state.send_request(&peer, request);
        }
        Command::RespondState(channel, response) => {
            let _ = b.state.send_response(channel, response);
        }
        Command::Penalize(peer) => {
            let n = strikes.entry(peer).or_default();
            *n += 1;
            if *n >= BAN_AFTER && banned.insert(peer) {
                tracing::warn!(%peer, "banning a peer that kept sending invalid data");
                b.gossipsub.blacklist_peer(&peer);
                let _ = swarm.disconnect_peer_id(peer);
            }
        }
        Command::Dial(addr) => {
            let _ = swarm.dial(addr);
        }
    }
}

async fn swarm_event(
    swarm: &mut Swarm<Behaviour>,
    topics: &Topics,
    ev: SwarmEvent<BehaviourEvent>,
    events: &mpsc::Sender<Event>,
    banned: &HashSet<PeerId>,
    listening: &tokio::sync::watch::Sender<Vec<Multiaddr>>,
) -> bool {
    let out = match ev {
        SwarmEvent::NewListenAddr { address, .. } => {
            listening.send_modify(|v| v.push(address));
            None
        }
        SwarmEvent::ConnectionEstablished {
            peer_id,
            endpoint,
            num_established,
            ..
        } => {
            if banned.contains(&peer_id) {
                let _ = swarm.disconnect_peer_id(peer_id);
                None
            } else {
                if endpoint.is_dialer() {
                    swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                (num_established.get() == 1).then_some(Event::Connected(peer_id))
            }
        }
        SwarmEvent::ConnectionClosed {
            peer_id,
            num_established: 0,
            ..
        } => Some(Event::Disconnected(peer_id)),
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        })) => match topics.of(&message.topic) {
            Some(topic) => Some(Event::Gossip {
                topic,
                from: propagation_source,
                id: message_id,
                data: message.data,
            }),
            None => {
                swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Reject,
                    );
                None
            }
        },
        SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
            peer_id,
            info,
            ..
        })) => {
            for addr in info.listen_addrs {
                swarm.behaviour_mut().kad.add_address(&peer_id, addr);
            }
            None
        }
        SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
            result: kad::QueryResult::GetClosestPeers(Ok(ok)),
            ..
        })) => {
            let connected: HashSet<PeerId> = swarm.connected_peers().copied().collect();
            for p in ok.peers {
                if !connected.contains(&p.peer_id)
                    && !banned.contains(&p.peer_id)
                    && connected.len() < TARGET_PEERS
                {
                    for a in p.addrs {
                        let _ = swarm.dial(a);
                    }
                }
            }
            None
        }
        SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
            peer,
            message,
            ..
        })) => match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                let request = SyncRequest {
                    from: request.from,
                    count: request.count.min(MAX_SYNC_BLOCKS),
                };
                Some(Event::SyncRequest {
                    peer,
                    request,
                    channel,
                })
            }
            request_response::Message::Response { response, .. } => {
                if response.blocks.len() > MAX_SYNC_BLOCKS as usize {
                    Some(Event::SyncFailed { peer })
                } else {
                    Some(Event::SyncResponse { peer, response })
                }
            }
        },
        SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure {
            peer,
            ..
        })) => Some(Event::SyncFailed { peer }),
        SwarmEvent::Behaviour(BehaviourEvent::State(request_response::Event::Message {
            peer,
            message,
            ..
        })) => match message {
            request_response::Message::Request {
                request, channel, ..
            } => {
                if request.key.len() > MAX_STATE_KEY {
                    None
                } else {
                    Some(Event::StateRequest {
                        peer,
                        request,
                        channel,
                    })
                }
            }
            request_response::Message::Response { response, .. } => {
                Some(Event::StateResponse { peer, response })
            }
        },
        _ => None,
    };
    match out {
        Some(e) => events.send(e).await.is_ok(),
        None => true,
    }
}
