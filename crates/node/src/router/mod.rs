//! The router role: the table of computing nodes, the routing policy, the client
//! gateway, and settlement of what clients owe.
//!
//! * **Table.** Computing nodes dial their routers and keep a `/emc/compute-load/1`
//!   stream open with their apps and load; the router checks that the node id a peer
//!   announces is the peer's own key, pings each node on `/emc/ping/1` to measure the
//!   round trip itself, counts every call's outcome, and follows the chain for what
//!   the node registered (owner, price per app, in the Registry module) and its last
//!   E (the Poc module). A node that has not registered an app is listed but gets no
//!   paid call for it: its receipt could not be settled.
//! * **Policy** ([`policy`]): the cheapest weighted cost of distance, load, price, E
//!   and reliability wins; the rest are the retry order.
//! * **Gateway** ([`gateway`]): OpenAI-compatible endpoints and `/call/{app}/{path}`
//!   over HTTP, authenticated by API keys that are grants signed by the client's
//!   Ethereum account ([`auth`]).
//! * **Mesh** ([`mesh`]): peer routers exchange table summaries and relay calls.
//! * **Pub/sub** ([`pubsub`]): WebSocket channels at the gateway, carried along the mesh.
//! * **Settlement** ([`ledger`]): each call's price cap is reserved against the
//!   client's escrow before it is forwarded; each served call becomes a receipt (the
//!   client's grant and the node's signed result) that the router submits in batches
//!   to the Tasks module from its own account, which receives the router's fee.

pub mod auth;
pub mod cache;
pub mod gateway;
pub mod ledger;
pub mod mesh;
pub mod policy;
pub mod pubsub;
pub mod receipts;

use crate::compute::{peer_of, protocol, submit_call_with_gas, view, LOAD_EVERY};
use crate::NodeError;
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolCall;
use emc_chain::Chain;
use emc_compute::agent::{AppInfo, Load, Served};
use emc_compute::runtime::Call;
use emc_compute::wire::{self, Msg};
use emc_compute::{ComputeError, Frame, NodeId};
use emc_modules::poc::IPoc;
use emc_modules::registry::IRegistry;
use emc_modules::tasks::ITasks;
use emc_modules::{POC_ADDRESS, REGISTRY_ADDRESS, TASKS_ADDRESS};
use emc_p2p::{Addr, Command, Peer};
use futures::StreamExt;
use libp2p_stream::Control;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the router re-reads registrations and E from the chain.
const CHAIN_EVERY: Duration = Duration::from_secs(2);
/// How often receipts are batched into a settlement.
const SETTLE_EVERY: Duration = Duration::from_secs(1);
/// Receipts per settlement transaction (the module's most), and the gas each may use
/// (about 30,000 is measured; see the Tasks module's tests).
const BATCH: usize = emc_modules::tasks::MAX_RECEIPTS;
const GAS_PER_RECEIPT: u64 = 40_000;

#[derive(Clone, Debug)]
pub struct RouterSettings {
    /// The gateway's HTTP address.
    pub http: std::net::SocketAddr,
    /// The gateway's connection bounds and timeouts ([`gateway::limits`] by default).
    pub http_limits: emc_http::Limits,
    /// The router's account: it submits settlements (paying their gas) and receives
    /// the router's fee.
    pub account: alloy_signer_local::PrivateKeySigner,
    /// What a call reserves of the client's escrow when the client sets no
    /// `x-emc-max-cost`.
    pub reserve: U256,
    /// Peer routers of the mesh (each `/ip4/…/tcp/…/p2p/<peer id>`).
    pub peers: Vec<Addr>,
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
    #[serde(skip)]
    pub key: Option<ed25519_consensus::VerificationKey>,
}

