//! The challenger, run by every validator: at the first block of each epoch it
//! challenges every registered node it can reach with the PoC task seeded by that
//! block's hash and a nonce of its own, signs its verdict with its consensus key, and
//! submits the attestation from its account. It follows the chain through
//! `ChainClient` (the head, the validator set in the Chain module, the nodes in the
//! Registry), so it runs the same against an in-process chain or a remote node.

use alloy_primitives::{B256, U256};
use alloy_sol_types::SolCall;
use emc_client::{ChainClient, ChainClientExt};
use emc_modules::chain::IChain;
use emc_modules::poc::{attestation_message, IPoc};
use emc_modules::registry::IRegistry;
use emc_modules::staking::Epoch;
use emc_modules::{CHAIN_ADDRESS, POC_ADDRESS, REGISTRY_ADDRESS};
use emc_p2p::{stream_protocol as protocol, Control};
use emc_protocol::poc::PocParams;
use emc_protocol::wire::{self, poc};
use emc_protocol::{CallError, NodeId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the challenger looks at the head.
const HEAD_EVERY: Duration = Duration::from_millis(250);

/// What a validator challenges with.
#[derive(Clone)]
pub struct Challenger {
    pub key: emc_crypto::ConsensusKey,
    /// The account attestations are submitted from; none: logged, not sent.
    pub account: Option<alloy_signer_local::PrivateKeySigner>,
    pub params: PocParams,
    /// Blocks per epoch (the genesis's staking parameter).
    pub epoch_blocks: u64,
}

/// Runs the challenger until stopped.
pub async fn run(
    chain: Arc<dyn ChainClient>,
    control: Control,
    c: Challenger,
    mut stopped: watch::Receiver<bool>,
) {
    let epoch_blocks = c.epoch_blocks.max(1);
    let mut seen = 0u64;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEAD_EVERY) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let Ok(height) = chain.height().await else {
            continue;
        };
        if height == seen {
            continue;
        }
        seen = height;
        if !Epoch::starts_at(height, epoch_blocks) {
            continue;
        }
        // The head's hash seeds the challenges (it is fetched only at an epoch's first
        // block; a block that came meanwhile is just as unpredictable).
        let Ok(head) = chain.head().await else {
            continue;
        };
        let epoch = Epoch::of(height, epoch_blocks);
        let in_set = chain
            .view(CHAIN_ADDRESS, IChain::validatorSetCall {})
            .await
            .map(|s| s.consensusKeys.contains(&c.key.public()))
            .unwrap_or(false);
        if !in_set {
            continue;
        }
        let nodes = match chain.view(REGISTRY_ADDRESS, IRegistry::nodesCall {}).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list nodes");
                continue;
            }
        };
        // One node at a time, so each is measured on an otherwise idle challenger
        // link and no node's proving slows another's measurement.
        let (chain, control, c) = (chain.clone(), control.clone(), c.clone());
        tokio::spawn(async move {
            for node in nodes {
                challenge_one(&*chain, control.clone(), &c, epoch, head.hash, NodeId(node)).await;
            }
        });
    }
}

async fn challenge_one(
    chain: &dyn ChainClient,
    mut control: Control,
    c: &Challenger,
    epoch: Epoch,
    seed_base: B256,
    node: NodeId,
) {
    let Some(peer) = emc_p2p::peer_of_key(&node.0 .0) else {
        return;
    };
    let nonce: [u8; 32] = rand::random();
    let seed =
        alloy_primitives::keccak256([seed_base.as_slice(), node.0.as_slice(), &nonce].concat());
    let entropy = B256::from(rand::random::<[u8; 32]>());
    let verdict = async {
        let mut s = control
            .open_stream(peer, protocol(wire::POC_PROTOCOL))
            .await
            .map_err(|e| CallError::Unavailable(e.to_string()))?;
        poc::challenge(&mut s, seed, c.params, entropy, Duration::from_secs(60)).await
    }
    .await;
    let v = match verdict {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(%node, error = %e, "no PoC verdict");
            return;
        }
    };
    tracing::info!(%node, epoch = epoch.0, score = v.score, ok = v.ok, wall_ms = v.wall.as_millis() as u64, reason = ?v.reason, "PoC verdict");
    let Ok(chain_id) = chain.chain_id().await else {
        return;
    };
    let msg = attestation_message(chain_id, epoch.0, node.0, v.score, v.ok);
    let sig = ed25519_consensus::SigningKey::from(c.key.seed()).sign(&msg);
    let call = IPoc::attestCall {
        epoch: epoch.0,
        nodeId: node.0,
        score: v.score,
        ok: v.ok,
        validatorKey: c.key.public(),
        signature: sig.to_bytes().to_vec().into(),
    };
    match &c.account {
        Some(acc) => {
            let data = call.abi_encode().into();
            match chain
                .send(acc, POC_ADDRESS, U256::ZERO, data, Some(2_000_000))
                .await
            {
                Ok(tx) => tracing::info!(%node, %tx, "attestation submitted"),
                Err(e) => tracing::warn!(%node, error = %e, "attestation not submitted"),
            }
        }
        None => {
            tracing::info!(%node, calldata = %alloy_primitives::hex::encode_prefixed(call.abi_encode()), "attestation ready (no account to submit it from)")
        }
    }
}
