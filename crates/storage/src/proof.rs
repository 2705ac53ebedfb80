//! State proofs in the shape of EIP-1186 (`eth_getProof`), over EMC's state tree.
//!
//! Ethereum keeps each account's storage in a trie of its own under the account's
//! `storageHash`; EMC keeps accounts and storage slots as leaves of one Jellyfish
//! Merkle tree (sha256) whose root is the header's `stateRoot`. So in an EMC proof:
//!
//! * `accountProof` is one element: the borsh encoding of the JMT sparse Merkle proof
//!   for the account's leaf (`sha256(0x01 ‖ address)`, value the borsh
//!   `AccountState {nonce, balance, code_hash}`), against `stateRoot`;
//! * `storageHash` is `stateRoot` itself (storage lives in the same tree);
//! * each `storageProof[i].proof` is one element: the JMT proof for the slot's leaf
//!   (`sha256(0x02 ‖ address ‖ slot)`, value the 32-byte word), against the same root.
//!
//! An account that does not exist (or a slot that is zero) has no leaf: its proof is
//! one of absence, and its fields are zero (code hash: that of empty code).
//! [`verify_account`] and [`verify_slot`] check them with nothing but a trusted root.

use crate::state::{verify_state_proof, AccountState, StateKey, EMPTY_CODE_HASH};
use alloy_primitives::{Address, B256, U256};

/// Checks an account's proof: that the tree under `root` holds `account` for
/// `address`, or, for an account with no nonce, balance or code, holds nothing.
pub fn verify_account(
    root: B256,
    address: Address,
    account: &AccountState,
    proof: &[u8],
) -> Result<(), String> {
    let key = StateKey::Account(address);
    let value = borsh::to_vec(account).map_err(|e| e.to_string())?;
    if verify_state_proof(root, &key, Some(&value), proof) {
        return Ok(());
    }
    let empty =
        account.nonce == 0 && account.balance.is_zero() && account.code_hash == EMPTY_CODE_HASH;
    if empty && verify_state_proof(root, &key, None, proof) {
        return Ok(());
    }
    Err(format!(
        "the account proof of {address} does not match state root {root}"
    ))
}

/// Checks a storage slot's proof: that the tree under `root` holds `value` at `slot`
/// of `address` (no leaf when the value is zero).
pub fn verify_slot(
    root: B256,
    address: Address,
    slot: U256,
    value: U256,
    proof: &[u8],
) -> Result<(), String> {
    let key = StateKey::Storage(address, slot);
    let word = value.to_be_bytes::<32>();
    let leaf = (!value.is_zero()).then_some(&word[..]);
    if verify_state_proof(root, &key, leaf, proof) {
        Ok(())
    } else {
        Err(format!(
            "the proof of slot {slot:#x} of {address} does not match state root {root}"
        ))
    }
}