/// The router's table of connected computing nodes, and of its mesh peers' nodes.
#[derive(Default)]
pub struct RouterTable {
    nodes: RwLock<BTreeMap<Peer, NodeEntry>>,
    remote: RwLock<BTreeMap<(Peer, NodeId), mesh::Remote>>,
    routers_rtt: RwLock<BTreeMap<Peer, policy::Rtt>>,
    /// Call streams (to a node, or relayed through a peer router: `(via, node)`), idle
    /// after a complete reply, for the next call.
    idle: parking_lot::Mutex<BTreeMap<PathKey, Vec<libp2p::Stream>>>,
    /// One stream opening at a time per peer dialed: libp2p-stream hands a peer's
    /// inbound streams over through a one-slot channel and drops those that arrive
    /// while it is full, so a burst of opens would lose calls to a healthy node.
    opening: parking_lot::Mutex<BTreeMap<Peer, Arc<tokio::sync::Mutex<()>>>>,
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
}

impl RouterTable {
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
                    deterministic: deterministic(&n.apps, app),
                    candidate: policy::Candidate {
                        price: n.registered.get(app).copied(),
                        load,
                        distance_ms: n.rtt.distance_ms(),
                        e: n.e,
                        ok: n.ok,
                        failed: n.failed,
                    },
                }
            })
            .collect();
        let rtts = self.routers_rtt.read();
        let mut best: BTreeMap<NodeId, Route> = BTreeMap::new();
        for ((router, node), r) in self.remote.read().iter() {
            let s = &r.summary;
            let peer = r.peer;
            if nodes.contains_key(&peer) || !mesh::fresh(r) || !s.apps.iter().any(|a| a.name == app)
            {
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
                deterministic: deterministic(&s.apps, app),
                candidate: policy::Candidate {
                    price: mesh::remote_price(s, app),
                    load: s.load,
                    distance_ms: Some(distance),
                    e: s.e,
                    ok: 0,
                    failed: 0,
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
        for r in self.remote.read().values().filter(|r| mesh::fresh(r)) {
            for a in &r.summary.apps {
                out.push((a.clone(), mesh::remote_price(&r.summary, &a.name)));
            }
        }
        out
    }

    fn idle_stream(&self, via: Option<Peer>, peer: Peer) -> Option<libp2p::Stream> {
        self.idle.lock().get_mut(&(via, peer)).and_then(Vec::pop)
    }

    fn keep_stream(&self, via: Option<Peer>, peer: Peer, s: libp2p::Stream) {
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
                .filter(|r| mesh::fresh(r))
                .find_map(|r| kind_in(&r.summary.apps))
        })
    }

    /// Whether `peer` is a node connected to this router.
    pub fn is_direct(&self, peer: &Peer) -> bool {
        self.nodes.read().contains_key(peer)
    }

    /// Summaries of the direct nodes, for mesh peers.
    pub fn summaries(&self) -> Vec<emc_compute::wire::NodeSummary> {
        self.nodes
            .read()
            .values()
            .take(emc_compute::wire::MAX_SUMMARY)
            .map(mesh::summary_of)
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
                    "fresh": mesh::fresh(r),
                })
            })
            .collect()
    }

    fn router_rtt(&self, peer: &Peer, d: Duration) {
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
    async fn open_serially<F, Fut>(
        &self,
        peer: Peer,
        open: F,
    ) -> Result<libp2p::Stream, ComputeError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<libp2p::Stream, ComputeError>>,
    {
        let lock = self.opening.lock().entry(peer).or_default().clone();
        let _one = lock.lock().await;
        open().await
    }

    fn rtt(&self, peer: &Peer, d: Duration) {
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

/// Starts the router role: the table, the chain follower, settlement and the gateway.
/// Returns the gateway's bound address.
pub async fn start(
    chain: Arc<Chain>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    s: RouterSettings,
    stopped: watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, NodeError> {
    let table = Arc::new(RouterTable::default());
    let mut loads = control
        .accept(protocol(wire::LOAD_PROTOCOL))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let (t, c) = (table.clone(), control.clone());
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = loads.next().await {
            let (table, control) = (t.clone(), c.clone());
            tokio::spawn(async move {
                let pinger =
                    tokio::spawn(keep_pinging(table.clone(), control, peer, RouterTable::rtt));
                let r = follow_node(&table, peer, &mut stream).await;
                pinger.abort();
                table.nodes.write().remove(&peer);
                table.idle.lock().retain(|(_, p), _| *p != peer);
                table.opening.lock().remove(&peer);
                tracing::info!(%peer, reason = ?r.err(), "computing node left");
            });
        }
    });
    tokio::spawn(follow_chain(chain.clone(), table.clone(), stopped.clone()));
    let pubsub = Arc::new(pubsub::PubSub::default());
    mesh::start(
        table.clone(),
        pubsub.clone(),
        control.clone(),
        commands,
        s.peers.clone(),
        stopped.clone(),
    )?;
    let ledger = Arc::new(ledger::Ledger::default());
    tokio::spawn(settle(
        chain.clone(),
        ledger.clone(),
        s.account.clone(),
        stopped.clone(),
    ));
    let g = gateway::Gateway::new(chain, table, control, ledger, pubsub, &s);
    gateway::serve(g, s.http, s.http_limits.clone(), stopped).await
}

/// Pings `peer` every period and hands each round trip to `record`.
async fn keep_pinging(
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
                match tokio::time::timeout(LOAD_EVERY * 2, wire::ping(&mut s, seq)).await {
                    Ok(Ok(d)) => record(&table, &peer, d),
                    _ => break,
                }
                tokio::time::sleep(LOAD_EVERY).await;
            }
        }
        tokio::time::sleep(LOAD_EVERY).await;
    }
}

