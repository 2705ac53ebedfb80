//! The Market module's storage, declared as a Solidity contract would declare it.

use crate::kit::slots::{Array, ArrayMapping, Mapping, Records, Value};
use alloy_primitives::{Address, B256, U256};

/// Spot orders made so far (the last id).
pub const SPOT_MADE: Value<u64> = Value::at(0);
/// `mapping(uint256 => SpotOrder)`, fields below.
pub const SPOT: Records<U256> = Records::at(1);
/// The ids of this block's spot orders, all markets (emptied by the clearing).
pub const BOOK: Array<U256> = Array::at(2);
/// `[owner]` = the block height and the owner's spot orders in it so far, packed
/// (`height << 64 | n`): what makes each order's clearing key.
pub const SEQ: Mapping<Address, U256> = Mapping::at(3);
/// `mapping(bytes32 => Market)`, fields below.
pub const MARKETS: Records<B256> = Records::at(4);
/// Every market that has had an order, in the order they first had one.
pub const MARKET_LIST: Array<B256> = Array::at(5);
/// The genesis's rules: the most a provider's price may be, as a multiple of the
/// market's last clearing price (zero: [`super::guard::DEFAULT_MULTIPLE`]).
pub const PRICE_MULTIPLE: Value<u64> = Value::at(6);
/// The genesis's rules: a bid's bond, in basis points of its value (zero:
/// [`super::orders::DEFAULT_BOND_BPS`]).
pub const BOND_BPS: Value<u64> = Value::at(7);

/// Orders made so far (the last id), and `mapping(uint256 => Order)`.
pub const ORDERS_MADE: Value<u64> = Value::at(10);
pub const ORDERS: Records<U256> = Records::at(11);
/// Bids made so far, and `mapping(uint256 => Bid)`.
pub const BIDS_MADE: Value<u64> = Value::at(12);
pub const BIDS: Records<U256> = Records::at(13);
/// `[orderId]` = its bids' ids.
pub const ORDER_BIDS: ArrayMapping<U256, U256> = ArrayMapping::at(14);
/// `[deadline / BUCKET]` = the orders due then.
pub const DUE: ArrayMapping<u64, U256> = ArrayMapping::at(15);
/// The next due bucket and index to look at, packed (`bucket << 64 | index`; zero:
/// no order yet).
pub const DUE_CURSOR: Value<U256> = Value::at(16);
/// `mapping(bytes32 => NodeRecord)`: what the market has seen of each node.
pub const NODES: Records<B256> = Records::at(17);
/// `[tokenId]` = the winning bid whose lease the socket is.
pub const LEASE_OF: Mapping<U256, U256> = Mapping::at(18);
/// The genesis's rules: the market fee on resales, basis points (zero:
/// [`super::resale::DEFAULT_FEE_BPS`]).
pub const FEE_BPS: Value<u64> = Value::at(8);
/// Listings made so far, and `mapping(uint256 => Listing)`.
pub const LISTINGS_MADE: Value<u64> = Value::at(20);
pub const LISTINGS: Records<U256> = Records::at(21);

/// A listing's fields.
pub mod listing {
    pub const SELLER: u64 = 0;
    pub const TOKEN: u64 = 1;
    /// The fixed price, or an auction's reserve.
    pub const PRICE: u64 = 2;
    pub const ENDS: u64 = 3;
    /// 1 fixed price, 2 English auction.
    pub const KIND: u64 = 4;
    /// 0 active, 1 sold, 2 cancelled, 3 void.
    pub const STATE: u64 = 5;
    pub const HIGH_BIDDER: u64 = 6;
    pub const HIGH_BID: u64 = 7;
    pub const LISTED_AT: u64 = 8;
}

/// An order's fields.
pub mod order {
    pub const BUYER: u64 = 0;
    pub const APP: u64 = 1;
    pub const UNIT: u64 = 2;
    pub const UNITS: u64 = 3;
    pub const MAX_PRICE: u64 = 4;
    pub const DEADLINE: u64 = 5;
    pub const VALID_FOR: u64 = 6;
    pub const MIN_SCORE: u64 = 7;
    pub const MAX_BIDS: u64 = 8;
    /// 0 open, 1 leased, 2 unfilled (refunded).
    pub const STATE: u64 = 9;
    pub const WINNER: u64 = 10;
    pub const TOKEN: u64 = 11;
    pub const LEASE_START: u64 = 12;
    pub const LEASE_END: u64 = 13;
}

/// A bid's fields.
pub mod bid {
    pub const ORDER: u64 = 0;
    pub const PROVIDER: u64 = 1;
    pub const NODE: u64 = 2;
    pub const PRICE: u64 = 3;
    pub const BOND: u64 = 4;
    /// 0 open, 1 won, 2 lost (bond returned), 3 released, 4 slashed.
    pub const STATE: u64 = 5;
}

/// A node's record: leases won and failures evidenced.
pub mod node {
    pub const LEASES: u64 = 0;
    pub const FAILED: u64 = 1;
}

/// A spot order's fields, packed so a bid is four words: its head (owner and side),
/// its market, its limit and its counts (units, height, fill, and the owner's count
/// in the block, from which its clearing key is made); an ask adds its node.
pub mod spot {
    pub const HEAD: u64 = 0;
    pub const MARKET: u64 = 1;
    pub const LIMIT: u64 = 2;
    pub const COUNTS: u64 = 3;
    pub const NODE: u64 = 4;
}

/// A spot order's head word: owner (bits 0–159), whether an ask (bit 160).
pub fn head(owner: Address, ask: bool) -> U256 {
    U256::from_be_slice(owner.as_slice()) | U256::from(ask as u8) << 160
}

pub fn unhead(w: U256) -> (Address, bool) {
    let b = w.to_be_bytes::<32>();
    (Address::from_slice(&b[12..]), b[11] & 1 == 1)
}

/// A spot order's counts word.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub units: u64,
    pub height: u64,
    pub filled: u64,
    /// The owner's spot orders in the block before this one.
    pub n: u64,
}

impl Counts {
    pub fn encode(&self) -> U256 {
        U256::from(self.units)
            | U256::from(self.height) << 64
            | U256::from(self.filled) << 128
            | U256::from(self.n) << 192
    }
    pub fn decode(w: U256) -> Counts {
        let lane = |i: usize| ((w >> (64 * i)) & U256::from(u64::MAX)).to::<u64>();
        Counts {
            units: lane(0),
            height: lane(1),
            filled: lane(2),
            n: lane(3),
        }
    }
}

/// A market's fields.
pub mod market {
    pub const APP: u64 = 0;
    pub const UNIT: u64 = 1;
    pub const PRICE: u64 = 2;
    pub const HEIGHT: u64 = 3;
    pub const VOLUME: u64 = 4;
    pub const TOTAL: u64 = 5;
}

/// The packed `SEQ` word.
pub fn seq(height: u64, n: u64) -> U256 {
    U256::from(height) << 64 | U256::from(n)
}

/// A packed word's parts (`SEQ`: the height and the count; `DUE_CURSOR`: the bucket
/// and the index).
pub fn unseq(w: U256) -> (u64, u64) {
    let high: U256 = w >> 64;
    (high.saturating_to(), (w & U256::from(u64::MAX)).to())
}
