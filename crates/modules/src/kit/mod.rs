//! The kit every system module is built with.
//!
//! * [`SystemModule`]: what a module is to the chain: its address and name, the
//!   storage and balance genesis gives it, its calls, and its end-of-block and
//!   end-of-epoch hooks ([`end_of_block_calls`] orders them). The
//!   one table of modules is [`crate::MODULES`]; execution, genesis and the system
//!   addresses all read it, so adding a module is one folder and one line there.
//! * [`slots`]: typed storage in Solidity's layout (a value, a mapping, a mapping of
//!   mappings, a dynamic array), so `eth_getStorageAt` readers and Solidity
//!   developers find what they expect, and no module computes a slot by hand.
//! * [`abi`]: revert with a reason (`Error(string)`, decoded by every client), events.
//! * Calls from one module to another: [`crate::Metered::call_module`].
//! * Calls from a module into EVM contracts: [`callout`] (a trampoline in EVM code at
//!   the module's address, its native half at an inner address), for modules that
//!   declare [`SystemModule::calls_out`]; [`crate::Metered::call_out`] asks for one.
//!
//! Invariant: a module touches storage only through [`crate::Metered`], which
//! charges every access against the call's gas before it happens.

pub mod abi;
pub mod callout;
pub mod slots;

use crate::{Metered, ModuleCall, ModuleError};
use alloy_primitives::{Address, Bytes, U256};
use emc_types::Epoch;
use std::collections::BTreeMap;

/// What genesis gives a module: storage slots and, if it holds value from the start
/// (the genesis validators' stakes), its balance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleGenesis {
    pub storage: BTreeMap<U256, U256>,
    pub balance: Option<U256>,
}

/// What the end of a block tells the modules.
#[derive(Clone, Debug)]
pub struct BlockEnd {
    pub height: u64,
    /// Blocks per epoch (the genesis's staking parameter).
    pub epoch_blocks: u64,
    /// The block's proposer.
    pub proposer: Address,
    /// The parent's commit signers, as the header carries them.
    pub signers: Bytes,
}

impl BlockEnd {
    /// The epoch this block ends, if it is an epoch's last block.
    pub fn ends_epoch(&self) -> Option<Epoch> {
        let n = self.epoch_blocks.max(1);
        (self.height > 0 && self.height.is_multiple_of(n)).then(|| Epoch::of(self.height, n))
    }
}

/// The system calls the chain makes at the end of a block, in order: every module's
/// end-of-block hook in table order, then, at an epoch's last block, every module's
/// end-of-epoch hook in table order. Each is `(module, its name, calldata)`.
pub fn end_of_block_calls(
    table: &[&dyn SystemModule],
    end: &BlockEnd,
) -> Vec<(Address, &'static str, Bytes)> {
    let mut calls: Vec<_> = table
        .iter()
        .filter_map(|m| m.end_block(end).map(|c| (m.address(), m.name(), c)))
        .collect();
    if let Some(epoch) = end.ends_epoch() {
        calls.extend(
            table
                .iter()
                .filter_map(|m| m.end_epoch(epoch).map(|c| (m.address(), m.name(), c))),
        );
    }
    calls
}

/// A system module: native Rust code reached as a contract at a fixed address.
pub trait SystemModule: Sync {
    fn address(&self) -> Address;
    /// Its name, as a revert reason's prefix and the docs say it.
    fn name(&self) -> &'static str;
    /// The storage and balance genesis gives it (none by default).
    fn genesis(&self, _g: &emc_types::Genesis) -> ModuleGenesis {
        ModuleGenesis::default()
    }
    /// Serves one call, metered.
    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError>;
    /// The calldata of the system call the chain makes to this module at the end of
    /// every block (caller `SYSTEM_CALLER`, unmetered), or `None` for no hook.
    fn end_block(&self, _end: &BlockEnd) -> Option<Bytes> {
        None
    }
    /// The calldata of the system call the chain makes to this module after the
    /// end-of-block calls of an epoch's last block, or `None` for no hook.
    fn end_epoch(&self, _epoch: Epoch) -> Option<Bytes> {
        None
    }
    /// Whether the module calls EVM contracts ([`callout`]): genesis gives it the
    /// trampoline's code instead of the `0xfe` marker, and its native code answers at
    /// its inner address.
    fn calls_out(&self) -> bool {
        false
    }
}

/// The code genesis gives a module's address: the trampoline for one that calls out,
/// otherwise one `INVALID` byte (so tools that check `eth_getCode` see a contract).
pub fn code_of(module: &dyn SystemModule) -> Bytes {
    if module.calls_out() {
        callout::trampoline()
    } else {
        Bytes::from_static(&[0xfe])
    }
}

/// The module at `address` in `table`.
pub fn find<'t>(
    table: &'t [&'t dyn SystemModule],
    address: Address,
) -> Option<&'t dyn SystemModule> {
    table.iter().copied().find(|m| m.address() == address)
}

/// Checks a table: addresses and names unique, none zero.
pub fn check(table: &[&dyn SystemModule]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    for m in table {
        if m.address().is_zero() || callout::outer(m.address()).is_some() {
            return Err(format!(
                "module {} has a zero address or one with byte 17 set (an inner address)",
                m.name()
            ));
        }
        if !seen.insert(m.address()) {
            return Err(format!(
                "module {} has a zero or repeated address",
                m.name()
            ));
        }
        if !names.insert(m.name()) {
            return Err(format!("two modules are called {}", m.name()));
        }
    }
    Ok(())
}
