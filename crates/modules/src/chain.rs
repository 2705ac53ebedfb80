//! The `Chain` system contract: what a dApp asks of the chain itself.
//!
//! Storage (Solidity layout): slot 0 `address[] validators`, slot 1 `bytes32[] keys`
//! (their ed25519 consensus keys), slot 2 `uint256[] powers`: the set, in proposer
//! order, that seals the blocks after the state it is read from. Genesis writes it;
//! the staking module rewrites it at the last block of every epoch.

use crate::kit::slots::{Array, Word};
use crate::{Metered, ModuleCall, ModuleError};
use alloy_primitives::{Address, Bytes, B256, U256};
use alloy_sol_types::{sol, SolCall, SolInterface};
use std::collections::BTreeMap;

sol! {
    /// The ABI dApps call at `CHAIN_ADDRESS`.
    interface IChain {
        function version() external view returns (string memory);
        function chainId() external view returns (uint256);
        function validators() external view returns (address[] memory);
        function isValidator(address account) external view returns (bool);
        function validatorSet() external view returns (address[] memory validators, bytes32[] memory consensusKeys, uint256[] memory powers);
    }
}

/// The set's storage, in proposer order (three arrays of one length).
pub const VALIDATORS: Array<Address> = Array::at(0);
pub const KEYS: Array<B256> = Array::at(1);
pub const POWERS: Array<u64> = Array::at(2);

/// A member of the set: account, consensus key, voting power.
pub type SetMember = (Address, B256, u64);
/// The most validators a set may hold; bounds every loop over the set.
pub const MAX_VALIDATORS: u64 = 1_000;

pub struct ChainModule;

impl ChainModule {
    pub fn call(m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        if !call.value.is_zero() {
            return Err(ModuleError::Revert("Chain: not payable".into()));
        }
        let decoded = IChain::IChainCalls::abi_decode(call.input)
            .map_err(|_| ModuleError::Revert("Chain: unknown function or bad arguments".into()))?;
        Ok(match decoded {
            IChain::IChainCalls::version(_) => {
                IChain::versionCall::abi_encode_returns(&emc_types::CLIENT_VERSION.to_string())
            }
            IChain::IChainCalls::chainId(_) => {
                IChain::chainIdCall::abi_encode_returns(&U256::from(m.host().chain_id()))
            }
            IChain::IChainCalls::validators(_) => {
                IChain::validatorsCall::abi_encode_returns(&Self::validators(m)?)
            }
            IChain::IChainCalls::isValidator(c) => IChain::isValidatorCall::abi_encode_returns(
                &Self::validators(m)?.contains(&c.account),
            ),
            IChain::IChainCalls::validatorSet(_) => {
                let set = Self::read_set(m)?;
                IChain::validatorSetCall::abi_encode_returns(&IChain::validatorSetReturn {
                    validators: set.iter().map(|v| v.0).collect(),
                    consensusKeys: set.iter().map(|v| v.1).collect(),
                    powers: set.iter().map(|v| U256::from(v.2)).collect(),
                })
            }
        }
        .into())
    }

    fn validators(m: &mut Metered<'_>) -> Result<Vec<Address>, ModuleError> {
        VALIDATORS.all(m, MAX_VALIDATORS)
    }

    /// The set as stored, read through any slot reader (a module call's host, or a
    /// state snapshot for the node).
    pub fn set_from(
        mut read: impl FnMut(U256) -> Result<U256, ModuleError>,
    ) -> Result<Vec<SetMember>, ModuleError> {
        let n = u64::from_word(read(VALIDATORS.len_slot())?).min(MAX_VALIDATORS);
        (0..n)
            .map(|i| {
                let a = <Address as Word>::from_word(read(VALIDATORS.element_slot(i))?);
                let k = <B256 as Word>::from_word(read(KEYS.element_slot(i))?);
                let p = u64::from_word(read(POWERS.element_slot(i))?);
                Ok((a, k, p))
            })
            .collect()
    }

    /// The set, read by another module (the staking module) through its host.
    pub fn read_set(m: &mut Metered<'_>) -> Result<Vec<SetMember>, ModuleError> {
        Self::set_from(|s| m.sload_at(crate::CHAIN_ADDRESS, s))
    }

