//! Ethereum's precompiles plus EMC's system modules, as one revm precompile provider.
//!
//! A module is reached only by a plain `CALL` or `STATICCALL` (a `DELEGATECALL` or
//! `CALLCODE` would let a contract act on a module's storage as its own caller's
//! caller). A module that calls contracts ([`emc_modules::kit::callout`]) has EVM code
//! at its address, which this provider leaves to the interpreter; its native half
//! answers at its inner address, to its trampoline only.

use alloy_primitives::{Address, Bytes, Log, LogData, B256, U256};
use emc_modules::{
    kit::{self, callout, SystemModule},
    Loaded, ModuleCall, ModuleError, ModuleHost, Stored, MODULES,
};
use revm::{
    context::Cfg,
    context_interface::{Block, ContextTr, JournalTr},
    handler::{EthPrecompiles, PrecompileProvider},
    interpreter::{CallInputs, Gas, InstructionResult, InterpreterResult},
    primitives::AddressSet,
};

/// The table of modules a provider serves.
pub type Table = &'static [&'static dyn SystemModule];

pub struct EmcPrecompiles {
    eth: EthPrecompiles,
    warm: AddressSet,
    chain_id: u64,
    table: Table,
}

impl EmcPrecompiles {
    pub fn new(chain_id: u64) -> Self {
        Self::new_in(MODULES, chain_id)
    }

    /// A provider over another table of modules (a test's).
    pub fn new_in(table: Table, chain_id: u64) -> Self {
        let eth = EthPrecompiles::new(crate::SPEC);
        let mut warm = eth.warm_addresses().clone();
        for m in table {
            warm.insert(m.address());
            if m.calls_out() {
                warm.insert(callout::inner(m.address()));
            }
        }
        Self {
            eth,
            warm,
            chain_id,
            table,
        }
    }

    /// The module that answers a call to `address`, and whether `address` is its inner
    /// half; `None` for anything else (a module with a trampoline included: its code
    /// runs).
    fn module_at(&self, address: Address) -> Option<(&'static dyn SystemModule, bool)> {
        if let Some(m) = kit::find(self.table, address) {
            return (!m.calls_out()).then_some((m, false));
        }
        let m = kit::find(self.table, callout::outer(address)?)?;
        m.calls_out().then_some((m, true))
    }
}

impl EmcPrecompiles {
    /// The addresses every transaction finds warm: Ethereum's precompiles and the
    /// system modules.
    pub fn warm(&self) -> impl Iterator<Item = Address> + '_ {
        self.warm.iter().copied()
    }
}

fn host_err(e: impl std::fmt::Display) -> ModuleError {
    ModuleError::Host(e.to_string())
}

fn system_module(table: Table, a: Address) -> Result<(), ModuleError> {
    if kit::find(table, a).is_some() {
        Ok(())
    } else {
        Err(ModuleError::Revert(format!("{a} is not a system module")))
    }
}

impl<CTX: ContextTr> JournalHost<'_, CTX> {
    /// A read through the journal, which knows whether the slot is warm (the account
    /// must be loaded: the called module is, another one is by [`ModuleHost::enter`]
    /// or `sload_at`).
    fn sload_at_unchecked(&mut self, a: Address, slot: U256) -> Result<Loaded, ModuleError> {
        let l = self.ctx.journal_mut().sload(a, slot).map_err(host_err)?;
        Ok(Loaded {
            value: l.data,
            cold: l.is_cold,
        })
    }

    /// A write through the journal, which knows the slot's original value.
    fn sstore_at_unchecked(
        &mut self,
        a: Address,
        slot: U256,
        value: U256,
    ) -> Result<Stored, ModuleError> {
        let s = self
            .ctx
            .journal_mut()
            .sstore(a, slot, value)
            .map_err(host_err)?;
        Ok(Stored {
            original: s.data.original_value,
            present: s.data.present_value,
            cold: s.is_cold,
        })
    }
}

