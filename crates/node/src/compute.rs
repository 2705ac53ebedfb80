//! The computing-node, router and challenger roles, on the node's libp2p streams.
//!
//! * **Compute** (`--role compute`): serves calls that routers open on
//!   `/emc/compute/1` and PoC challenges on `/emc/poc/1`; dials each of its routers and
//!   keeps a `/emc/compute-load/1` stream open to it with its apps and load (redialing
//!   when it breaks, so a node behind NAT stays reachable through the connection it
//!   made); registers itself in the Registry module from its owner account when its
//!   registration is missing or its apps changed; drains on shutdown. Its node id is
//!   the ed25519 key of its libp2p identity, so a peer's id proves which node it is.
//! * **Router**: see [`crate::router`].
//! * **Challenger** (every validator): at the first block of each epoch it challenges
//!   every registered node it can reach with the PoC task seeded by that block's hash
//!   and a nonce of its own, signs its verdict with its consensus key, and submits the
//!   attestation from its account.

use crate::NodeError;
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolCall;
use emc_chain::{Chain, ChainEvent};
use emc_compute::agent::Agent;
use emc_compute::poc::{Behaviour, PocParams};
use emc_compute::wire;
use emc_compute::{ComputeError, NodeId};
use emc_modules::poc::{attestation_message, IPoc};
use emc_modules::registry::{registration_message, IRegistry};
use emc_modules::{POC_ADDRESS, REGISTRY_ADDRESS};
use emc_p2p::{Addr, Command, Peer};
use futures::StreamExt;
use libp2p_stream::Control;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How often a node reports its load to its routers.
pub const LOAD_EVERY: Duration = Duration::from_secs(2);

pub(crate) fn protocol(p: &'static str) -> libp2p::StreamProtocol {
    libp2p::StreamProtocol::new(p)
}

/// The libp2p peer id of a node id (an ed25519 public key).
pub fn peer_of(node: &NodeId) -> Option<Peer> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(node.0.as_slice()).ok()?;
    Some(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

#[derive(Clone, Debug)]
pub struct ComputeSettings {
    pub apps: Vec<emc_compute::AppSpec>,
    pub routers: Vec<Addr>,
    /// The node's own HTTP port (apps, load, direct calls).
    pub http: Option<std::net::SocketAddr>,
    pub capacity: u32,
    pub max_queue: u32,
    /// The account that owns the node and registers it; none: register by hand.
    pub owner: Option<alloy_signer_local::PrivateKeySigner>,
    pub hardware: String,
    pub poc_threads: usize,
    /// Test networks only: answer challenges dishonestly.
    pub poc_behaviour: Behaviour,
}

/// A read-only call to a system module at the head.
pub fn view<C: SolCall>(chain: &Chain, to: Address, call: C) -> Result<C::Return, String> {
    chain
        .view(chain.head().height, to, call)
        .map_err(|e| e.to_string())
}

/// Signs and submits a call to a system module from `key`'s account.
pub fn submit_call(
    chain: &Chain,
    key: &alloy_signer_local::PrivateKeySigner,
    to: Address,
    data: Vec<u8>,
) -> Result<B256, String> {
    submit_call_with_gas(chain, key, to, data, 2_000_000)
}

/// [`submit_call`] with a gas limit of its own.
pub fn submit_call_with_gas(
    chain: &Chain,
    key: &alloy_signer_local::PrivateKeySigner,
    to: Address,
    data: Vec<u8>,
    gas_limit: u64,
) -> Result<B256, String> {
    use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
    use alloy_eips::eip2718::Encodable2718;
    use alloy_network::TxSignerSync;
    let from = key.address();
    let head = chain.head();
    let account = chain
        .state_at(head.height)
        .map_err(|e| e.to_string())?
        .account(from)
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let nonce = chain.pending_nonce(from, account.nonce);
    let base = chain.next_base_fee() as u128;
    let mut tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce,
        gas_limit,
        max_fee_per_gas: base * 2 + 1_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: alloy_primitives::TxKind::Call(to),
        value: U256::ZERO,
        input: data.into(),
        ..Default::default()
    };
    let sig = key
        .sign_transaction_sync(&mut tx)
        .map_err(|e| e.to_string())?;
    let raw = TxEnvelope::from(tx.into_signed(sig)).encoded_2718();
    chain.submit(&raw).map_err(|e| e.to_string())
}

