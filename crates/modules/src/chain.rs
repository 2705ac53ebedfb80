//! The `Chain` system contract: what a dApp asks of the chain itself.
//!
//! Storage (Solidity layout): slot 0 is `address[] validators`, the set that seals
//! blocks. Genesis writes it; the staking module will rewrite it at epoch boundaries.

use crate::{array_slot, Metered, ModuleCall, ModuleError};
use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{sol, SolCall, SolInterface};
use std::collections::BTreeMap;

sol! {
    /// The ABI dApps call at `CHAIN_ADDRESS`.
    interface IChain {
        function version() external view returns (string memory);
        function chainId() external view returns (uint256);
        function validators() external view returns (address[] memory);
        function isValidator(address account) external view returns (bool);
    }
}

pub const VALIDATORS_SLOT: U256 = U256::ZERO;
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
        }
        .into())
    }

    fn validators(m: &mut Metered<'_>) -> Result<Vec<Address>, ModuleError> {
        let n = m.sload(VALIDATORS_SLOT)?;
        let n: u64 = n.try_into().unwrap_or(u64::MAX).min(MAX_VALIDATORS);
        (0..n)
            .map(|i| {
                let word = m.sload(array_slot(VALIDATORS_SLOT, i))?;
                Ok(Address::from_word(word.into()))
            })
            .collect()
    }

    /// The storage genesis writes for a validator set.
    pub fn genesis_storage(validators: &[Address]) -> BTreeMap<U256, U256> {
        let mut s = BTreeMap::new();
        s.insert(VALIDATORS_SLOT, U256::from(validators.len()));
        for (i, v) in validators.iter().enumerate() {
            s.insert(
                array_slot(VALIDATORS_SLOT, i as u64),
                U256::from_be_bytes(v.into_word().0),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{dispatch, ModuleHost, CHAIN_ADDRESS};
    use alloy_primitives::B256;

    struct MemHost(BTreeMap<U256, U256>);
    impl ModuleHost for MemHost {
        fn sload(&mut self, slot: U256) -> Result<U256, ModuleError> {
            Ok(self.0.get(&slot).copied().unwrap_or_default())
        }
        fn sstore(&mut self, slot: U256, value: U256) -> Result<(), ModuleError> {
            self.0.insert(slot, value);
            Ok(())
        }
        fn emit(&mut self, _: Vec<B256>, _: Bytes) {}
        fn chain_id(&self) -> u64 {
            42
        }
        fn height(&self) -> u64 {
            1
        }
    }

    fn call(host: &mut MemHost, input: Vec<u8>, gas: u64) -> (Result<Bytes, ModuleError>, u64) {
        let c = ModuleCall {
            caller: Address::ZERO,
            value: U256::ZERO,
            input: &input,
            is_static: true,
        };
        dispatch(CHAIN_ADDRESS, host, &c, gas).expect("chain module is dispatched")
    }

    #[test]
    fn reports_validators_from_storage() {
        let vals = vec![Address::repeat_byte(1), Address::repeat_byte(2)];
        let mut host = MemHost(ChainModule::genesis_storage(&vals));
        let (out, gas) = call(&mut host, IChain::validatorsCall {}.abi_encode(), 1_000_000);
        let got = IChain::validatorsCall::abi_decode_returns(&out.expect("ok")).expect("decode");
        assert_eq!(got, vals);
        assert_eq!(gas, crate::GAS_BASE + 3 * crate::GAS_SLOAD);
        let (out, _) = call(&mut host, IChain::chainIdCall {}.abi_encode(), 1_000_000);
        assert_eq!(
            IChain::chainIdCall::abi_decode_returns(&out.expect("ok")).expect("decode"),
            U256::from(42)
        );
    }

    #[test]
    fn unknown_selector_reverts_and_gas_is_bounded() {
        let mut host = MemHost(BTreeMap::new());
        assert!(matches!(
            call(&mut host, vec![1, 2, 3, 4], 1_000_000).0,
            Err(ModuleError::Revert(_))
        ));
        let (out, used) = call(&mut host, IChain::validatorsCall {}.abi_encode(), 2_500);
        assert!(matches!(out, Err(ModuleError::OutOfGas)));
        assert_eq!(used, 2_500);
    }
}
