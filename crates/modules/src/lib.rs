//! EMC protocol modules: native Rust code reached as contracts at fixed addresses.
//!
//! Each module declares its interface with alloy's `sol!`, so ethers.js, web3.py or a
//! Solidity contract calls it through an ordinary ABI, and wallets and explorers decode
//! it. A module is pure logic over a [`ModuleHost`]: it reads and writes its own storage
//! slots (which live in its account, so they are committed in the state tree and read
//! at any past height like any contract's) and emits logs. The execution crate provides
//! the host over revm's journal, so a module call reverts with the transaction that made
//! it.
//!
//! Storage layout follows Solidity's, so `eth_getStorageAt` readers see familiar slots.
//!
//! | address | module | since |
//! |---|---|---|
//! | `0x0000000000000000000000000000000000001000` | [`chain::ChainModule`]: version, chain id, validator set | chain core |
//! | `0x0000000000000000000000000000000000001001` | [`staking::StakingModule`]: stake, election, rewards, slashing | staking |
//! | `0x0000000000000000000000000000000000001002` | [`poc::PocModule`]: proof-of-computing attestations, E per epoch, faults | computing nodes |
//! | `0x0000000000000000000000000000000000001003` | [`registry::RegistryModule`]: computing nodes, their owners, apps and prices | computing nodes |
//! | `0x0000000000000000000000000000000000001004` | [`tasks::TasksModule`]: client escrow, settlement of doubly signed call receipts | smart routers |
//! | `0x0000000000000000000000000000000000001005` | [`sockets::SocketsModule`]: computing sockets, ERC-721 with rentals and subscriptions | sockets |
//! | `0x0000000000000000000000000000000000001006` | [`market::MarketModule`]: the spot call auction, orders and bids, resale | market |
//! | `0x0000000000000000000000000000000000001007` | [`pools::PoolsModule`]: pools of nodes as one Ray cluster, jobs settled by metering | pools |
//! | `0x0000000000000000000000000000000000001008` | [`dids::DidsModule`]: the ERC-1056 DID registry `did:ethr` lives in | identity |
//! | `0x0000000000000000000000000000000000001009` | [`sessions::SessionsModule`]: session keys opened by Sign-In with Ethereum (EOA or EIP-1271) | identity |
//!
//! Every module is built with the [`kit`] (the [`kit::SystemModule`] trait, typed
//! storage slots, ABI helpers) and listed once in [`MODULES`].
//!
//! Besides calls from transactions, the executor makes a *system call* at the end of
//! every block (caller [`SYSTEM_CALLER`], as Ethereum's EIP-4788 does) to each module
//! with an end-of-block hook ([`kit::SystemModule::end_block`]): today the staking
//! module's `onBlock`, which pays block rewards, counts missed commits, and at an
//! epoch's last block elects the next set. System calls are not metered.

pub mod chain;
pub mod dids;
pub mod kit;
pub mod market;
pub mod poc;
pub mod pools;
pub mod registry;
pub mod sessions;
pub mod sockets;
pub mod staking;
pub mod tasks;
#[cfg(test)]
mod testing;

use alloy_primitives::{address, Address, Bytes, B256, U256};

/// Gas charged for entering any module.
pub const GAS_BASE: u64 = 2_000;
/// Storage gas, per slot touched, as the EVM charges it (EIP-2929 and EIP-2200 as
/// amended by EIP-3529, refunds included: see [`Stored::refund`]): a read of a slot not yet touched in the
/// transaction costs [`GAS_COLD_SLOAD`], of one already touched [`GAS_WARM`]; a write
/// that changes a slot's value from what it was at the transaction's start costs
/// [`GAS_SSTORE_SET`] (from zero) or [`GAS_SSTORE_RESET`], any other write
/// [`GAS_WARM`], and a write to a cold slot [`GAS_COLD_SLOAD`] more.
pub const GAS_COLD_SLOAD: u64 = 2_100;
pub const GAS_WARM: u64 = 100;
/// A cold account's first access (EIP-2929).
pub const GAS_COLD_ACCOUNT: u64 = 2_600;
pub const GAS_SSTORE_SET: u64 = 20_000;
pub const GAS_SSTORE_RESET: u64 = 2_900;
/// EIP-3529's refund for clearing a slot that was set when the transaction began.
pub const GAS_SSTORE_CLEARS: i64 = 4_800;
/// A signature check (secp256k1 recovery or ed25519), at the `ecrecover` precompile's
/// price.
pub const GAS_SIGNATURE: u64 = 3_000;

