//! The router's table: its directly connected computing nodes (with what the router
//! measured of them and read of them on chain), its mesh peers' nodes, and the call
//! streams it keeps open for reuse. [`RouterTable::candidates`] turns the table into
//! the routes a call may take, each with what the policy weighs.

use crate::policy;
use alloy_primitives::{Address, U256};
use emc_p2p::Peer;
use emc_protocol::node::SealingKey;
use emc_protocol::wire::mesh::NodeSummary;
use emc_protocol::{AppInfo, Load, NodeId};
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The libp2p peer id of a node id (an ed25519 public key).
pub fn peer_of(node: &NodeId) -> Option<Peer> {
    emc_p2p::peer_of_key(&node.0 .0)
}

/// A node that a peer router serves.
#[derive(Clone, Debug)]
pub struct Remote {
    pub summary: NodeSummary,
    pub at: Instant,
    /// The node's peer id and key, decoded once.
    pub peer: Peer,
    pub key: Option<ed25519_consensus::VerificationKey>,
}

/// A computing node as a router sees it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeEntry {
    pub node: NodeId,
    pub peer: String,
    pub apps: Vec<AppInfo>,
    pub load: Load,
    /// Measured distance ([`policy::Rtt`]); shown as `rtt_ms`, the least recent round
    /// trip in milliseconds.
    #[serde(rename = "rtt_ms")]
    pub rtt: policy::Rtt,
    /// Calls this router has running on the node now.
    pub inflight: u32,
    pub ok: u64,
    pub failed: u64,
    /// From the chain: the owner, the registered price per app, the last E.
    pub owner: Address,
    pub registered: BTreeMap<String, U256>,
    pub e: u64,
    /// The owner's compute stake in the Staking module, wei.
    pub stake: U256,
    #[serde(skip)]
    pub key: Option<ed25519_consensus::VerificationKey>,
    /// The key the node takes sealed calls under, as it announced it.
    #[serde(skip)]
    pub sealing: Option<SealingKey>,
}

/// The router's table of connected computing nodes, and of its mesh peers' nodes.
#[derive(Default)]
pub struct RouterTable {
    pub(crate) nodes: RwLock<BTreeMap<Peer, NodeEntry>>,
    pub(crate) remote: RwLock<BTreeMap<(Peer, NodeId), Remote>>,
    pub(crate) routers_rtt: RwLock<BTreeMap<Peer, policy::Rtt>>,
    /// Call streams (to a node, or relayed through a peer router: `(via, node)`), idle
    /// after a complete reply, for the next call.
    idle: parking_lot::Mutex<BTreeMap<PathKey, Vec<libp2p::Stream>>>,
    /// One stream opening at a time per peer dialed: libp2p-stream hands a peer's
    /// inbound streams over through a one-slot channel and drops those that arrive
    /// while it is full, so a burst of opens would lose calls to a healthy node.
    opening: parking_lot::Mutex<BTreeMap<Peer, Arc<tokio::sync::Mutex<()>>>>,
    /// The chain sealing keys are bound on ([`RouterTable::bound_sealing`]).
    chain_id: u64,
}

/// A way to a node: the peer router it is relayed through (if any), and the node.
type PathKey = (Option<Peer>, Peer);

/// Idle call streams kept per node.
const MAX_IDLE: usize = 64;

/// How a call reaches a node: directly, or through a peer router.
#[derive(Clone, Debug)]
pub struct Route {
    pub node: NodeId,
    /// The node's key, decoded once.
    pub key: Option<ed25519_consensus::VerificationKey>,
    /// The node's own peer id (its result must be signed by it).
    pub peer: Peer,
    pub via: Option<Peer>,
    /// Whether the node says the app answers the same request the same way (its reply
    /// may be cached).
    pub deterministic: bool,
    /// What the policy weighs, the registered price among it.
    pub candidate: policy::Candidate,
    /// The key sealed calls to the node are sealed to, when it takes them (bound:
    /// [`RouterTable::bound_sealing`]).
    pub sealing: Option<SealingKey>,
}

impl RouterTable {
    /// An empty table for the nodes of chain `chain_id`.
    pub fn for_chain(chain_id: u64) -> Self {
        Self {
            chain_id,
            ..Self::default()
        }
    }

    /// `key` if the node key of `node` bound it on this table's chain, checked once as
    /// it arrives so a route only ever carries a bound key (a node or a mesh peer
    /// that announces another key gets no sealed calls).
    pub fn bound_sealing(&self, node: NodeId, key: Option<SealingKey>) -> Option<SealingKey> {
        key.filter(|k| crate::sealed::bound(self.chain_id, node, k))
    }