impl<CTX: ContextTr> JournalHost<'_, CTX> {
    /// Loads `a`'s account into the journal (a no-op once loaded).
    fn load(&mut self, a: Address) -> Result<(), ModuleError> {
        self.ctx.journal_mut().load_account(a).map_err(host_err)?;
        Ok(())
    }
}

impl<CTX> JournalHost<'_, CTX> {
    fn writable(&self) -> Result<(), ModuleError> {
        if self.is_static {
            Err(ModuleError::Revert("state change in a static call".into()))
        } else {
            Ok(())
        }
    }
}

struct JournalHost<'c, CTX> {
    ctx: &'c mut CTX,
    address: Address,
    chain_id: u64,
    is_static: bool,
    table: Table,
    /// The call-out the module asked for, if it calls contracts.
    call_out: Option<callout::CallOut>,
    calls_out: bool,
}

impl<CTX: ContextTr> ModuleHost for JournalHost<'_, CTX> {
    fn sload(&mut self, slot: U256) -> Result<Loaded, ModuleError> {
        let address = self.address;
        self.sload_at_unchecked(address, slot)
    }

    fn sstore(&mut self, slot: U256, value: U256) -> Result<Stored, ModuleError> {
        self.writable()?;
        let address = self.address;
        self.sstore_at_unchecked(address, slot, value)
    }

    fn sload_at(&mut self, module: Address, slot: U256) -> Result<Loaded, ModuleError> {
        system_module(self.table, module)?;
        self.load(module)?;
        self.sload_at_unchecked(module, slot)
    }

    fn sstore_at(
        &mut self,
        module: Address,
        slot: U256,
        value: U256,
    ) -> Result<Stored, ModuleError> {
        system_module(self.table, module)?;
        self.writable()?;
        self.load(module)?;
        self.sstore_at_unchecked(module, slot, value)
    }

    fn pay(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        self.writable()?;
        match self
            .ctx
            .journal_mut()
            .transfer(self.address, to, amount)
            .map_err(host_err)?
        {
            None => Ok(()),
            Some(e) => Err(ModuleError::Revert(format!("payment failed: {e:?}"))),
        }
    }

    fn mint(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        self.writable()?;
        self.ctx
            .journal_mut()
            .balance_incr(to, amount)
            .map_err(host_err)
    }

    fn burn(&mut self, amount: U256) -> Result<(), ModuleError> {
        use revm::context_interface::journaled_state::account::JournaledAccountTr;
        self.writable()?;
        let mut acc = self
            .ctx
            .journal_mut()
            .load_account_mut(self.address)
            .map_err(host_err)?;
        if acc.decr_balance(amount) {
            Ok(())
        } else {
            Err(ModuleError::Revert(
                "burn exceeds the module's balance".into(),
            ))
        }
    }

    fn emit(&mut self, topics: Vec<B256>, data: Bytes) {
        let log = Log {
            address: self.address,
            data: LogData::new_unchecked(topics, data),
        };
        self.ctx.journal_mut().log(log);
    }

    fn switch_to(&mut self, module: Address) -> Address {
        std::mem::replace(&mut self.address, module)
    }

    fn enter(&mut self, module: Address) -> Result<(), ModuleError> {
        self.load(module)
    }

    fn call_out(&mut self, call: callout::CallOut) -> Result<(), ModuleError> {
        self.writable()?;
        if !self.calls_out {
            return Err(ModuleError::Revert(format!(
                "{} does not call contracts",
                self.address
            )));
        }
        if self.call_out.is_some() {
            return Err(ModuleError::Revert(
                "a module calls out at most once per call".into(),
            ));
        }
        self.call_out = Some(call);
        Ok(())
    }

    fn has_code(&mut self, a: Address) -> Result<Loaded, ModuleError> {
        let acc = self
            .ctx
            .journal_mut()
            .load_account_with_code(a)
            .map_err(host_err)?;
        let code = acc.info.code.as_ref().is_some_and(|c| !c.is_empty());
        Ok(Loaded {
            value: U256::from(code as u8),
            cold: acc.is_cold,
        })
    }

    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn height(&self) -> u64 {
        self.ctx.block().number().saturating_to()
    }

    fn timestamp(&self) -> u64 {
        self.ctx.block().timestamp().saturating_to()
    }
}