/// A log's gas, as the EVM's `LOGn` charges it: [`GAS_LOG`] plus as much per topic,
/// plus [`GAS_LOG_BYTE`] per byte of data.
pub const GAS_LOG: u64 = 375;
pub const GAS_LOG_BYTE: u64 = 8;

/// Gas for moving, minting or burning native balance.
pub const GAS_BALANCE: u64 = 9_000;

pub const CHAIN_ADDRESS: Address = address!("0x0000000000000000000000000000000000001000");
pub const STAKING_ADDRESS: Address = address!("0x0000000000000000000000000000000000001001");
/// The proof-of-computing module, the only caller of `IStaking.setComputeScores`
/// and `IStaking.slashCompute`.
pub const POC_ADDRESS: Address = address!("0x0000000000000000000000000000000000001002");
pub const REGISTRY_ADDRESS: Address = address!("0x0000000000000000000000000000000000001003");
pub const TASKS_ADDRESS: Address = address!("0x0000000000000000000000000000000000001004");
/// Computing sockets: compute access as ERC-721 tokens.
pub const SOCKETS_ADDRESS: Address = address!("0x0000000000000000000000000000000000001005");
/// The computing marketplace: the spot call auction, orders and bids, resale.
pub const MARKET_ADDRESS: Address = address!("0x0000000000000000000000000000000000001006");
/// Computing pools: many nodes as one Ray cluster, one job's pay split by metering.
pub const POOLS_ADDRESS: Address = address!("0x0000000000000000000000000000000000001007");
/// The DID registry (ERC-1056), where `did:ethr` identities live.
pub const DIDS_ADDRESS: Address = address!("0x0000000000000000000000000000000000001008");
/// Session keys opened by Sign-In with Ethereum ([`sessions`]).
pub const SESSIONS_ADDRESS: Address = address!("0x0000000000000000000000000000000000001009");
/// The caller of system calls (revm's and Ethereum's system address).
pub const SYSTEM_CALLER: Address = emc_types::SYSTEM_CALLER;

/// The one table of system modules: execution dispatches calls by it, genesis gives
/// each its storage and a one-byte `INVALID` (0xfe) code (so tools that check
/// `eth_getCode` see a contract), and the chain calls each one's end-of-block hook in
/// this order. Adding a module is its folder and one line here.
pub static MODULES: &[&dyn kit::SystemModule] = &[
    &chain::ChainModule,
    &staking::StakingModule,
    &poc::PocModule,
    &registry::RegistryModule,
    &tasks::TasksModule,
    &sockets::SocketsModule,
    &market::MarketModule,
    &pools::PoolsModule,
    &dids::DidsModule,
    &sessions::SessionsModule,
];

/// Whether a system module lives at `a`.
pub fn is_system_module(a: Address) -> bool {
    kit::find(MODULES, a).is_some()
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("revert: {0}")]
    Revert(String),
    #[error("out of gas")]
    OutOfGas,
    #[error("host: {0}")]
    Host(String),
}

/// A storage read: the value, and whether the slot was cold (not yet touched in the
/// transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub value: U256,
    pub cold: bool,
}

/// A storage write: the slot's value at the transaction's start, before this write,
/// and whether it was cold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub original: U256,
    pub present: U256,
    pub cold: bool,
}

impl Stored {
    /// The write's gas ([`GAS_SSTORE_SET`] and its siblings).
    pub fn gas(&self, new: U256) -> u64 {
        let base = if new == self.present || self.original != self.present {
            GAS_WARM
        } else if self.original.is_zero() {
            GAS_SSTORE_SET
        } else {
            GAS_SSTORE_RESET
        };
        base + if self.cold { GAS_COLD_SLOAD } else { 0 }
    }

