//! Receipts and logs, in the shape Ethereum clients expect to read back.
//!
//! A block's receipts are its transactions' in order and, when the end-of-block system
//! call (the staking module's `onBlock`: elections, jailing, epoch rewards) logged
//! anything, one *system receipt* last: from [`SYSTEM_CALLER`], transaction hash
//! [`system_tx_hash`], no gas, the call's logs. Its logs are in the block's bloom,
//! the log index and the receipts root like any other, so `eth_getLogs` and log
//! subscriptions follow elections and jailing; the hash has a receipt
//! (`eth_getTransactionReceipt`) but no transaction in the block's list (Polygon PoS
//! carries its state-sync events the same way).

use alloy_primitives::{address, keccak256, Address, Bloom, BloomInput, Bytes, B256};

/// The caller of the end-of-block system call (EIP-4788's system address).
pub const SYSTEM_CALLER: Address = address!("0xfffffffffffffffffffffffffffffffffffffffe");

/// The transaction hash of block `height`'s system receipt on chain `chain_id`.
pub fn system_tx_hash(chain_id: u64, height: u64) -> B256 {
    keccak256(
        [
            b"emc system receipt v1".as_slice(),
            &chain_id.to_be_bytes(),
            &height.to_be_bytes(),
        ]
        .concat(),
    )
}
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Log {
    pub address: Address,
    pub topics: Vec<B256>,
    pub data: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Receipt {
    pub tx_hash: B256,
    pub tx_index: u32,
    pub tx_type: u8,
    pub from: Address,
    pub to: Option<Address>,
    pub contract_address: Option<Address>,
    /// EIP-658 status: true when the transaction did not revert or halt.
    pub success: bool,
    pub gas_used: u64,
    pub cumulative_gas_used: u64,
    /// What the sender paid per gas: base fee plus the tip it granted.
    pub effective_gas_price: u128,
    pub logs: Vec<Log>,
}

impl Receipt {
    /// Whether this is a block's system receipt (no transaction behind it).
    pub fn is_system(&self) -> bool {
        self.from == SYSTEM_CALLER
    }

    pub fn bloom(&self) -> Bloom {
        let mut bloom = Bloom::default();
        for log in &self.logs {
            bloom.accrue(BloomInput::Raw(log.address.as_slice()));
            for topic in &log.topics {
                bloom.accrue(BloomInput::Raw(topic.as_slice()));
            }
        }
        bloom
    }
}
