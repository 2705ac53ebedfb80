//! ABI helpers every module shares: reverts with a reason and events.

use crate::{Metered, ModuleError};
use alloy_primitives::Bytes;
use alloy_sol_types::SolEvent;

/// A revert whose reason names the module: `"<Module>: <why>"`.
pub fn revert(module: &str, why: impl std::fmt::Display) -> ModuleError {
    ModuleError::Revert(format!("{module}: {why}"))
}

/// Solidity's `Error(string)` revert payload, which every Ethereum client decodes.
pub fn revert_data(msg: &str) -> Bytes {
    use alloy_sol_types::SolError;
    alloy_sol_types::Revert::from(msg).abi_encode().into()
}

/// Emits a `sol!` event as the module's log.
pub fn emit<E: SolEvent>(m: &mut Metered<'_>, e: E) {
    let log = e.encode_log_data();
    m.emit(log.topics().to_vec(), log.data);
}