impl<CTX: ContextTr> PrecompileProvider<CTX> for EmcPrecompiles {
    type Output = InterpreterResult;

    fn set_spec(&mut self, spec: <CTX::Cfg as Cfg>::Spec) -> bool {
        <EthPrecompiles as PrecompileProvider<CTX>>::set_spec(&mut self.eth, spec)
    }

    fn run(
        &mut self,
        context: &mut CTX,
        inputs: &CallInputs,
    ) -> Result<Option<InterpreterResult>, String> {
        let address = inputs.bytecode_address;
        let Some((module, inner)) = self.module_at(address) else {
            return self.eth.run(context, inputs);
        };
        if inputs.target_address != address {
            return Ok(Some(refuse(
                inputs,
                "system modules are reached by CALL or STATICCALL, not DELEGATECALL or CALLCODE",
            )));
        }
        let input = inputs.input.bytes(context);
        let (caller, value, input) = if inner {
            if inputs.caller != module.address() {
                return Ok(Some(refuse(
                    inputs,
                    "only the module's own code calls this address",
                )));
            }
            callout::split_input(&input).ok_or("a trampoline sent no caller")?
        } else {
            let value = inputs.transfer_value().or(inputs.apparent_value());
            (inputs.caller, value.unwrap_or_default(), &input[..])
        };
        let module_address = module.address();
        context
            .journal_mut()
            .load_account(module_address)
            .map_err(|e| e.to_string())?;
        let call = ModuleCall {
            caller,
            value,
            input,
            is_static: inputs.is_static,
        };
        let mut host = JournalHost {
            ctx: context,
            address: module_address,
            chain_id: self.chain_id,
            is_static: inputs.is_static,
            table: self.table,
            call_out: None,
            calls_out: module.calls_out(),
        };
        // The chain's own end-of-block call is not metered.
        let system = caller == emc_modules::SYSTEM_CALLER;
        let limit = if system { u64::MAX } else { inputs.gas_limit };
        let Some(d) = emc_modules::dispatch_in(self.table, module_address, &mut host, &call, limit)
        else {
            return Ok(None);
        };
        let out = match d.out {
            Ok(bytes) if inner => Ok(callout::answer(&bytes, host.call_out.as_ref())),
            other => other,
        };
        let (used, refunded) = if system {
            (0, 0)
        } else {
            (d.gas_used, d.gas_refunded)
        };
        Ok(Some(result_of(out, used, refunded, inputs.gas_limit)?))
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.warm
    }
}

/// A module's answer as the interpreter takes it.
fn result_of(
    out: Result<Bytes, ModuleError>,
    used: u64,
    refunded: i64,
    limit: u64,
) -> Result<InterpreterResult, String> {
    let mut gas = Gas::new(limit);
    Ok(match out {
        // `Metered` never reports more than the limit except as OutOfGas.
        Ok(bytes) if gas.record_regular_cost(used) => {
            gas.record_refund(refunded);
            InterpreterResult::new(InstructionResult::Return, bytes, gas)
        }
        Err(ModuleError::Revert(msg)) if gas.record_regular_cost(used) => InterpreterResult::new(
            InstructionResult::Revert,
            emc_modules::revert_data(&msg),
            gas,
        ),
        Ok(_) | Err(ModuleError::Revert(_)) | Err(ModuleError::OutOfGas) => {
            gas.spend_all();
            InterpreterResult::new(InstructionResult::PrecompileOOG, Bytes::new(), gas)
        }
        Err(ModuleError::Host(e)) => return Err(e),
    })
}

/// A revert with `reason`, charging nothing.
fn refuse(inputs: &CallInputs, reason: &str) -> InterpreterResult {
    InterpreterResult::new(
        InstructionResult::Revert,
        emc_modules::revert_data(reason),
        Gas::new(inputs.gas_limit),
    )
}
