//! Blocks and headers.
//!
//! The header is hashed over its borsh encoding. It names the validator-set hash that
//! will seal the *next* block, so a light client that trusts one header can follow the
//! set from header to header. Commit seals are not part of the header: they travel in
//! the commit certificate next to it (see the consensus crate), so the block hash that
//! validators sign is fixed before anyone signs.

use crate::{ids::Height, merkle::merkle_root, receipt::Receipt};
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Header {
    pub parent_hash: B256,
    pub height: Height,
    /// Seconds since the Unix epoch, as Ethereum's `timestamp`.
    pub timestamp: u64,
    /// The validator account that proposed the block; it receives the priority fees.
    pub proposer: Address,
    pub state_root: B256,
    pub transactions_root: B256,
    pub receipts_root: B256,
    pub logs_bloom: Bloom,
    pub validator_set_hash: B256,
    pub gas_used: u64,
    pub gas_limit: u64,
    /// EIP-1559 base fee per gas, in wei; it is burnt.
    pub base_fee: u64,
    pub extra_data: Bytes,
    /// Which members of the parent's sealing set signed the parent's commit certificate
    /// (bit `i` for set index `i`); empty for block 1. The block carries that
    /// certificate, so importers check the bitmap against real signatures, and the
    /// staking module counts missed commits from it.
    pub parent_signers: Bytes,
}

impl Header {
    pub fn hash(&self) -> B256 {
        keccak256(borsh::to_vec(self).expect("borsh into a Vec never fails"))
    }

    /// The size in bytes of the encoded header, reported as part of a block's `size`.
    pub fn encoded_len(&self) -> usize {
        borsh::to_vec(self).map(|v| v.len()).unwrap_or(0)
    }
}

/// A block as stored and gossiped: the header and the transactions in their EIP-2718
/// encoding (the bytes the sender signed, so a block can be re-verified from storage).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: Header,
    pub transactions: Vec<Bytes>,
    /// The parent's commit certificate as the proposer holds it (the consensus crate's
    /// encoding; empty for block 1 and on chains sealed without consensus).
    pub parent_certificate: Bytes,
}

/// What the store keeps of a block besides its header.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct BlockBody {
    pub transactions: Vec<Bytes>,
    pub parent_certificate: Bytes,
}

impl Block {
    pub fn hash(&self) -> B256 {
        self.header.hash()
    }

    pub fn size(&self) -> usize {
        self.header.encoded_len() + self.transactions.iter().map(|t| t.len()).sum::<usize>()
    }
}

/// The transactions root: a Merkle root over the transaction hashes in block order.
pub fn transactions_root(tx_hashes: &[B256]) -> B256 {
    merkle_root(tx_hashes.iter())
}

/// The receipts root: a Merkle root over the borsh encoding of each receipt.
pub fn receipts_root(receipts: &[Receipt]) -> B256 {
    merkle_root(
        receipts
            .iter()
            .map(|r| borsh::to_vec(r).expect("borsh into a Vec never fails")),
    )
}

/// Combined bloom of every log in the block.
pub fn logs_bloom<'a>(receipts: impl IntoIterator<Item = &'a Receipt>) -> Bloom {
    let mut bloom = Bloom::default();
    for r in receipts {
        bloom.accrue_bloom(&r.bloom());
    }
    bloom
}