    /// The write's change to the transaction's refund counter, by EIP-2200's rules
    /// with EIP-3529's numbers: clearing a slot set at the transaction's start earns
    /// [`GAS_SSTORE_CLEARS`] (taken back if the slot is set again), and restoring a
    /// slot's original value returns what the first write cost beyond a warm access.
    /// The EVM caps the total at a fifth of the transaction's gas.
    pub fn refund(&self, new: U256) -> i64 {
        let (original, present) = (self.original, self.present);
        if new == present {
            return 0;
        }
        if original == present {
            return if !original.is_zero() && new.is_zero() {
                GAS_SSTORE_CLEARS
            } else {
                0
            };
        }
        let mut r = 0;
        if !original.is_zero() {
            if present.is_zero() {
                r -= GAS_SSTORE_CLEARS;
            }
            if new.is_zero() {
                r += GAS_SSTORE_CLEARS;
            }
        }
        if original == new {
            let first = if original.is_zero() {
                GAS_SSTORE_SET
            } else {
                GAS_SSTORE_RESET
            };
            r += (first - GAS_WARM) as i64;
        }
        r
    }
}

/// What a module sees of the chain while it runs.
pub trait ModuleHost {
    fn sload(&mut self, slot: U256) -> Result<Loaded, ModuleError>;
    fn sstore(&mut self, slot: U256, value: U256) -> Result<Stored, ModuleError>;
    /// Another system module's storage (the staking module writes the Chain module's
    /// validator set). Hosts refuse addresses that are not modules ([`is_system_module`]).
    fn sload_at(&mut self, module: Address, slot: U256) -> Result<Loaded, ModuleError>;
    fn sstore_at(
        &mut self,
        module: Address,
        slot: U256,
        value: U256,
    ) -> Result<Stored, ModuleError>;
    /// Pays `amount` out of this module's own balance.
    fn pay(&mut self, to: Address, amount: U256) -> Result<(), ModuleError>;
    /// Creates `amount` new wei in `to`'s balance (emission).
    fn mint(&mut self, to: Address, amount: U256) -> Result<(), ModuleError>;
    /// Destroys `amount` of this module's own balance (slashing).
    fn burn(&mut self, amount: U256) -> Result<(), ModuleError>;
    fn emit(&mut self, topics: Vec<B256>, data: Bytes);
    /// Makes `module` the module this host serves (for a nested module call) and
    /// returns the one it served before.
    fn switch_to(&mut self, module: Address) -> Address;
    /// Readies `module`'s account before a nested call into it, as a `CALL` loads its
    /// callee (revm's journal reads no storage of an account it has not loaded).
    fn enter(&mut self, module: Address) -> Result<(), ModuleError> {
        let _ = module;
        Ok(())
    }
    /// Asks the module's trampoline to call a contract once this call returns
    /// ([`kit::callout`]). Hosts refuse a second one in a call, and modules that do not
    /// call out.
    fn call_out(&mut self, call: kit::callout::CallOut) -> Result<(), ModuleError> {
        let _ = call;
        Err(ModuleError::Revert(
            "this host cannot call contracts".into(),
        ))
    }
    /// Whether account `a` holds code, and whether the account was cold (EIP-1271
    /// verifiers ask a contract wallet only once they know it is one).
    fn has_code(&mut self, a: Address) -> Result<Loaded, ModuleError> {
        let _ = a;
        Err(ModuleError::Revert("this host cannot read code".into()))
    }
    fn chain_id(&self) -> u64;
    fn height(&self) -> u64;
    /// The block's timestamp, Unix seconds.
    fn timestamp(&self) -> u64;
}

/// One call into a module.
pub struct ModuleCall<'a> {
    pub caller: Address,
    pub value: U256,
    pub input: &'a [u8],
    pub is_static: bool,
}

/// Meters gas for a module call; every host access goes through it.
pub struct Metered<'h> {
    host: &'h mut dyn ModuleHost,
    /// The modules a nested call may reach.
    table: &'h [&'h dyn kit::SystemModule],
    pub gas_limit: u64,
    pub gas_used: u64,
    /// The refund counter's change ([`Stored::refund`]); the EVM applies it only if
    /// the call succeeds.
    pub gas_refunded: i64,
}

impl<'h> Metered<'h> {
    pub fn new(host: &'h mut dyn ModuleHost, gas_limit: u64) -> Result<Self, ModuleError> {
        Self::new_in(MODULES, host, gas_limit)
    }

