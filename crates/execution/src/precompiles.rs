//! Ethereum's precompiles plus EMC's system modules, as one revm precompile provider.

use alloy_primitives::{Address, Bytes, Log, LogData, B256, U256};
use emc_modules::{
    is_system_module, system_addresses, Loaded, ModuleCall, ModuleError, ModuleHost, Stored,
};
use revm::{
    context::Cfg,
    context_interface::{Block, ContextTr, JournalTr},
    handler::{EthPrecompiles, PrecompileProvider},
    interpreter::{CallInputs, Gas, InstructionResult, InterpreterResult},
    primitives::AddressSet,
};

pub struct EmcPrecompiles {
    eth: EthPrecompiles,
    warm: AddressSet,
    chain_id: u64,
}

impl EmcPrecompiles {
    pub fn new(chain_id: u64) -> Self {
        let eth = EthPrecompiles::new(crate::SPEC);
        let mut warm = eth.warm_addresses().clone();
        warm.extend(system_addresses());
        Self {
            eth,
            warm,
            chain_id,
        }
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

fn system_module(a: Address) -> Result<(), ModuleError> {
    if is_system_module(a) {
        Ok(())
    } else {
        Err(ModuleError::Revert(format!("{a} is not a system module")))
    }
}

impl<CTX: ContextTr> JournalHost<'_, CTX> {
    /// A read through the journal, which knows whether the slot is warm.
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
        system_module(module)?;
        self.ctx
            .journal_mut()
            .load_account(module)
            .map_err(host_err)?;
        self.sload_at_unchecked(module, slot)
    }

    fn sstore_at(
        &mut self,
        module: Address,
        slot: U256,
        value: U256,
    ) -> Result<Stored, ModuleError> {
        system_module(module)?;
        self.writable()?;
        self.ctx
            .journal_mut()
            .load_account(module)
            .map_err(host_err)?;
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
        if !is_system_module(address) {
            return self.eth.run(context, inputs);
        }
        let input = inputs.input.bytes(context);
        context
            .journal_mut()
            .load_account(address)
            .map_err(|e| e.to_string())?;
        let call = ModuleCall {
            caller: inputs.caller,
            value: inputs
                .transfer_value()
                .or(inputs.apparent_value())
                .unwrap_or_default(),
            input: &input,
            is_static: inputs.is_static,
        };
        let mut host = JournalHost {
            ctx: context,
            address,
            chain_id: self.chain_id,
            is_static: inputs.is_static,
        };
        // The chain's own end-of-block call is not metered.
        let system = inputs.caller == emc_modules::SYSTEM_CALLER;
        let limit = if system { u64::MAX } else { inputs.gas_limit };
        let Some((out, used)) = emc_modules::dispatch(address, &mut host, &call, limit) else {
            return Ok(None);
        };
        let used = if system { 0 } else { used };
        let mut gas = Gas::new(inputs.gas_limit);
        let result = match out {
            // `Metered` never reports more than the limit except as OutOfGas.
            Ok(bytes) if gas.record_regular_cost(used) => {
                InterpreterResult::new(InstructionResult::Return, bytes, gas)
            }
            Err(ModuleError::Revert(msg)) if gas.record_regular_cost(used) => {
                InterpreterResult::new(
                    InstructionResult::Revert,
                    emc_modules::revert_data(&msg),
                    gas,
                )
            }
            Ok(_) | Err(ModuleError::Revert(_)) | Err(ModuleError::OutOfGas) => {
                gas.spend_all();
                InterpreterResult::new(InstructionResult::PrecompileOOG, Bytes::new(), gas)
            }
            Err(ModuleError::Host(e)) => return Err(e),
        };
        Ok(Some(result))
    }

    fn warm_addresses(&self) -> &AddressSet {
        &self.warm
    }
}