    /// Replaces the set (the staking module, at an epoch's end).
    pub fn write_set(m: &mut Metered<'_>, set: &[SetMember]) -> Result<(), ModuleError> {
        for (k, v) in Self::set_storage(set) {
            m.sstore_at(crate::CHAIN_ADDRESS, k, v)?;
        }
        Ok(())
    }

    /// The slots that hold `set` (stale entries past its length are ignored by readers).
    pub fn set_storage(set: &[SetMember]) -> BTreeMap<U256, U256> {
        let mut s = BTreeMap::new();
        let n = U256::from(set.len());
        for len in [VALIDATORS.len_slot(), KEYS.len_slot(), POWERS.len_slot()] {
            s.insert(len, n);
        }
        for (i, (a, k, p)) in set.iter().enumerate() {
            let i = i as u64;
            s.insert(VALIDATORS.element_slot(i), a.to_word());
            s.insert(KEYS.element_slot(i), k.to_word());
            s.insert(POWERS.element_slot(i), p.to_word());
        }
        s
    }

    /// The storage genesis writes for a validator set.
    pub fn genesis_storage(validators: &[emc_types::GenesisValidator]) -> BTreeMap<U256, U256> {
        let set: Vec<SetMember> = validators
            .iter()
            .map(|v| (v.address, v.consensus_key, v.power))
            .collect();
        Self::set_storage(&set)
    }
}

impl crate::kit::SystemModule for ChainModule {
    fn address(&self) -> Address {
        crate::CHAIN_ADDRESS
    }

    fn name(&self) -> &'static str {
        "Chain"
    }

    fn genesis(&self, g: &emc_types::Genesis) -> crate::kit::ModuleGenesis {
        crate::kit::ModuleGenesis {
            storage: Self::genesis_storage(&g.validators),
            balance: None,
        }
    }
    fn call(&self, m: &mut Metered<'_>, call: &ModuleCall<'_>) -> Result<Bytes, ModuleError> {
        ChainModule::call(m, call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dispatch, CHAIN_ADDRESS};
    use alloy_primitives::B256;

    use crate::testing::MemHost;

    fn call(host: &mut MemHost, input: Vec<u8>, gas: u64) -> (Result<Bytes, ModuleError>, u64) {
        let c = ModuleCall {
            caller: Address::ZERO,
            value: U256::ZERO,
            input: &input,
            is_static: true,
        };
        let d = dispatch(CHAIN_ADDRESS, host, &c, gas).expect("chain module is dispatched");
        (d.out, d.gas_used)
    }

    #[test]
    fn reports_validators_from_storage() {
        let gv = |b: u8| emc_types::GenesisValidator {
            address: Address::repeat_byte(b),
            consensus_key: B256::repeat_byte(b),
            power: 7,
        };
        let mut host = MemHost::new(CHAIN_ADDRESS);
        for (k, v) in ChainModule::genesis_storage(&[gv(1), gv(2)]) {
            host.storage.insert((CHAIN_ADDRESS, k), v);
        }
        let vals = vec![Address::repeat_byte(1), Address::repeat_byte(2)];
        let (out, gas) = call(&mut host, IChain::validatorsCall {}.abi_encode(), 1_000_000);
        let got = IChain::validatorsCall::abi_decode_returns(&out.expect("ok")).expect("decode");
        assert_eq!(got, vals);
        assert_eq!(gas, crate::GAS_BASE + 3 * crate::GAS_COLD_SLOAD);
        let (out, _) = call(&mut host, IChain::chainIdCall {}.abi_encode(), 1_000_000);
        assert_eq!(
            IChain::chainIdCall::abi_decode_returns(&out.expect("ok")).expect("decode"),
            U256::from(42)
        );
    }

    #[test]
    fn unknown_selector_reverts_and_gas_is_bounded() {
        let mut host = MemHost::new(CHAIN_ADDRESS);
        assert!(matches!(
            call(&mut host, vec![1, 2, 3, 4], 1_000_000).0,
            Err(ModuleError::Revert(_))
        ));
        let (out, used) = call(&mut host, IChain::validatorsCall {}.abi_encode(), 2_500);
        assert!(matches!(out, Err(ModuleError::OutOfGas)));
        assert_eq!(used, 2_500);
    }
}
