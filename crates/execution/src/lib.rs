//! EMC block execution.
//!
//! revm runs every transaction against an [`overlay::Overlay`]: the block's changes so
//! far on top of a [`emc_storage::StateSnapshot`] of the parent. Calls to a system
//! module's address are answered by [`precompiles::EmcPrecompiles`], which hands them
//! to `emc_modules` with a host over revm's journal, so a module's writes revert with
//! the transaction that made them and are committed with everything else.
//!
//! Fees are London's: the base fee is burnt, the tip goes to the block's proposer
//! (revm's beneficiary). Nothing here does I/O beyond reading the snapshot; the output
//! is a [`ExecutedBlock`] the chain seals and hands to storage.

mod call;
mod executor;
mod overlay;
pub mod precompiles;

pub use call::{call, create_access_list, estimate_gas, CallOutcome, CallRequest};
pub use executor::{BlockContext, ExecutedBlock, Executor, TxRejected};
pub use revm::primitives::hardfork::SpecId;

/// A transaction revm refused, in the words clients expect: geth's, where ethers and
/// web3.py key on them. revm's "lack of funds (B) for max fee (F)" counts the value
/// sent into F; geth says what it is.
pub(crate) fn invalid_tx(e: &revm::context_interface::result::InvalidTransaction) -> String {
    use revm::context_interface::result::InvalidTransaction as I;
    match e {
        I::LackOfFundForMaxFee { fee, balance } => format!(
            "insufficient funds for gas * price + value: balance {balance}, gas * price + value {fee}"
        ),
        other => other.to_string(),
    }
}

/// The hard fork rules EMC runs: Prague (PUSH0, transient storage, MCOPY, EIP-7623
/// calldata floor), without blobs.
pub const SPEC: SpecId = SpecId::PRAGUE;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("state: {0}")]
    State(#[from] emc_storage::StorageError),
    #[error("invalid transaction: {0}")]
    Invalid(String),
    #[error("evm: {0}")]
    Evm(String),
}
