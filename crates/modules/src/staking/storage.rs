//! The Staking module's storage, declared as a Solidity contract would declare its
//! state variables (the slot numbers are those genesis has written since the first
//! chain: parameters at 0–28, state from 100).

use super::Role;
use crate::kit::slots::{Array, DoubleMapping, Key, Mapping, Value};
use alloy_primitives::{Address, B256, U256};

impl Key for Role {
    fn key(&self) -> B256 {
        B256::from(U256::from(*self as u8))
    }
}

// Parameters, written at genesis.
pub const EPOCH_BLOCKS: Value<u64> = Value::at(0);
pub const MAX_VALIDATORS: Value<u64> = Value::at(1);
/// By role: validator, router, computing node.
pub const MIN_STAKE: [Value<U256>; 3] = [Value::at(2), Value::at(3), Value::at(4)];
pub const UNBONDING_BLOCKS: Value<u64> = Value::at(5);
pub const BLOCK_REWARD: Value<U256> = Value::at(6);
pub const ROUTER_POOL: Value<U256> = Value::at(7);
pub const COMPUTE_POOL: Value<U256> = Value::at(8);
pub const SLASH_BPS: Value<U256> = Value::at(9);
pub const JAIL_MISSED_BPS: Value<u64> = Value::at(10);
pub const JAIL_EPOCHS: Value<u64> = Value::at(11);
pub const TIER_COUNT: Value<u64> = Value::at(12);

/// Lock tier `i`: its length in blocks and its multiplier in basis points, a
/// `(uint256 blocks, uint256 bps)[]` laid out from slot 13.
pub fn tier(i: u8) -> (Value<u64>, Value<U256>) {
    let at = 13 + 2 * i as u64;
    (Value::at(at), Value::at(at + 1))
}

// State.
pub const MINTED: Value<U256> = Value::at(100);
pub const SLASHED: Value<U256> = Value::at(101);
/// The accounts that ever staked, by role (validators once registered).
pub const LISTS: [Array<Address>; 3] = [Array::at(102), Array::at(103), Array::at(104)];
pub const TOTAL_STAKED: Value<U256> = Value::at(105);
pub const STAKE: DoubleMapping<Address, Role, U256> = DoubleMapping::at(110);
pub const UNBONDING: DoubleMapping<Address, Role, U256> = DoubleMapping::at(111);
pub const RELEASE: DoubleMapping<Address, Role, u64> = DoubleMapping::at(112);
pub const LOCK_UNTIL: Mapping<Address, u64> = Mapping::at(113);
pub const LOCK_BPS: Mapping<Address, U256> = Mapping::at(114);
pub const KEY: Mapping<Address, B256> = Mapping::at(115);
pub const KEY_OWNER: Mapping<B256, Address> = Mapping::at(116);
pub const JAILED_UNTIL: Mapping<Address, u64> = Mapping::at(117);
pub const REWARDS: Mapping<Address, U256> = Mapping::at(118);
pub const MISSED: Mapping<Address, u64> = Mapping::at(119);
pub const SCORE: Mapping<Address, U256> = Mapping::at(120);
/// Evidence used, by `keccak256(validator . height)`.
pub const EVIDENCE: Mapping<B256, bool> = Mapping::at(121);
/// Set membership: `[epoch][account]` = index + 1.
pub const MEMBER: DoubleMapping<u64, Address, u64> = DoubleMapping::at(122);
pub const LISTED: DoubleMapping<Address, Role, bool> = DoubleMapping::at(123);
