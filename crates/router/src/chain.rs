//! What the router reads of its nodes on chain: each node's registration (owner,
//! price per app) in the Registry module, its last E in the Poc module, and its
//! owner's compute stake in the Staking module; and the one lock on its account's
//! nonce ([`SENDING`]).

use crate::table::RouterTable;
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::poc::IPoc;
use emc_modules::registry::IRegistry;
use emc_modules::staking::IStaking;
use emc_modules::{POC_ADDRESS, REGISTRY_ADDRESS, STAKING_ADDRESS};
use emc_p2p::Peer;
use emc_protocol::NodeId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Held while a transaction from the router's account is signed and submitted, so
/// settlements and jobs, sent from different tasks, never take the same nonce.
pub(crate) static SENDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How often the router re-reads registrations, E and stake.
const EVERY: Duration = Duration::from_secs(2);

/// Re-reads each connected node's registration, E and stake, until stopped.
pub async fn follow(
    chain: Arc<dyn ChainClient>,
    table: Arc<RouterTable>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let ids: Vec<(Peer, NodeId)> = table
            .nodes
            .read()
            .iter()
            .map(|(p, n)| (*p, n.node))
            .collect();
        for (peer, node) in ids {
            let info = chain
                .view(REGISTRY_ADDRESS, IRegistry::nodeInfoCall { nodeId: node.0 })
                .await;
            let e = chain
                .view(POC_ADDRESS, IPoc::scoreOfCall { nodeId: node.0 })
                .await;
            let stake = match &info {
                Ok(i) if !i.owner.is_zero() => chain
                    .view(
                        STAKING_ADDRESS,
                        IStaking::stakeOfCall {
                            account: i.owner,
                            role: emc_modules::staking::Role::Compute as u8,
                        },
                    )
                    .await
                    .ok()
                    .map(|s| s.staked),
                _ => None,
            };
            if let Some(n) = table.nodes.write().get_mut(&peer) {
                if let Ok(i) = info {
                    n.owner = i.owner;
                    n.registered = i.apps.into_iter().zip(i.prices).collect();
                }
                if let Ok(e) = e {
                    n.e = e.score;
                }
                if let Some(s) = stake {
                    n.stake = s;
                }
            }
        }
    }
}
