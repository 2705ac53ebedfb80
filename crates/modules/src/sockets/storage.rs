//! The Sockets module's storage, declared as a Solidity contract would declare it.

use crate::kit::slots::{DoubleMapping, Mapping, Records, Value};
use alloy_primitives::{Address, B256, U256};

// ERC-721, as OpenZeppelin lays it out.
pub const OWNERS: Mapping<U256, Address> = Mapping::at(0);
pub const BALANCES: Mapping<Address, u64> = Mapping::at(1);
pub const APPROVALS: Mapping<U256, Address> = Mapping::at(2);
pub const OPERATORS: DoubleMapping<Address, Address, bool> = DoubleMapping::at(3);
/// Enumerable: `[owner][index]` = token id, and each token's index in its owner's list.
/// (Ids run from 1 and no socket is burnt, so the list of all tokens is `1..=minted`.)
pub const OWNED: DoubleMapping<Address, u64, U256> = DoubleMapping::at(4);
pub const OWNED_INDEX: Mapping<U256, u64> = Mapping::at(5);
/// Sockets minted so far (the last id).
pub const MINTED: Value<u64> = Value::at(6);
/// `mapping(uint256 => Socket)`, fields below.
pub const SOCKETS: Records<U256> = Records::at(7);
/// Offers made so far (the last offer id).
pub const OFFERS_MADE: Value<u64> = Value::at(8);
/// `mapping(uint256 => Offer)`, fields below.
pub const OFFERS: Records<U256> = Records::at(9);
/// Receipts settled, by id.
pub const SETTLED: Mapping<B256, bool> = Mapping::at(10);
/// What each socket key has spent, by its id.
pub const SPENT: Mapping<B256, U256> = Mapping::at(11);

/// A socket's fields.
pub mod socket {
    pub const NODE: u64 = 0;
    pub const APP: u64 = 1;
    pub const APP_HASH: u64 = 2;
    pub const UNIT: u64 = 3;
    pub const CREDITS: u64 = 4;
    pub const PRICE: u64 = 5;
    pub const EXPIRES: u64 = 6;
    pub const RENEWAL: u64 = 7;
    pub const USER: u64 = 8;
    pub const USER_EXPIRES: u64 = 9;
    /// Wei paid for the running rental (zero: the user, if any, was set for free).
    pub const RENT_PAID: u64 = 10;
    pub const RENT_START: u64 = 11;
    /// Of `RENT_PAID`, what has been released to owners.
    pub const RENT_RELEASED: u64 = 12;
    pub const RENT_PRICE: u64 = 13;
    pub const RENT_MAX: u64 = 14;
}

/// An offer's fields.
pub mod offer {
    pub const PROVIDER: u64 = 0;
    pub const NODE: u64 = 1;
    pub const APP: u64 = 2;
    pub const APP_HASH: u64 = 3;
    pub const UNIT: u64 = 4;
    pub const PRICE: u64 = 5;
    pub const MIN: u64 = 6;
    pub const MAX: u64 = 7;
    pub const VALID_FOR: u64 = 8;
    pub const CAPACITY: u64 = 9;
    pub const EXPIRES: u64 = 10;
    pub const RENEWAL: u64 = 11;
}
