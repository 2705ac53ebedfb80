//! An in-memory host for module tests: storage per module, native balances, a
//! height, and the logs emitted.

use crate::{is_system_module, Loaded, ModuleError, ModuleHost, Stored};
use alloy_primitives::{Address, Bytes, B256, U256};
use std::collections::{BTreeMap, BTreeSet};

pub struct MemHost {
    /// The module being called.
    pub me: Address,
    pub storage: BTreeMap<(Address, U256), U256>,
    pub balances: BTreeMap<Address, U256>,
    pub height: u64,
    pub timestamp: u64,
    pub chain_id: u64,
    pub logs: Vec<(Vec<B256>, Bytes)>,
    /// Slots touched in the current transaction, and their values at its start (the
    /// EVM's journal keeps these for real, for EIP-2929 and EIP-2200 gas).
    pub warm: BTreeSet<(Address, U256)>,
    pub original: BTreeMap<(Address, U256), U256>,
    /// The call-outs modules asked for, in order (the trampoline would make them).
    pub call_outs: Vec<crate::kit::callout::CallOut>,
    /// Accounts that hold code (contract wallets).
    pub code: BTreeSet<Address>,
}

impl MemHost {
    pub fn new(me: Address) -> Self {
        MemHost {
            me,
            storage: BTreeMap::new(),
            balances: BTreeMap::new(),
            height: 1,
            timestamp: 1_800_000_000,
            chain_id: 42,
            code: BTreeSet::new(),
            logs: Vec::new(),
            warm: BTreeSet::new(),
            original: BTreeMap::new(),
            call_outs: Vec::new(),
        }
    }

    /// Registers the node whose ed25519 key is `[seed; 32]` for `owner`, serving `apps`
    /// (on chain 42, as the hosts' chain id says): its id.
    pub fn register_node(&mut self, seed: u8, owner: Address, apps: &[&str]) -> B256 {
        let key = ed25519_consensus::SigningKey::from([seed; 32]);
        let reg = crate::registry::register_call(self.chain_id, owner, &key, apps);
        let input = alloy_sol_types::SolCall::abi_encode(&reg);
        self.call(
            crate::REGISTRY_ADDRESS,
            owner,
            U256::ZERO,
            &input,
            10_000_000,
        )
        .expect("the node registers");
        reg.nodeId
    }

    /// Gives `a` a stake of `amount` wei in `role`, above that role's minimum of one.
    pub fn stake(&mut self, a: Address, role: crate::staking::Role, amount: u64) {
        use crate::staking::storage::{MIN_STAKE, STAKE};
        let min = MIN_STAKE[role as usize].slot();
        self.storage
            .insert((crate::STAKING_ADDRESS, min), U256::from(1));
        let slot = STAKE.slot(&a, &role);
        self.storage
            .insert((crate::STAKING_ADDRESS, slot), U256::from(amount));
    }

    /// Sets node `node`'s proof-of-computing score, its E, as of `epoch`.
    pub fn set_score(&mut self, node: B256, epoch: u64, score: u64) {
        let slot = crate::poc::LAST.slot(&node);
        let v = (U256::from(epoch) << 64) | U256::from(score);
        self.storage.insert((crate::POC_ADDRESS, slot), v);
    }

    /// Starts a transaction: every slot is cold again.
    pub fn new_tx(&mut self) {
        self.warm.clear();
        self.original.clear();
    }

    fn touch(&mut self, module: Address, slot: U256) -> bool {
        let value = self
            .storage
            .get(&(module, slot))
            .copied()
            .unwrap_or_default();
        self.original.entry((module, slot)).or_insert(value);
        self.warm.insert((module, slot))
    }

    pub fn balance(&self, a: Address) -> U256 {
        self.balances.get(&a).copied().unwrap_or_default()
    }

    /// Every balance together: the supply.
    pub fn supply(&self) -> U256 {
        self.balances.values().fold(U256::ZERO, |s, b| s + *b)
    }

