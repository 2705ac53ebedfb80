//! The computing-node role on the node's libp2p streams (`--role compute`).
//!
//! Serves calls that routers open on `/emc/compute/1` and PoC challenges on
//! `/emc/poc/1`; dials each of its routers and keeps a `/emc/compute-load/1` stream
//! open to it with its apps and load (redialing when it breaks, so a node behind NAT
//! stays reachable through the connection it made); registers itself in the Registry
//! module from its owner account when its registration is missing or its apps changed,
//! and then publishes its DID ([`crate::did`]);
//! drains on shutdown. Its node id is the ed25519 key of its libp2p identity, so a
//! peer's id proves which node it is. Every node answers `/emc/ping/1`
//! ([`serve_pings`]), so routers measure their round trips to nodes and to each other.

use crate::agent::Agent;
use crate::CallError;
use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::registry::{registration_message, IRegistry};
use emc_modules::REGISTRY_ADDRESS;
use emc_p2p::{stream_protocol as protocol, Addr, Command, Control};
use emc_protocol::poc::Behaviour;
use emc_protocol::wire::{self, call, load, ping, poc};
use futures::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Clone, Debug)]
pub struct ComputeSettings {
    pub apps: Vec<crate::AppSpec>,
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
    /// The pool this node is a member of, and how it runs its Ray node.
    pub pool: Option<crate::pool::member::PoolSettings>,
}

fn listen(what: &str, e: impl std::fmt::Display) -> CallError {
    CallError::Config(format!("accepting {what}: {e}"))
}

/// Answers `/emc/ping/1`.
pub fn serve_pings(mut control: Control) -> Result<(), CallError> {
    let mut pings = control
        .accept(protocol(wire::PING_PROTOCOL))
        .map_err(|e| listen(wire::PING_PROTOCOL, e))?;
    tokio::spawn(async move {
        while let Some((_, mut stream)) = pings.next().await {
            tokio::spawn(async move { ping::serve(&mut stream).await });
        }
    });
    Ok(())
}

/// Starts the computing-node role; the node's own HTTP port, when it serves one.
pub async fn start(
    chain: Arc<dyn ChainClient>,
    agent: Arc<Agent>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    key: emc_crypto::ConsensusKey,
    s: ComputeSettings,
    stopped: watch::Receiver<bool>,
) -> Result<Option<std::net::SocketAddr>, CallError> {
    let mut calls = control
        .accept(protocol(wire::CALL_PROTOCOL))
        .map_err(|e| listen(wire::CALL_PROTOCOL, e))?;
    let a = agent.clone();
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = calls.next().await {
            let a = a.clone();
            tokio::spawn(async move {
                if let Err(e) = call::serve(&mut stream, |c| a.call(c)).await {
                    tracing::debug!(%peer, error = %e, "call stream");
                }
            });
        }
    });
    let mut pocs = control
        .accept(protocol(wire::POC_PROTOCOL))
        .map_err(|e| listen(wire::POC_PROTOCOL, e))?;
    let (threads, behaviour) = (s.poc_threads, s.poc_behaviour);
    tokio::spawn(async move {
        // One challenge at a time, so concurrent challengers do not slow each other's
        // measurement more than the machine itself does.
        let one = Arc::new(tokio::sync::Mutex::new(()));
        while let Some((peer, mut stream)) = pocs.next().await {
            let one = one.clone();
            tokio::spawn(async move {
                let _g = one.lock().await;
                match poc::serve(&mut stream, threads, behaviour).await {
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
    if let Some(p) = s.pool.clone() {
        let run = crate::pool::member::run(
            chain.clone(),
            control.clone(),
            commands.clone(),
            agent.id().0,
            key.clone(),
            s.owner.clone(),
            p,
            stopped.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(error = %e, "the pool runtime stopped");
            }
        });
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
    let Some(addr) = s.http else {
        return Ok(None);
    };
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| listen(&format!("compute http on {addr}"), e))?;
    let bound = l.local_addr().map_err(|e| listen("compute http", e))?;
    let mut st = stopped.clone();
    let shutdown = async move {
        let _ = st.wait_for(|s| *s).await;
    };
    crate::server::serve(l, agent.clone(), crate::server::limits(), shutdown);
    Ok(Some(bound))
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
                .map_err(|e| CallError::Unavailable(e.to_string()))?;
            tracing::info!(%peer, "connected to router");
            let a = agent.clone();
            load::report(
                &mut stream,
                (agent.id(), agent.apps(), agent.sealing_key()),
                move || a.load(),
                load::EVERY,
            )
            .await
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
    chain: Arc<dyn ChainClient>,
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
    // The node's DID is published once the node is registered (the same account
    // pays for both, one transaction at a time).
    let (mut published, mut last_publish) = (false, None::<Instant>);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let info = match chain
            .view(REGISTRY_ADDRESS, IRegistry::nodeInfoCall { nodeId: node })
            .await
        {
            Ok(i) => i,
            Err(_) => continue,
        };
        if info.owner == owner.address() && info.apps == names && info.prices == prices {
            if !published
                && last_publish.is_none_or(|t: Instant| t.elapsed() > Duration::from_secs(10))
            {
                last_publish = Some(Instant::now());
                match crate::did::publish(&*chain, &owner, &key.seed(), node).await {
                    Ok(did) => {
                        tracing::info!(%did, "the node's DID holds its encryption key and endpoint");
                        published = true;
                    }
                    Err(e) => tracing::warn!(error = %e, "the node's DID is not published yet"),
                }
            }
            continue;
        }
        if last_try.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            continue; // a registration is in flight
        }
        let Ok(chain_id) = chain.chain_id().await else {
            continue;
        };
        let sig = ed25519_consensus::SigningKey::from(key.seed()).sign(&registration_message(
            chain_id,
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
        let one = crate::OWNER_SENDING.lock().await;
        let sent = chain
            .send(
                &owner,
                REGISTRY_ADDRESS,
                U256::ZERO,
                call.abi_encode().into(),
                Some(2_000_000),
            )
            .await;
        drop(one);
        match sent {
            Ok(tx) => tracing::info!(node = %node, %tx, "registering the node"),
            Err(e) => tracing::warn!(error = %e, "registration not submitted"),
        }
        last_try = Some(Instant::now());
    }
}