/// Answers `/emc/ping/1` (every node does, so routers measure their round trips to
/// nodes and to each other).
pub fn serve_pings(mut control: Control) -> Result<(), NodeError> {
    let mut pings = control
        .accept(protocol(wire::PING_PROTOCOL))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    tokio::spawn(async move {
        while let Some((_, mut stream)) = pings.next().await {
            tokio::spawn(async move { wire::serve_ping(&mut stream).await });
        }
    });
    Ok(())
}

/// Starts the computing-node role.
pub async fn start_compute(
    chain: Arc<Chain>,
    agent: Arc<Agent>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    key: emc_crypto::ConsensusKey,
    s: ComputeSettings,
    stopped: watch::Receiver<bool>,
) -> Result<Option<std::net::SocketAddr>, NodeError> {
    let mut calls = control
        .accept(protocol(wire::CALL_PROTOCOL))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let a = agent.clone();
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = calls.next().await {
            let a = a.clone();
            tokio::spawn(async move {
                if let Err(e) = wire::serve_call(&a, &mut stream).await {
                    tracing::debug!(%peer, error = %e, "call stream");
                }
            });
        }
    });
    let mut pocs = control
        .accept(protocol(wire::POC_PROTOCOL))
        .map_err(|e| NodeError::Config(e.to_string()))?;
    let (threads, behaviour) = (s.poc_threads, s.poc_behaviour);
    tokio::spawn(async move {
        // One challenge at a time, so concurrent challengers do not slow each other's
        // measurement more than the machine itself does.
        let one = Arc::new(tokio::sync::Mutex::new(()));
        while let Some((peer, mut stream)) = pocs.next().await {
            let one = one.clone();
            tokio::spawn(async move {
                let _g = one.lock().await;
                match wire::serve_poc(&mut stream, threads, behaviour).await {
                    Ok(()) => tracing::info!(%peer, "answered a PoC challenge"),
                    Err(e) => tracing::warn!(%peer, error = %e, "PoC challenge"),
                }
            });
        }
    });
    for addr in s.routers.clone() {
        tokio::spawn(keep_router(
            agent.clone(),
            control.clone(),
            commands.clone(),
            addr,
            stopped.clone(),
        ));
    }
    if let Some(owner) = s.owner.clone() {
        tokio::spawn(keep_registered(
            chain.clone(),
            agent.clone(),
            key,
            owner,
            s.hardware.clone(),
            stopped.clone(),
        ));
    }
    let http = match s.http {
        None => None,
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| NodeError::Config(format!("compute http on {addr}: {e}")))?;
            let bound = l
                .local_addr()
                .map_err(|e| NodeError::Config(e.to_string()))?;
            let mut st = stopped.clone();
            let shutdown = async move {
                let _ = st.wait_for(|s| *s).await;
            };
            emc_compute::server::serve(l, agent.clone(), emc_compute::server::limits(), shutdown);
            Some(bound)
        }
    };
    Ok(http)
}

/// Dials a router and keeps a load stream open to it, redialing when it breaks.
async fn keep_router(
    agent: Arc<Agent>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    addr: Addr,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() else {
        tracing::error!(%addr, "a router address must end in /p2p/<peer id>");
        return;
    };
    loop {
        let _ = commands.send(Command::Dial(addr.clone()));
        let attempt = async {
            let mut stream = control
                .open_stream(peer, protocol(wire::LOAD_PROTOCOL))
                .await
                .map_err(|e| ComputeError::Unavailable(e.to_string()))?;
            tracing::info!(%peer, "connected to router");
            wire::report_load(&agent, &mut stream, LOAD_EVERY).await
        };
        tokio::select! {
            r = attempt => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "router stream ended; redialing");
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

/// Registers the node (again when its apps changed) once the chain is followed.
async fn keep_registered(
    chain: Arc<Chain>,
    agent: Arc<Agent>,
    key: emc_crypto::ConsensusKey,
    owner: alloy_signer_local::PrivateKeySigner,
    hardware: String,
    mut stopped: watch::Receiver<bool>,
) {
    let node = agent.id().0;
    let apps = agent.apps();
    let names: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
    let prices: Vec<U256> = apps.iter().map(|a| U256::from(a.price)).collect();
    let mut last_try: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let info = match view(
            &chain,
            REGISTRY_ADDRESS,
            IRegistry::nodeInfoCall { nodeId: node },
        ) {
            Ok(i) => i,
            Err(_) => continue,
        };
        if info.owner == owner.address() && info.apps == names && info.prices == prices {
            continue;
        }
        if last_try.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            continue; // a registration is in flight
        }
        let sig = ed25519_consensus::SigningKey::from(key.seed()).sign(&registration_message(
            chain.chain_id(),
            owner.address(),
            node,
        ));
        let call = IRegistry::registerCall {
            nodeId: node,
            nodeSignature: sig.to_bytes().to_vec().into(),
            apps: names.clone(),
            prices: prices.clone(),
            hardware: hardware.clone(),
        };
        match submit_call(&chain, &owner, REGISTRY_ADDRESS, call.abi_encode()) {
            Ok(tx) => tracing::info!(node = %node, %tx, "registering the node"),
            Err(e) => tracing::warn!(error = %e, "registration not submitted"),
        }
        last_try = Some(Instant::now());
    }
}

