//! EMC networking on rust-libp2p.
//!
//! * Transport: TCP with noise (authenticated encryption, the peer id is the key) and
//!   yamux multiplexing.
//! * Discovery: identify tells each side the other's listen addresses; kademlia keeps a
//!   routing table seeded from the bootnodes and walks it every few seconds; the node
//!   dials what it learns until it has enough peers.
//! * Gossip: gossipsub topics for consensus messages and transactions. Messages are held
//!   until the node has validated them ([`Command::Validate`]): only valid ones are
//!   forwarded. Each topic has its own size limit ([`GossipLimits`]). A message the node
//!   rejects, or one over its topic's limit, counts against the sender's gossipsub score
//!   (P4, invalid deliveries, squared); a peer whose score falls below [`BAN_SCORE`] is
//!   disconnected and refused for [`BAN_FOR`]. Message ids are the sha256 of the content,
//!   so a transaction or vote relayed by many peers is delivered once.
//! * Outside gossip (sync and state answers) the node reports bad data with
//!   [`Command::Penalize`]; [`BAN_AFTER`] reports ban the peer the same way.
//! * Sync: request-response `/emc/sync/1`, blocks by height range, each with its commit
//!   certificate (opaque bytes to this crate; the node verifies them).
//! * State queries: request-response `/emc/state/1`, one state key at one height, with
//!   a Merkle proof against that height's state root, for light clients.
//!
//! Every size from the network is bounded before it is allocated: a gossip frame is
//! buffered up to twice the largest topic limit and the stream is dropped beyond that
//! (so a message between its topic's limit and that cap is still read, attributed and
//! scored, while a larger frame is never buffered whole; after five such streams
//! gossipsub refuses that connection's streams for good); sync requests and responses
//! by the codec's limits; the number of blocks per response by [`MAX_SYNC_BLOCKS`];
//! connections by [`MAX_CONNECTIONS`] in all and one per peer.
//!
//! This crate knows nothing of blocks or consensus: it moves bytes and reports events;
//! `emc-node` decides what is valid.

use futures::StreamExt;
use libp2p::{
    connection_limits, gossipsub, identify, identity, kad,
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
/// Largest transaction gossip message (a transaction is at most 128 KiB).
pub const MAX_TX_GOSSIP_BYTES: usize = 130 * 1024;
const MAX_SYNC_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;
/// [`Command::Penalize`] reports before a peer is banned.
pub const BAN_AFTER: u32 = 20;
/// A gossipsub score below this bans the peer (gossipsub's own graylist threshold,
/// under which it already ignores the peer's messages).
pub const BAN_SCORE: f64 = -80.0;
/// P4 weight: `n` invalid messages, decayed, score `-10·n²`, so a burst of three to
/// six (depending on the peer's credit) bans the sender; an honest peer that relays
/// an odd invalid message recovers as the count decays (halved each second).
const INVALID_MESSAGE_WEIGHT: f64 = -10.0;
/// The most positive score a peer can earn across topics.
const SCORE_CREDIT_CAP: f64 = 100.0;
/// How long a ban lasts.
pub const BAN_FOR: Duration = Duration::from_secs(30 * 60);
/// Established connections in all, and per peer.
pub const MAX_CONNECTIONS: u32 = 128;
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
    /// A state request this node sent got no answer (connection closed, timeout,
    /// protocol refused): the asker may try again, on this peer or another.
    StateFailed {
        peer: PeerId,
        error: String,
    },
    Connected(PeerId),
    Disconnected(PeerId),
    /// This node banned the peer: disconnected, and refused for [`BAN_FOR`].
    Banned(PeerId),
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
    pub limits: GossipLimits,
}

/// The largest message, in encoded gossipsub bytes, each topic carries; larger ones
/// are neither sent nor accepted, and count against their sender.
#[derive(Clone, Copy, Debug)]
pub struct GossipLimits {
    pub consensus: usize,
    pub transactions: usize,
}

impl Default for GossipLimits {
    fn default() -> Self {
        GossipLimits {
            consensus: MAX_GOSSIP_BYTES,
            transactions: MAX_TX_GOSSIP_BYTES,
        }
    }
}