async fn follow_node(
    table: &RouterTable,
    peer: Peer,
    stream: &mut libp2p::Stream,
) -> Result<(), ComputeError> {
    let (node, apps, load) = match wire::read_msg(stream, wire::MAX_SMALL_FRAME).await? {
        Some(Msg::Hello { node, apps, load }) => (node, apps, load),
        other => {
            return Err(ComputeError::BadRequest(format!(
                "expected hello, got {other:?}"
            )))
        }
    };
    if peer_of(&node) != Some(peer) {
        return Err(ComputeError::BadSignature(format!(
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
            key: ed25519_consensus::VerificationKey::try_from(node.0 .0).ok(),
        },
    );
    loop {
        let next = tokio::time::timeout(
            LOAD_EVERY * 3,
            wire::read_msg(stream, wire::MAX_SMALL_FRAME),
        )
        .await
        .map_err(|_| ComputeError::Timeout("no load report".into()))??;
        match next {
            Some(Msg::Load(l)) => {
                if let Some(e) = table.nodes.write().get_mut(&peer) {
                    e.load = l;
                }
            }
            None => return Ok(()),
            Some(other) => {
                return Err(ComputeError::BadRequest(format!(
                    "expected load, got {other:?}"
                )))
            }
        }
    }
}

/// Re-reads each connected node's registration and E.
async fn follow_chain(
    chain: Arc<Chain>,
    table: Arc<RouterTable>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHAIN_EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let ids: Vec<(Peer, NodeId)> = table
            .nodes
            .read()
            .iter()
            .map(|(p, n)| (*p, n.node))
            .collect();
        for (peer, node) in ids {
            let info = view(
                &chain,
                REGISTRY_ADDRESS,
                IRegistry::nodeInfoCall { nodeId: node.0 },
            );
            let e = view(&chain, POC_ADDRESS, IPoc::scoreOfCall { nodeId: node.0 });
            if let Some(n) = table.nodes.write().get_mut(&peer) {
                if let Ok(i) = info {
                    n.owner = i.owner;
                    n.registered = i.apps.into_iter().zip(i.prices).collect();
                }
                if let Ok(e) = e {
                    n.e = e.score;
                }
            }
        }
    }
}

/// Batches receipts into `ITasks.settle` transactions from the router's account and
/// drops their holds once they are in a block. Each batch is first run through
/// `ITasks.check` at the head: receipts the chain would refuse are dropped (with
/// their reason in the log) rather than sent, so the router never pays gas for a
/// settlement the chain must reject. A batch not in a block within a minute is sent
/// again: receipts already settled are refused on chain, so none pays twice.
async fn settle(
    chain: Arc<Chain>,
    ledger: Arc<ledger::Ledger>,
    account: alloy_signer_local::PrivateKeySigner,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SETTLE_EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let batch = ledger.take_batch(BATCH);
        if batch.is_empty() {
            continue;
        }
        let batch = match settleable(&chain, account.address(), batch) {
            Ok((good, refused)) => {
                // Receipts that can never settle hold the client's escrow no longer.
                ledger.settled(&refused);
                good
            }
            Err((batch, e)) => {
                tracing::warn!(error = %e, receipts = batch.len(), "cannot check receipts; later");
                ledger.requeue(batch);
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let call = ITasks::settleCall {
            receipts: batch.iter().map(|p| p.receipt.clone()).collect(),
        };
        let gas = 300_000 + GAS_PER_RECEIPT * batch.len() as u64;
        let tx = match submit_call_with_gas(&chain, &account, TASKS_ADDRESS, call.abi_encode(), gas)
        {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!(error = %e, receipts = batch.len(), "settlement not submitted");
                ledger.requeue(batch);
                continue;
            }
        };
        tracing::info!(%tx, receipts = batch.len(), "settlement submitted");
        let included = wait_included(&chain, tx, Duration::from_secs(60), &mut stopped).await;
        if included {
            ledger.settled(&batch);
        } else {
            tracing::warn!(%tx, "settlement not in a block in time; sending again");
            ledger.requeue(batch);
        }
    }
}

/// Splits a batch into the receipts the chain would settle now and those it would
/// refuse (each logged with the chain's reason); gives the batch back if the check
/// itself cannot run.
#[allow(clippy::type_complexity)]
fn settleable(
    chain: &Chain,
    router: Address,
    batch: Vec<ledger::Pending>,
) -> Result<(Vec<ledger::Pending>, Vec<ledger::Pending>), (Vec<ledger::Pending>, String)> {
    let check = ITasks::checkCall {
        router,
        receipts: batch.iter().map(|p| p.receipt.clone()).collect(),
    };
    let reasons = match view(chain, TASKS_ADDRESS, check) {
        Ok(r) if r.len() == batch.len() => r,
        Ok(r) => {
            let why = format!("{} reasons for {} receipts", r.len(), batch.len());
            return Err((batch, why));
        }
        Err(e) => return Err((batch, e)),
    };
    let (mut good, mut refused) = (Vec::new(), Vec::new());
    for (p, why) in batch.into_iter().zip(reasons) {
        if why.is_empty() {
            good.push(p);
        } else {
            tracing::warn!(call = %p.receipt.callId, account = %p.account, reason = %why, "receipt the chain would refuse; not sent");
            refused.push(p);
        }
    }
    Ok((good, refused))
}

async fn wait_included(
    chain: &Chain,
    tx: B256,
    within: Duration,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if matches!(chain.store().receipt(tx), Ok(Some(_))) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopped.wait_for(|s| *s) => return false,
        }
    }
    false
}

