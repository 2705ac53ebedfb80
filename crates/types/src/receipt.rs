//! Receipts and logs, in the shape Ethereum clients expect to read back.

use alloy_primitives::{Address, Bloom, BloomInput, Bytes, B256};
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