    /// [`Metered::new`] over another table of modules (a test's, with a module of its
    /// own).
    pub fn new_in(
        table: &'h [&'h dyn kit::SystemModule],
        host: &'h mut dyn ModuleHost,
        gas_limit: u64,
    ) -> Result<Self, ModuleError> {
        let mut m = Self {
            host,
            table,
            gas_limit,
            gas_used: 0,
            gas_refunded: 0,
        };
        m.charge(GAS_BASE)?;
        Ok(m)
    }

    pub fn charge(&mut self, gas: u64) -> Result<(), ModuleError> {
        self.gas_used = self.gas_used.saturating_add(gas);
        if self.gas_used > self.gas_limit {
            return Err(ModuleError::OutOfGas);
        }
        Ok(())
    }

    /// Reads a slot of this module's storage. Gas is charged after the access (its
    /// price depends on whether the slot was warm); running out of gas fails the call,
    /// and the chain reverts everything it did.
    pub fn sload(&mut self, slot: U256) -> Result<U256, ModuleError> {
        let l = self.host.sload(slot)?;
        self.charge(if l.cold { GAS_COLD_SLOAD } else { GAS_WARM })?;
        Ok(l.value)
    }

    pub fn sstore(&mut self, slot: U256, value: U256) -> Result<(), ModuleError> {
        let s = self.host.sstore(slot, value)?;
        self.gas_refunded += s.refund(value);
        self.charge(s.gas(value))
    }

    pub fn sload_at(&mut self, module: Address, slot: U256) -> Result<U256, ModuleError> {
        let l = self.host.sload_at(module, slot)?;
        self.charge(if l.cold { GAS_COLD_SLOAD } else { GAS_WARM })?;
        Ok(l.value)
    }

    /// Whether account `a` holds code, priced as `EXTCODESIZE` (EIP-2929).
    pub fn has_code(&mut self, a: Address) -> Result<bool, ModuleError> {
        let l = self.host.has_code(a)?;
        self.charge(if l.cold { GAS_COLD_ACCOUNT } else { GAS_WARM })?;
        Ok(!l.value.is_zero())
    }

    /// Charges one signature check, before it is made.
    pub fn charge_signature(&mut self) -> Result<(), ModuleError> {
        self.charge(GAS_SIGNATURE)
    }

    pub fn sstore_at(
        &mut self,
        module: Address,
        slot: U256,
        value: U256,
    ) -> Result<(), ModuleError> {
        let s = self.host.sstore_at(module, slot, value)?;
        self.gas_refunded += s.refund(value);
        self.charge(s.gas(value))
    }

    pub fn pay(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        self.charge(GAS_BALANCE)?;
        self.host.pay(to, amount)
    }

    pub fn mint(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        self.charge(GAS_BALANCE)?;
        self.host.mint(to, amount)
    }

    pub fn burn(&mut self, amount: U256) -> Result<(), ModuleError> {
        self.charge(GAS_BALANCE)?;
        self.host.burn(amount)
    }

    /// Emits a log, at the EVM's `LOG` price ([`GAS_LOG`], per topic and per byte).
    /// A log past the call's gas fails the call when it returns.
    pub fn emit(&mut self, topics: Vec<B256>, data: Bytes) {
        let cost = GAS_LOG + GAS_LOG * topics.len() as u64 + GAS_LOG_BYTE * data.len() as u64;
        self.gas_used = self.gas_used.saturating_add(cost);
        self.host.emit(topics, data)
    }

    /// Calls another system module natively, as a CALL would: the callee sees this
    /// module as its caller, runs on the gas left, and an error fails the whole call.
    pub fn call_module(&mut self, module: Address, input: &[u8]) -> Result<Bytes, ModuleError> {
        if kit::find(self.table, module).is_none() {
            return Err(ModuleError::Revert(format!(
                "{module} is not a system module"
            )));
        }
        let left = self.gas_limit.saturating_sub(self.gas_used);
        self.host.enter(module)?;
        let caller = self.host.switch_to(module);
        let call = ModuleCall {
            caller,
            value: U256::ZERO,
            input,
            is_static: false,
        };
        let out = dispatch_in(self.table, module, &mut *self.host, &call, left);
        self.host.switch_to(caller);
        let d = out.ok_or_else(|| ModuleError::Revert(format!("no module at {module}")))?;
        self.charge(d.gas_used)?;
        self.gas_refunded += d.gas_refunded;
        d.out
    }

    /// Has the trampoline call `call.target` after this call returns, if it is a
    /// contract ([`kit::callout`]): make every state change first. The EVM meters the
    /// call itself.
    pub fn call_out(&mut self, call: kit::callout::CallOut) -> Result<(), ModuleError> {
        self.charge(GAS_WARM)?;
        self.host.call_out(call)
    }

    pub fn host(&self) -> &dyn ModuleHost {
        &*self.host
    }
}