impl GossipLimits {
    /// The cap on a whole gossipsub frame: twice the largest topic limit, so that an
    /// oversized message can still be read and blamed on its sender.
    fn frame_cap(&self) -> usize {
        2 * self.consensus.max(self.transactions)
    }
}

/// Gossip scoring. Penalties: invalid or oversized messages (P4, squared, so a burst
/// bans quickly) and, leniently, gossipsub's protocol faults (P7: broken IWANT
/// promises, grafts during backoff; more than six in a decay window count, squared).
/// Credit is small and capped (time in mesh, first deliveries; at most
/// [`SCORE_CREDIT_CAP`] in all), so a peer that behaved for a while cannot bank
/// enough to send invalid data freely. Left out: mesh-delivery quotas (P3), which
/// punish honest peers on a quiet topic; IP colocation (P6), which punishes a devnet
/// on one host (validators are known by key, so it is not needed to find them); and
/// the slow-peer penalty, since a validator that falls behind under load is not a
/// bad peer.
fn score_params(topics: &[&gossipsub::IdentTopic]) -> gossipsub::PeerScoreParams {
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: SCORE_CREDIT_CAP,
        ip_colocation_factor_weight: 0.0,
        behaviour_penalty_weight: -1.0,
        behaviour_penalty_threshold: 6.0,
        slow_peer_weight: 0.0,
        ..Default::default()
    };
    for t in topics {
        params.topics.insert(
            t.hash(),
            gossipsub::TopicScoreParams {
                topic_weight: 1.0,
                // +0.01 a second in the mesh, up to +36 after an hour.
                time_in_mesh_weight: 0.01,
                time_in_mesh_quantum: Duration::from_secs(1),
                time_in_mesh_cap: 3600.0,
                // +0.5 per message first delivered, the count halving each second.
                first_message_deliveries_weight: 0.5,
                first_message_deliveries_decay: 0.5,
                first_message_deliveries_cap: 100.0,
                mesh_message_deliveries_weight: 0.0,
                mesh_failure_penalty_weight: 0.0,
                invalid_message_deliveries_weight: INVALID_MESSAGE_WEIGHT,
                invalid_message_deliveries_decay: 0.5,
                ..Default::default()
            },
        );
    }
    params
}

/// The peer id a key seed gives, so a devnet can name its bootnodes in advance.
pub fn peer_id_of(seed: [u8; 32]) -> PeerId {
    keypair(seed).public().to_peer_id()
}

/// The peer id of an ed25519 public key (a computing node's id is one), if it is one.
pub fn peer_of_key(key: &[u8; 32]) -> Option<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(key).ok()?;
    Some(identity::PublicKey::from(pk).to_peer_id())
}

/// A stream protocol by its name (`/emc/compute/1`).
pub fn stream_protocol(name: &'static str) -> libp2p::StreamProtocol {
    libp2p::StreamProtocol::new(name)
}

/// The stream control of the network task: open and accept protocol streams.
pub use libp2p_stream::Control;

fn keypair(seed: [u8; 32]) -> identity::Keypair {
    identity::Keypair::ed25519_from_bytes(seed).expect("32 bytes is a valid ed25519 seed")
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<SyncRequest, SyncResponse>,
    state: request_response::cbor::Behaviour<StateRequest, StateResponse>,
    identify: identify::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    /// Raw streams for the compute protocols (calls, load reports, PoC challenges),
    /// opened and accepted through [`P2p::streams`].
    streams: libp2p_stream::Behaviour,
}