/// The challenger: at the first block of each epoch, challenge every registered node.
pub async fn run_challenger(
    chain: Arc<Chain>,
    control: Control,
    key: emc_crypto::ConsensusKey,
    account: Option<alloy_signer_local::PrivateKeySigner>,
    params: PocParams,
    mut stopped: watch::Receiver<bool>,
) {
    let mut events = chain.subscribe();
    loop {
        let header = tokio::select! {
            ev = events.recv() => match ev {
                Ok(ChainEvent::NewBlock { header, .. }) => header,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
            _ = stopped.wait_for(|s| *s) => return,
        };
        let epoch_blocks = chain.genesis().staking.epoch_blocks.max(1);
        if header.height.0 % epoch_blocks != 1 {
            continue;
        }
        let epoch = emc_modules::staking::epoch_of(header.height.0, epoch_blocks);
        let in_set = emc_chain::validator_set_in(&match chain.state_at(header.height) {
            Ok(s) => s,
            Err(_) => continue,
        })
        .map(|set| set.iter().any(|v| v.consensus_key == key.public()))
        .unwrap_or(false);
        if !in_set {
            continue;
        }
        let nodes = match view(&chain, REGISTRY_ADDRESS, IRegistry::nodesCall {}) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list nodes");
                continue;
            }
        };
        // One node at a time, so each is measured on an otherwise idle challenger
        // link and no node's proving slows another's measurement.
        let seed_base = header.hash();
        let (chain, control, key, account) =
            (chain.clone(), control.clone(), key.clone(), account.clone());
        tokio::spawn(async move {
            for node in nodes {
                challenge_one(
                    &chain,
                    control.clone(),
                    &key,
                    account.as_ref(),
                    params,
                    epoch,
                    seed_base,
                    node,
                )
                .await;
            }
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn challenge_one(
    chain: &Chain,
    mut control: Control,
    key: &emc_crypto::ConsensusKey,
    account: Option<&alloy_signer_local::PrivateKeySigner>,
    params: PocParams,
    epoch: u64,
    seed_base: B256,
    node: B256,
) {
    let Some(peer) = peer_of(&NodeId(node)) else {
        return;
    };
    let nonce: [u8; 32] = rand::random();
    let seed =
        alloy_primitives::keccak256([seed_base.as_slice(), node.as_slice(), &nonce].concat());
    let entropy = B256::from(rand::random::<[u8; 32]>());
    let verdict = async {
        let mut s = control
            .open_stream(peer, protocol(wire::POC_PROTOCOL))
            .await
            .map_err(|e| ComputeError::Unavailable(e.to_string()))?;
        wire::challenge(&mut s, seed, params, entropy, Duration::from_secs(60)).await
    }
    .await;
    let v = match verdict {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(%node, error = %e, "no PoC verdict");
            return;
        }
    };
    tracing::info!(%node, epoch, score = v.score, ok = v.ok, wall_ms = v.wall.as_millis() as u64, reason = ?v.reason, "PoC verdict");
    let msg = attestation_message(chain.chain_id(), epoch, node, v.score, v.ok);
    let sig = ed25519_consensus::SigningKey::from(key.seed()).sign(&msg);
    let call = IPoc::attestCall {
        epoch,
        nodeId: node,
        score: v.score,
        ok: v.ok,
        validatorKey: key.public(),
        signature: sig.to_bytes().to_vec().into(),
    };
    match account {
        Some(acc) => match submit_call(chain, acc, POC_ADDRESS, call.abi_encode()) {
            Ok(tx) => tracing::info!(%node, %tx, "attestation submitted"),
            Err(e) => tracing::warn!(%node, error = %e, "attestation not submitted"),
        },
        None => {
            tracing::info!(%node, calldata = %alloy_primitives::hex::encode_prefixed(call.abi_encode()), "attestation ready (no account to submit it from)")
        }
    }
}