    /// Forgets a node that left: its entry, its idle streams, its opening lock.
    pub fn forget(&self, peer: &Peer) {
        self.nodes.write().remove(peer);
        self.idle.lock().retain(|(_, p), _| p != peer);
        self.opening.lock().remove(peer);
    }

    pub fn snapshot(&self) -> Vec<NodeEntry> {
        self.nodes.read().values().cloned().collect()
    }

    /// Every way to a node serving `app`: direct nodes, then peers' nodes that are not
    /// also direct (through the nearest peer that has them).
    pub fn candidates(&self, app: &str) -> Vec<Route> {
        let nodes = self.nodes.read();
        let mut routes: Vec<Route> = nodes
            .iter()
            .filter(|(_, n)| n.apps.iter().any(|a| a.name == app))
            .map(|(p, n)| {
                // The node's own report, or this router's calls on it if more (the
                // report is up to two seconds old).
                let mut load = n.load;
                load.running = load.running.max(n.inflight.saturating_sub(load.queued));
                Route {
                    node: n.node,
                    key: n.key,
                    peer: *p,
                    via: None,
                    sealing: n.sealing.clone(),
                    deterministic: deterministic(&n.apps, app),
                    candidate: policy::Candidate {
                        price: n.registered.get(app).copied(),
                        load,
                        distance_ms: n.rtt.distance_ms(),
                        e: n.e,
                        ok: n.ok,
                        failed: n.failed,
                        stake: n.stake,
                    },
                }
            })
            .collect();
        let rtts = self.routers_rtt.read();
        let mut best: BTreeMap<NodeId, Route> = BTreeMap::new();
        for ((router, node), r) in self.remote.read().iter() {
            let s = &r.summary;
            let peer = r.peer;
            if nodes.contains_key(&peer) || !fresh(r) || !s.apps.iter().any(|a| a.name == app) {
                continue;
            }
            let hop = rtts
                .get(router)
                .and_then(policy::Rtt::distance_ms)
                .unwrap_or(50.0);
            let distance = hop + s.rtt_us.map_or(50.0, |us| us as f64 / 1e3);
            let route = Route {
                node: *node,
                key: r.key,
                peer,
                via: Some(*router),
                sealing: s.sealing.clone(),
                deterministic: deterministic(&s.apps, app),
                candidate: policy::Candidate {
                    price: remote_price(s, app),
                    load: s.load,
                    distance_ms: Some(distance),
                    e: s.e,
                    ok: 0,
                    failed: 0,
                    stake: U256::from_be_bytes(s.stake),
                },
            };
            let nearer = best
                .get(node)
                .is_none_or(|b| b.candidate.distance_ms > route.candidate.distance_ms);
            if nearer {
                best.insert(*node, route);
            }
        }
        routes.extend(best.into_values());
        routes
    }

    /// Every app served here or through a peer: one entry per node and app, with the
    /// node's registered price.
    pub fn apps(&self) -> Vec<(AppInfo, Option<U256>)> {
        let mut out: Vec<(AppInfo, Option<U256>)> = self
            .nodes
            .read()
            .values()
            .flat_map(|n| {
                n.apps
                    .iter()
                    .map(|a| (a.clone(), n.registered.get(&a.name).copied()))
            })
            .collect();
        for r in self.remote.read().values().filter(|r| fresh(r)) {
            for a in &r.summary.apps {
                out.push((a.clone(), remote_price(&r.summary, &a.name)));
            }
        }
        out
    }

    pub(crate) fn idle_stream(&self, via: Option<Peer>, peer: Peer) -> Option<libp2p::Stream> {
        self.idle.lock().get_mut(&(via, peer)).and_then(Vec::pop)
    }