/// A router's call to a node, directly or through a peer router: the reply head and
/// its frames.
pub async fn call_node(
    control: Control,
    table: &Arc<RouterTable>,
    route: &Route,
    call: Call,
) -> Result<Served, ComputeError> {
    let request_hash = emc_compute::result::request_hash(&call.app, &call.path, &call.body);
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
                    .map_err(|e| ComputeError::Unavailable(format!("node {node}: {e}"))),
                Some(router) => {
                    let mut s = control
                        .open_stream(router, protocol(wire::RELAY_PROTOCOL))
                        .await
                        .map_err(|e| ComputeError::Unavailable(format!("router {router}: {e}")))?;
                    wire::write_msg(&mut s, &Msg::RelayTo(node)).await?;
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
    let head = match wire::send_call(&mut stream, &call).await {
        Ok(h) => h,
        // An idle stream the other end has since closed: once more on a fresh one.
        Err(_) if pooled => {
            stream = table.open_serially(dialed, open).await?;
            wire::send_call(&mut stream, &call).await?
        }
        Err(e) => return Err(e),
    };
    let (status, ct, streaming) = head;
    let (tx, rx) = mpsc::channel(32);
    let table = table.clone();
    tokio::spawn(async move {
        loop {
            let (f, clean) = match wire::read_reply(&mut stream).await {
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