/// A running network: send [`Command`]s, receive [`Event`]s.
pub struct P2p {
    pub peer_id: PeerId,
    pub commands: mpsc::UnboundedSender<Command>,
    pub events: mpsc::Receiver<Event>,
    /// The addresses the node listens on, once bound.
    pub listening: tokio::sync::watch::Receiver<Vec<Multiaddr>>,
    /// Opens and accepts streams of other protocols on this node's connections.
    pub streams: libp2p_stream::Control,
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
    let limits = cfg.limits;

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
                .max_transmit_size(limits.frame_cap())
                .max_transmit_size_for_topic(limits.consensus, consensus_topic.hash())
                .max_transmit_size_for_topic(limits.transactions, tx_topic.hash())
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
                    score_params(&[&consensus_topic, &tx_topic]),
                    gossipsub::PeerScoreThresholds {
                        graylist_threshold: BAN_SCORE,
                        ..Default::default()
                    },
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
            let limits = connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(MAX_CONNECTIONS))
                    .with_max_established_per_peer(Some(1)),
            );
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Behaviour {
                limits,
                gossipsub,
                sync,
                state,
                identify,
                kad,
                streams: libp2p_stream::Behaviour::new(),
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

    let streams = swarm.behaviour().streams.new_control();
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
        streams,
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
    let mut scores = tokio::time::interval(Duration::from_millis(250));
    let mut strikes: HashMap<PeerId, u32> = HashMap::new();
    let mut banned = Bans::default();
    loop {
        tokio::select! {
            _ = walk.tick() => {
                if swarm.connected_peers().count() < TARGET_PEERS {
                    swarm.behaviour_mut().kad.get_closest_peers(PeerId::random());
                }
            }
            _ = scores.tick() => {
                banned.expire(&mut swarm, &mut strikes);
                ban_low_scores(&mut swarm, &mut banned);
                banned.report(&events).await;
            }
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { return };
                command(&mut swarm, &topics, cmd, &mut strikes, &mut banned);
                banned.report(&events).await;
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
    banned: &mut Bans,
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
            if *n >= BAN_AFTER {
                ban(swarm, banned, peer, "kept sending invalid data");
            }
        }
        Command::Dial(addr) => {
            let _ = swarm.dial(addr);
        }
    }
}

fn ban(swarm: &mut Swarm<Behaviour>, banned: &mut Bans, peer: PeerId, why: &str) {
    if banned
        .until
        .insert(peer, tokio::time::Instant::now() + BAN_FOR)
        .is_none()
    {
        banned.unreported.push(peer);
        tracing::warn!(%peer, "banning a peer that {why}");
        swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
        let _ = swarm.disconnect_peer_id(peer);
    }
}

/// Peers refused until a deadline ([`BAN_FOR`] after the ban), and bans not yet
/// reported to the node.
#[derive(Default)]
struct Bans {
    until: HashMap<PeerId, tokio::time::Instant>,
    unreported: Vec<PeerId>,
}

impl Bans {
    fn contains(&self, p: &PeerId) -> bool {
        self.until.contains_key(p)
    }

    /// Lifts the bans that have run their time; the peer's strikes start again.
    fn expire(&mut self, swarm: &mut Swarm<Behaviour>, strikes: &mut HashMap<PeerId, u32>) {
        let now = tokio::time::Instant::now();
        self.until.retain(|p, until| {
            let keep = *until > now;
            if !keep {
                tracing::info!(peer = %p, "ban lifted");
                swarm.behaviour_mut().gossipsub.remove_blacklisted_peer(p);
                strikes.remove(p);
            }
            keep
        });
    }

    /// Tells the node of the bans made since the last call.
    async fn report(&mut self, events: &mpsc::Sender<Event>) {
        for p in self.unreported.drain(..) {
            let _ = events.send(Event::Banned(p)).await;
        }
    }
}

fn ban_low_scores(swarm: &mut Swarm<Behaviour>, banned: &mut Bans) {
    let low: Vec<PeerId> = swarm
        .connected_peers()
        .filter(|p| {
            swarm
                .behaviour()
                .gossipsub
                .peer_score(p)
                .is_some_and(|s| s < BAN_SCORE)
        })
        .copied()
        .collect();
    for peer in low {
        ban(swarm, banned, peer, "fell below the gossip score floor");
    }
}

async fn swarm_event(
    swarm: &mut Swarm<Behaviour>,
    topics: &Topics,
    ev: SwarmEvent<BehaviourEvent>,
    events: &mpsc::Sender<Event>,
    banned: &Bans,
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
        SwarmEvent::Behaviour(BehaviourEvent::State(
            request_response::Event::OutboundFailure { peer, error, .. },
        )) => Some(Event::StateFailed {
            peer,
            error: error.to_string(),
        }),
        _ => None,
    };
    match out {
        Some(e) => events.send(e).await.is_ok(),
        None => true,
    }
}
