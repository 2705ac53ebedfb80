//! `eth_getProof` (EIP-1186) over EMC's one state tree: see `emc_storage::proof` for
//! how the fields map and [`emc_storage::proof::verify_account`] /
//! [`emc_storage::proof::verify_slot`] for checking an answer against a trusted
//! `stateRoot`.

use crate::{eth, internal, invalid_params, json, Ctx, RpcError};
use alloy_eips::BlockId;
use alloy_primitives::{Address, Bytes, B256, U256};
use emc_storage::{AccountState, StateKey, EMPTY_CODE_HASH};
use jsonrpsee::{types::ErrorObjectOwned, types::Params};
use serde_json::{json, Value};

/// Most storage slots one `eth_getProof` proves.
pub const MAX_PROOF_SLOTS: usize = 1024;

pub(crate) fn register(m: &mut jsonrpsee::RpcModule<Ctx>) -> Result<(), RpcError> {
    m.register_blocking_method("eth_getProof", |p, ctx, _| get_proof(&ctx, p))
        .map_err(|e| RpcError::Register("eth_getProof", e.to_string()))?;
    Ok(())
}

fn get_proof(c: &Ctx, p: Params<'_>) -> Result<Value, ErrorObjectOwned> {
    let mut s = p.sequence();
    let address: Address = s.next()?;
    let slots: Vec<U256> = s.next()?;
    if slots.len() > MAX_PROOF_SLOTS {
        return Err(invalid_params(format!(
            "at most {MAX_PROOF_SLOTS} storage keys per eth_getProof"
        )));
    }
    let at = eth::resolve_block(&c.chain, s.optional_next::<BlockId>()?)?;
    let state = c.chain.state_at(at).map_err(eth::chain_err)?;
    let root = state.root().map_err(internal)?;
    let (value, account_proof) = state.prove(&StateKey::Account(address)).map_err(internal)?;
    let account: AccountState = match value {
        Some(v) => borsh::from_slice(&v).map_err(internal)?,
        None => AccountState {
            code_hash: EMPTY_CODE_HASH,
            ..Default::default()
        },
    };
    let mut storage = Vec::with_capacity(slots.len());
    for slot in slots {
        let (v, proof) = state
            .prove(&StateKey::Storage(address, slot))
            .map_err(internal)?;
        let value = v.map_or(U256::ZERO, |w| U256::from_be_slice(&w));
        storage.push(json!({
            "key": B256::from(slot),
            "value": format!("{value:#x}"),
            "proof": [Bytes::from(proof)],
        }));
    }
    Ok(json!({
        "address": address,
        "accountProof": [Bytes::from(account_proof)],
        "balance": format!("{:#x}", account.balance),
        "codeHash": account.code_hash,
        "nonce": json::q(account.nonce),
        "storageHash": root,
        "storageProof": storage,
    }))
}
