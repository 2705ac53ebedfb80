//! EMC primitives shared by every other crate.
//!
//! Accounts, addresses and transactions are Ethereum's (alloy types), so any Ethereum
//! wallet or library signs for EMC unchanged. Blocks and receipts are EMC's own: the
//! header commits to the state root, the transactions and receipts roots, and the hash
//! of the validator set that seals the next block, and is hashed over its borsh
//! encoding (commit seals live outside the header, in the commit certificate, so the
//! hash the validators sign never depends on the signatures).
//!
//! Data flow: rpc/p2p decode raw bytes into [`SignedTx`] here (size, type, chain id and
//! signature checked once, at the edge); mempool, execution and storage only ever see
//! transactions whose sender has been recovered.

pub mod block;
pub mod genesis;
pub mod ids;
pub mod merkle;
pub mod receipt;
pub mod tx;

pub use alloy_primitives::{address, b256, keccak256, Address, Bloom, Bytes, B256, U256};
pub use block::{Block, Header};
pub use genesis::{
    Genesis, GenesisAccount, GenesisError, GenesisValidator, LockTier, PocTask, SocketParams,
    StakingParams, EMC,
};
pub use ids::{Epoch, Height, Round};
pub use receipt::{system_tx_hash, Log, Receipt, SYSTEM_CALLER};
pub use tx::{decode_raw_tx, SignedTx, TxError, MAX_TX_SIZE};

/// Version string reported by `web3_clientVersion` and the `Chain` system contract.
pub const CLIENT_VERSION: &str = concat!("emc/v", env!("CARGO_PKG_VERSION"));