    pub(crate) fn keep_stream(&self, via: Option<Peer>, peer: Peer, s: libp2p::Stream) {
        let mut idle = self.idle.lock();
        let list = idle.entry((via, peer)).or_default();
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    /// The kind of the app `name`, served here or through a peer.
    pub fn app_kind(&self, name: &str) -> Option<String> {
        let kind_in =
            |apps: &[AppInfo]| apps.iter().find(|a| a.name == name).map(|a| a.kind.clone());
        let direct = self.nodes.read().values().find_map(|n| kind_in(&n.apps));
        direct.or_else(|| {
            self.remote
                .read()
                .values()
                .filter(|r| fresh(r))
                .find_map(|r| kind_in(&r.summary.apps))
        })
    }

    /// Whether `peer` is a node connected to this router.
    pub fn is_direct(&self, peer: &Peer) -> bool {
        self.nodes.read().contains_key(peer)
    }

    /// Summaries of the direct nodes, for mesh peers.
    pub fn summaries(&self) -> Vec<NodeSummary> {
        self.nodes
            .read()
            .values()
            .take(emc_protocol::wire::mesh::MAX_SUMMARY)
            .map(summary_of)
            .collect()
    }

    /// The peers' nodes, for `GET /mesh`.
    pub fn remote_snapshot(&self) -> Vec<serde_json::Value> {
        let rtts = self.routers_rtt.read();
        self.remote
            .read()
            .iter()
            .map(|((router, node), r)| {
                serde_json::json!({
                    "node": node,
                    "via": router.to_string(),
                    "via_rtt_ms": rtts.get(router).and_then(policy::Rtt::distance_ms),
                    "rtt_ms": r.summary.rtt_us.map(|us| us as f64 / 1e3),
                    "apps": r.summary.apps,
                    "load": r.summary.load,
                    "e": r.summary.e,
                    "fresh": fresh(r),
                })
            })
            .collect()
    }

    pub(crate) fn router_rtt(&self, peer: &Peer, d: Duration) {
        let mut m = self.routers_rtt.write();
        m.entry(*peer).or_default().add(d.as_secs_f64() * 1e3);
    }

    /// Counts a call's outcome for the node's reliability.
    pub fn record(&self, peer: &Peer, ok: bool) {
        if let Some(n) = self.nodes.write().get_mut(peer) {
            if ok {
                n.ok += 1;
            } else {
                n.failed += 1;
            }
        }
    }

    /// Counts a call of this router's running on the route's node until the guard
    /// drops, if the node has room for it: the calls it announced it takes at once
    /// (running and queued), counted here as they start, so a burst of calls cannot
    /// all pick one node. `None`: this router already fills it. Calls relayed through
    /// a peer are counted by that peer, which knows the node.
    pub fn try_start(self: &Arc<Self>, route: &Route) -> Option<Inflight> {
        if route.via.is_some() {
            return Some(Inflight {
                table: self.clone(),
                peer: None,
            });
        }
        self.try_start_direct(route.peer)
    }

    /// [`RouterTable::try_start`] for a node connected to this router.
    pub fn try_start_direct(self: &Arc<Self>, peer: Peer) -> Option<Inflight> {
        let mut nodes = self.nodes.write();
        let n = nodes.get_mut(&peer)?;
        if n.inflight >= policy::room(&n.load) {
            return None;
        }
        n.inflight += 1;
        Some(Inflight {
            table: self.clone(),
            peer: Some(peer),
        })
    }

    /// Opens a stream to `peer` with `open`, one opening at a time per peer.
    pub(crate) async fn open_serially<F, Fut>(
        &self,
        peer: Peer,
        open: F,
    ) -> Result<libp2p::Stream, emc_protocol::CallError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<libp2p::Stream, emc_protocol::CallError>>,
    {
        let lock = self.opening.lock().entry(peer).or_default().clone();
        let _one = lock.lock().await;
        open().await
    }

    pub(crate) fn rtt(&self, peer: &Peer, d: Duration) {
        if let Some(n) = self.nodes.write().get_mut(peer) {
            n.rtt.add(d.as_secs_f64() * 1e3);
        }
    }
}

fn deterministic(apps: &[AppInfo], app: &str) -> bool {
    apps.iter().any(|a| a.name == app && a.deterministic)
}

/// One call running on a node, counted in the table while it lives (`peer`: the
/// direct node counted; none for a relayed call).
pub struct Inflight {
    table: Arc<RouterTable>,
    peer: Option<Peer>,
}

impl Drop for Inflight {
    fn drop(&mut self) {
        let Some(peer) = self.peer else { return };
        if let Some(n) = self.table.nodes.write().get_mut(&peer) {
            n.inflight = n.inflight.saturating_sub(1);
        }
    }
}

/// A summary entry for this router's direct node.
pub fn summary_of(n: &NodeEntry) -> NodeSummary {
    NodeSummary {
        node: n.node,
        apps: n.apps.clone(),
        load: n.load,
        rtt_us: n.rtt.distance_ms().map(|ms| (ms * 1e3) as u64),
        e: n.e,
        stake: n.stake.to_be_bytes::<32>(),
        prices: n
            .registered
            .iter()
            .map(|(a, p)| (a.clone(), p.to_be_bytes::<32>()))
            .collect(),
        sealing: n.sealing.clone(),
    }
}

/// A remote node's registered price for `app`, from its summary.
pub fn remote_price(s: &NodeSummary, app: &str) -> Option<U256> {
    s.prices
        .iter()
        .find(|(a, _)| a == app)
        .map(|(_, p)| U256::from_be_bytes(*p))
}

/// Whether a summary is recent enough to route by.
pub fn fresh(r: &Remote) -> bool {
    r.at.elapsed() < emc_protocol::wire::load::EVERY * 3
}