    /// Moves `value` from `from` to the module, as the EVM does before a payable call.
    pub fn send_value(&mut self, from: Address, value: U256) {
        let b = self.balance(from);
        assert!(b >= value, "test account cannot afford {value}");
        self.balances.insert(from, b - value);
        *self.balances.entry(self.me).or_default() += value;
    }

    /// Calls `module` as a transaction would: the value moves first, and a call that
    /// fails changes nothing (the EVM's journal does this for real).
    pub fn call(
        &mut self,
        module: Address,
        caller: Address,
        value: U256,
        input: &[u8],
        gas: u64,
    ) -> Result<Bytes, String> {
        let before = (self.storage.clone(), self.balances.clone());
        self.new_tx();
        self.me = module;
        if !value.is_zero() {
            self.send_value(caller, value);
        }
        let c = crate::ModuleCall {
            caller,
            value,
            input,
            is_static: false,
        };
        let d = crate::dispatch(module, self, &c, gas).expect("a system module");
        d.out.map_err(|e| {
            (self.storage, self.balances) = before;
            e.to_string()
        })
    }

    fn system(&self, a: Address) -> Result<(), ModuleError> {
        if is_system_module(a) {
            Ok(())
        } else {
            Err(ModuleError::Host(format!("{a} is not a system module")))
        }
    }
}

impl ModuleHost for MemHost {
    fn sload(&mut self, slot: U256) -> Result<Loaded, ModuleError> {
        let me = self.me;
        self.sload_at(me, slot)
    }
    fn sstore(&mut self, slot: U256, value: U256) -> Result<Stored, ModuleError> {
        let me = self.me;
        self.sstore_at(me, slot, value)
    }
    fn sload_at(&mut self, module: Address, slot: U256) -> Result<Loaded, ModuleError> {
        self.system(module)?;
        let cold = self.touch(module, slot);
        let value = self
            .storage
            .get(&(module, slot))
            .copied()
            .unwrap_or_default();
        Ok(Loaded { value, cold })
    }
    fn sstore_at(
        &mut self,
        module: Address,
        slot: U256,
        value: U256,
    ) -> Result<Stored, ModuleError> {
        self.system(module)?;
        let cold = self.touch(module, slot);
        let present = self
            .storage
            .insert((module, slot), value)
            .unwrap_or_default();
        Ok(Stored {
            original: self.original[&(module, slot)],
            present,
            cold,
        })
    }
    fn pay(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        let mine = self.balance(self.me);
        if mine < amount {
            return Err(ModuleError::Host("module balance too low".into()));
        }
        self.balances.insert(self.me, mine - amount);
        *self.balances.entry(to).or_default() += amount;
        Ok(())
    }
    fn mint(&mut self, to: Address, amount: U256) -> Result<(), ModuleError> {
        *self.balances.entry(to).or_default() += amount;
        Ok(())
    }
    fn burn(&mut self, amount: U256) -> Result<(), ModuleError> {
        let mine = self.balance(self.me);
        if mine < amount {
            return Err(ModuleError::Host("module balance too low".into()));
        }
        self.balances.insert(self.me, mine - amount);
        Ok(())
    }
    fn emit(&mut self, topics: Vec<B256>, data: Bytes) {
        self.logs.push((topics, data));
    }
    fn call_out(&mut self, call: crate::kit::callout::CallOut) -> Result<(), ModuleError> {
        self.call_outs.push(call);
        Ok(())
    }
    fn switch_to(&mut self, module: Address) -> Address {
        std::mem::replace(&mut self.me, module)
    }
    fn has_code(&mut self, a: Address) -> Result<Loaded, ModuleError> {
        Ok(Loaded {
            value: U256::from(self.code.contains(&a) as u8),
            cold: true,
        })
    }
    fn chain_id(&self) -> u64 {
        self.chain_id
    }
    fn height(&self) -> u64 {
        self.height
    }
    fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

/// Genesis validator `i`: a fixed account and development consensus key `i`, power 1,000.
pub fn val(i: u32) -> emc_types::GenesisValidator {
    emc_types::GenesisValidator {
        address: Address::repeat_byte(0xa0 + i as u8),
        consensus_key: emc_crypto::ConsensusKey::dev(i).public(),
        power: 1_000,
    }
}
