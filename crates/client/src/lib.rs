//! The core of EMC's Rust SDK, and the seam between the compute economy and the chain.
//!
//! * [`ChainClient`]: what a router, a computing node, a validator's challenger or the
//!   CLI needs of the chain: views, nonces, fees, submitting, receipts, the head. Two
//!   implementations: [`JsonRpc`] over any node's eth JSON-RPC (here), and one over an
//!   in-process chain (in `emc-node`, which owns the chain). [`ChainClientExt`] adds
//!   typed views and sending a signed call on top of either.
//! * [`tx`]: the one transaction builder (EIP-1559, fee cap with room for the base fee
//!   to double).
//! * [`keys`]: API keys, a client's signed grant as one `emc_...` string.
//!
//! This crate depends on no node, chain, storage or libp2p code, so a dApp or a tool
//! links it without revm, redb, wasmtime or candle.

pub mod chain;
pub mod keys;
pub mod rpc;
pub mod sealed;
pub mod tx;

pub use chain::{ChainClient, ChainClientExt, Head, TxOutcome};
pub use rpc::JsonRpc;
pub use tx::Fees;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The chain could not be reached, or answered something that is not an answer.
    #[error("{0}")]
    Unreachable(String),
    /// The chain answered with an error (a JSON-RPC error's message and code).
    #[error("{message} (code {code})")]
    Rpc { code: i64, message: String },
    /// A view or a transaction reverted, with its reason.
    #[error("reverted: {0}")]
    Reverted(String),
    /// A transaction the pool refused.
    #[error("refused: {0}")]
    Refused(String),
    /// What came back does not decode as the call's return type.
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    #[error("signing: {0}")]
    Signing(String),
    /// An API key that is not one, or not for this chain, router or time.
    #[error("{0}")]
    Key(String),
    #[error("no receipt after {0:?}; the transaction is still in the pool")]
    NotIncluded(std::time::Duration),
}
