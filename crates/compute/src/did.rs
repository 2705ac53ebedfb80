//! Publishing a computing node's DID (`emc_identity::node`): once the node is
//! registered, its owner account relays two signed ERC-1056 changes to the
//! `DIDRegistry` module, the node's X25519 encryption key and its `EMCNode` service
//! (peer id, node id, and the node key's binding signature). An identity that has
//! changed before is left as it is: everything published derives from the node key,
//! so it never goes stale.

use crate::CallError;
use alloy_primitives::{Bytes, B256, U256};
use alloy_sol_types::SolCall;
use emc_client::{ChainClient, ChainClientExt};
use emc_identity::node::{self, NodeIdentity};
use emc_modules::dids::{packed, signed_hash, IEthereumDIDRegistry as Registry};
use emc_modules::DIDS_ADDRESS;
use std::time::Duration;

/// How long one change may wait for its block.
const WAIT: Duration = Duration::from_secs(30);

fn unavailable(e: impl std::fmt::Display) -> CallError {
    CallError::Unavailable(format!("publishing the node's DID: {e}"))
}

/// Publishes node `id`'s (key seed `seed`) key and service unless its identity has
/// changed before; its DID.
pub async fn publish(
    chain: &dyn ChainClient,
    owner: &alloy_signer_local::PrivateKeySigner,
    seed: &[u8; 32],
    id: B256,
) -> Result<String, CallError> {
    let me = NodeIdentity::derive(seed);
    let chain_id = chain.chain_id().await.map_err(unavailable)?;
    let did = me.did(chain_id);
    let changed = chain
        .view(
            DIDS_ADDRESS,
            Registry::changedCall {
                identity: me.address,
            },
        )
        .await
        .map_err(unavailable)?;
    if !changed.is_zero() {
        return Ok(did);
    }
    let binding = ed25519_consensus::SigningKey::from(*seed)
        .sign(&node::binding_message(
            chain_id,
            me.address,
            id,
            &me.x25519_public,
        ))
        .to_bytes();
    let peer = emc_p2p::peer_of_key(&id.0)
        .ok_or_else(|| unavailable("the node id is not an ed25519 key"))?;
    let service = node::service_value(&peer.to_string(), id, &binding);
    let mut nonce = chain
        .view(DIDS_ADDRESS, Registry::nonceCall { signer: me.address })
        .await
        .map_err(unavailable)?;
    let validity = U256::from(node::VALIDITY_SECS);
    for (name, value) in [
        (node::KEY_ATTRIBUTE, me.x25519_public.to_vec()),
        (node::SERVICE_ATTRIBUTE, service.into_bytes()),
    ] {
        let name = node::attribute_name(name);
        let tail = packed(
            "setAttribute",
            &[&name[..], &value, &validity.to_be_bytes::<32>()],
        );
        let (v, r, s) = me.sign(signed_hash(nonce, me.address, &tail));
        let call = Registry::setAttributeSignedCall {
            identity: me.address,
            sigV: v,
            sigR: r,
            sigS: s,
            name,
            value: Bytes::from(value),
            validity,
        };
        let tx = {
            let _one = crate::OWNER_SENDING.lock().await;
            chain
                .send(
                    owner,
                    DIDS_ADDRESS,
                    U256::ZERO,
                    call.abi_encode().into(),
                    None,
                )
                .await
                .map_err(unavailable)?
        };
        let outcome = chain.wait(tx, WAIT).await.map_err(unavailable)?;
        if !outcome.success {
            return Err(unavailable(format!("transaction {tx} reverted")));
        }
        nonce += U256::from(1);
    }
    Ok(did)
}
