//! The Sockets module's storage, declared as a Solidity contract would declare it, and
//! packed where a transfer touches it: a transfer reads and writes one word of the
//! token, one of the sender's list and one of the recipient's.

use crate::kit::slots::{mapped, DoubleMapping, Key, Mapping, Records, Value};
use alloy_primitives::{Address, B256, U256};

/// `[tokenId]` = its [`Holding`]: owner, index in the owner's list, and flags.
pub const HOLDINGS: Mapping<U256, U256> = Mapping::at(0);
/// `[tokenId]` = its approved address (read only when the token's flag says it has one).
pub const APPROVALS: Mapping<U256, Address> = Mapping::at(2);
pub const OPERATORS: DoubleMapping<Address, Address, bool> = DoubleMapping::at(3);
/// The owners' lists of token ids: `[owner]` from `keccak256(owner . 4)`, [`LANES`]
/// 32-bit lanes a word; lane 0 of word 0 is the count (the owner's balance), so the
/// first seven ids share the word a transfer writes anyway for the count.
pub const LISTS: u64 = 4;
/// Lanes in a list word, and their width.
pub const LANES: u64 = 8;
const LANE_BITS: usize = 32;
/// The largest socket id (and count) a lane holds: mints past it are refused.
pub const MAX_ID: u64 = u32::MAX as u64;
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
/// The genesis's settle window, seconds (zero: [`super::economy::SETTLE_WINDOW`]).
pub const SETTLE_WINDOW: Value<u64> = Value::at(12);
/// `[node]` = the royalty its owner set on resales, basis points.
pub const ROYALTY: Mapping<B256, u64> = Mapping::at(13);

/// A token's holding word: its owner (bits 0–159), its index in the owner's list
/// (160–223) and flags (224–): whether it has an approved address, an ERC-4907 user,
/// a rental listing, so a transfer reads those only when they are set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    pub owner: Address,
    pub index: u64,
    pub approved: bool,
    pub user: bool,
    pub listed: bool,
}

impl Holding {
    pub fn decode(w: U256) -> Holding {
        let b = w.to_be_bytes::<32>();
        let flags = b[0];
        Holding {
            owner: Address::from_slice(&b[12..]),
            index: u64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
            approved: flags & 1 != 0,
            user: flags & 2 != 0,
            listed: flags & 4 != 0,
        }
    }

    pub fn encode(&self) -> U256 {
        let mut b = [0u8; 32];
        b[12..].copy_from_slice(self.owner.as_slice());
        b[4..12].copy_from_slice(&self.index.to_be_bytes());
        b[0] = self.approved as u8 | (self.user as u8) << 1 | (self.listed as u8) << 2;
        U256::from_be_bytes(b)
    }
}

/// The slot of word `w` of `owner`'s list.
pub fn list_word(owner: Address, w: u64) -> U256 {
    mapped(U256::from(LISTS), owner.key()).wrapping_add(U256::from(w))
}

/// Where list position `p` lives: its word and lane (position 0 is lane 1 of word 0,
/// after the count).
pub fn place(p: u64) -> (u64, u64) {
    ((p + 1) / LANES, (p + 1) % LANES)
}

/// Lane `l` (below [`LANES`]) of a list word.
pub fn lane(word: U256, l: u64) -> u64 {
    ((word >> (LANE_BITS * l as usize)) & U256::from(MAX_ID)).to::<u64>()
}

/// `word` with lane `l` set to `v` (at most [`MAX_ID`], which minting keeps to).
pub fn with_lane(word: U256, l: u64, v: u64) -> U256 {
    debug_assert!(v <= MAX_ID, "a lane holds 32 bits");
    let shift = LANE_BITS * l as usize;
    let mask = U256::from(MAX_ID) << shift;
    (word & !mask) | (U256::from(v & MAX_ID) << shift)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holding_word_round_trips_and_lanes_are_independent() {
        let h = Holding {
            owner: Address::repeat_byte(0xab),
            index: 0x0102_0304_0506_0708,
            approved: true,
            user: false,
            listed: true,
        };
        assert_eq!(Holding::decode(h.encode()), h);
        let mut w = U256::ZERO;
        for l in 0..LANES {
            w = with_lane(w, l, MAX_ID - l);
        }
        w = with_lane(w, 2, 7);
        let want: Vec<u64> = (0..LANES)
            .map(|l| if l == 2 { 7 } else { MAX_ID - l })
            .collect();
        assert_eq!((0..LANES).map(|l| lane(w, l)).collect::<Vec<_>>(), want);
        assert_eq!(place(0), (0, 1));
        assert_eq!(place(LANES - 2), (0, LANES - 1));
        assert_eq!(place(LANES - 1), (1, 0));
    }
}
