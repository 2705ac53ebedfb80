//! An EMC smart router: the table of computing nodes, the routing policy, the client
//! gateway, and settlement of what clients owe.
//!
//! * **Table** ([`table`], [`follow`], [`chain`]). Computing nodes dial their routers
//!   and keep a `/emc/compute-load/1` stream open with their apps and load; the router
//!   checks that the node id a peer announces is the peer's own key, pings each node on
//!   `/emc/ping/1` to measure the round trip itself, counts every call's outcome, and
//!   follows the chain for what the node registered (owner, price per app, in the
//!   Registry module), its last E (the Poc module) and its owner's stake (Staking). A
//!   node that has not registered an app is listed but gets no paid call for it: its
//!   receipt could not be settled.
//! * **Policy** ([`policy`]): the cheapest weighted cost of distance, load, price, E,
//!   stake and reliability wins; the rest are the retry order. Pure.
//! * **Attempts** ([`attempt`]): the rules of one call tried on several routes (what
//!   counts against a node, what is charged, what the caller is told). Pure.
//! * **Payment** ([`payment`]): what pays for a call: the client's escrow, or a
//!   computing socket's credits ([`sockets`]), both held by the [`ledger`] until
//!   settled.
//! * **Gateway** ([`gateway`]): OpenAI-compatible endpoints, `/call/{app}/{path}` and
//!   pub/sub over HTTP, authenticated by API keys (grants signed by the client's
//!   Ethereum account, `emc_client::keys`).
//! * **Failures** ([`failures`]): signed reports of market leases whose node could not
//!   be reached or ran out of time, the evidence that takes a provider's bond.
//! * **Mesh** ([`mesh`]): peer routers exchange table summaries and relay calls.
//! * **Pub/sub** ([`pubsub`]): WebSocket channels at the gateway, carried along the mesh.
//! * **Jobs** ([`jobs`]): Ray jobs on computing pools, chosen by the policy extended
//!   to pools, opened and settled on chain from the router's account.
//! * **Settlement** ([`settle`]): each served call becomes a receipt (the client's
//!   grant and the node's signed result) that the router submits in batches to the
//!   Tasks module (escrow) or the Sockets module (socket credits) from its own
//!   account, which receives the router's fee.
//!
//! The router reaches the chain only through `emc_client::ChainClient`, so it runs
//! against an in-process chain, a remote node's JSON-RPC, or a test's fake alike.

pub mod attempt;
pub mod auth;
pub mod cache;
pub mod chain;
pub mod failures;
pub mod follow;
pub mod forward;
pub mod gateway;
pub mod jobs;
pub mod ledger;
pub mod mesh;
pub mod payment;
pub mod policy;
pub mod pubsub;
pub mod receipts;
pub mod sealed;
pub mod settings;
pub mod settle;
pub mod signin;
pub mod sockets;
pub mod table;

pub use settings::RouterSettings;
pub use table::RouterTable;

use emc_client::ChainClient;
use emc_p2p::{stream_protocol, Command, Control};
use emc_protocol::wire;
use futures::StreamExt;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("listening on {what}: {why}")]
    Listen { what: String, why: String },
    #[error("the chain: {0}")]
    Chain(#[from] emc_client::ClientError),
}

/// Starts the router role: the table, the chain follower, settlement and the gateway.
/// Returns the gateway's bound address.
pub async fn start(
    chain: Arc<dyn ChainClient>,
    mut control: Control,
    commands: mpsc::UnboundedSender<Command>,
    s: RouterSettings,
    stopped: watch::Receiver<bool>,
) -> Result<std::net::SocketAddr, RouterError> {
    let chain_id = chain.chain_id().await?;
    let table = Arc::new(RouterTable::for_chain(chain_id));
    let mut loads = control
        .accept(stream_protocol(wire::LOAD_PROTOCOL))
        .map_err(|e| RouterError::Listen {
            what: wire::LOAD_PROTOCOL.into(),
            why: e.to_string(),
        })?;
    let (t, c) = (table.clone(), control.clone());
    tokio::spawn(async move {
        while let Some((peer, mut stream)) = loads.next().await {
            let (table, control) = (t.clone(), c.clone());
            tokio::spawn(async move {
                let pinger = tokio::spawn(follow::keep_pinging(
                    table.clone(),
                    control,
                    peer,
                    RouterTable::rtt,
                ));
                let r = follow::follow_node(&table, peer, &mut stream).await;
                pinger.abort();
                table.forget(&peer);
                tracing::info!(%peer, reason = ?r.err(), "computing node left");
            });
        }
    });
    tokio::spawn(chain::follow(chain.clone(), table.clone(), stopped.clone()));
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
    tokio::spawn(settle::run(
        chain.clone(),
        ledger.clone(),
        s.account.clone(),
        stopped.clone(),
    ));
    let jobs = Arc::new(jobs::run::Jobs::new(
        chain.clone(),
        s.account.clone(),
        control.clone(),
    ));
    let signin = Arc::new(signin::SignIns::new(
        chain.clone(),
        s.account.clone(),
        chain_id,
    ));
    let payment = Arc::new(payment::OnChain::new(chain, ledger));
    let g = gateway::Gateway::new(payment, table, control, pubsub, jobs, signin, &s);
    gateway::serve(g, s.http, s.http_limits.clone(), stopped).await
}