/// What a module call returned, and its gas: used, and the change to the refund
/// counter (zero unless the call succeeded).
#[derive(Debug)]
pub struct Dispatched {
    pub out: Result<Bytes, ModuleError>,
    pub gas_used: u64,
    pub gas_refunded: i64,
}

/// Runs a call to `address` if a module lives there; `None` otherwise.
pub fn dispatch(
    address: Address,
    host: &mut dyn ModuleHost,
    call: &ModuleCall<'_>,
    gas_limit: u64,
) -> Option<Dispatched> {
    dispatch_in(MODULES, address, host, call, gas_limit)
}

/// [`dispatch`] over another table of modules.
pub fn dispatch_in(
    table: &[&dyn kit::SystemModule],
    address: Address,
    host: &mut dyn ModuleHost,
    call: &ModuleCall<'_>,
    gas_limit: u64,
) -> Option<Dispatched> {
    let module = kit::find(table, address)?;
    let mut m = match Metered::new_in(table, host, gas_limit) {
        Err(e) => {
            return Some(Dispatched {
                out: Err(e),
                gas_used: gas_limit,
                gas_refunded: 0,
            })
        }
        Ok(m) => m,
    };
    // A panic in module code (a bug) fails the call like a revert, with its message,
    // instead of taking the node down; the EVM undoes what the call did.
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| module.call(&mut m, call)))
        .unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(ModuleError::Revert(format!(
                "{}: internal error ({why})",
                module.name()
            )))
        });
    // A log charges after the fact (`Metered::emit`): past the limit, the call ran
    // out of gas.
    let out = if m.gas_used > gas_limit {
        Err(ModuleError::OutOfGas)
    } else {
        out
    };
    let gas_used = if matches!(out, Err(ModuleError::OutOfGas)) {
        gas_limit
    } else {
        m.gas_used
    };
    let gas_refunded = if out.is_ok() { m.gas_refunded } else { 0 };
    Some(Dispatched {
        out,
        gas_used,
        gas_refunded,
    })
}

pub use kit::abi::revert_data;

#[cfg(test)]
mod gas_tests {
    use super::*;

    /// EIP-3529's test cases (each a run of `SSTORE`s to one warm slot from
    /// `original`; `used` counts two `PUSH1`s per store): gas and refund per write, as
    /// the modules meter them.
    #[test]
    fn storage_gas_and_refunds_follow_eip_3529s_test_cases() {
        #[rustfmt::skip]
        let cases: &[(&[u64], u64, i64, u64)] = &[
            (&[0, 0], 212, 0, 0), (&[0, 1], 20_112, 0, 0), (&[1, 0], 20_112, 19_900, 0),
            (&[1, 2], 20_112, 0, 0), (&[1, 1], 20_112, 0, 0), (&[0, 0], 3_012, 4_800, 1),
            (&[0, 1], 3_012, 2_800, 1), (&[0, 2], 3_012, 0, 1), (&[2, 0], 3_012, 4_800, 1),
            (&[2, 3], 3_012, 0, 1), (&[2, 1], 3_012, 2_800, 1), (&[2, 2], 3_012, 0, 1),
            (&[1, 0], 3_012, 4_800, 1), (&[1, 2], 3_012, 0, 1), (&[1, 1], 212, 0, 1),
            (&[1, 0, 1], 40_118, 19_900, 0), (&[0, 1, 0], 5_918, 7_600, 1),
        ];
        for &(writes, used, refund, original) in cases {
            let original = U256::from(original);
            let (mut present, mut gas, mut refunded) = (original, 0, 0);
            for &w in writes {
                let w = U256::from(w);
                let s = Stored {
                    original,
                    present,
                    cold: false,
                };
                gas += 6 + s.gas(w);
                refunded += s.refund(w);
                present = w;
            }
            assert_eq!(
                (gas, refunded),
                (used, refund),
                "{writes:?} from {original}"
            );
        }
    }
}
